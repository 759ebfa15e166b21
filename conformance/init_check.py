"""Does a freshly built model follow the initialisation scheme its spec declares?

Constants are checked exactly (BN gamma 1 and beta 0, zero biases, zero-init residual
gammas). Random weights are checked statistically, per layer, with bounds that cannot flake
(**6** standard errors, ``Z``: one false alarm in ~5e8 layers) and that a handful of extreme
draws cannot move:

* every value must lie inside the support of a uniform law (or the truncation of a normal);
* scale: each value is clipped to ``+-K sigma`` (``K = 4``, ``sigma`` the law's std) before
  its second moment is taken, so one draw at the truncation bound of torch's float32
  ``trunc_normal_`` (20 sigma for std 0.1; unclipped it adds ``400/n`` to the variance ratio,
  4.4 standard errors at n = 4096) adds at most ``K^2/n`` (0.18 standard errors at n = 4096).
  The clipped second moment has mean ``sigma^2 e2`` and standard error
  ``sigma^2 sqrt((e4 - e2^2) / n)``, ``e2``/``e4`` the clipped law's moments in units of
  sigma (``_clipped_law_moments``: for a normal, 0.99988 and 2.9957; a uniform is not
  clipped, 1 and 1.8);
* the mean of the clipped values is held to ``6 sigma sqrt(e2 / n)``;
* shape, judged where the scale holds: the fraction of ``|w|`` below ``c sigma``
  (``c = Phi^-1(0.75) = 0.6745``) is ``2 Phi(c) - 1 = 0.5`` for a normal and
  ``c / sqrt(3) = 0.389`` for a uniform of the same std; a count of draws is binomial, so the
  fraction's standard error is ``sqrt(p (1 - p) / n)``, and extreme draws move it by ``1/n``
  each. It is checked from ``N_SHAPE = 2872`` values on, the least n at which the two 6-SE
  bands are disjoint (``6 (0.5 + 0.4876) / sqrt(n) <= 0.5 - 0.389``), so a uniform-for-normal
  swap (or the reverse) of the same std is caught on every larger layer.

``compare_init`` judges a candidate's fresh tensors against a reference's fresh tensors
instead of a declared scheme, with the two-sample forms of the same statistics.

Formulas for each scheme: He et al. 2015, Eq. (10) (fan_in) and Eq. (14) (fan_out), as
``torch.nn.init.kaiming_normal_`` implements them (fan_out = C_out * k_h * k_w, groups not
divided out); PyTorch's default ``kaiming_uniform_(a=sqrt(5))`` is U(+-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch
import torch.nn as nn

from cnn_models import InitScheme

from .torch_private import BATCH_NORMS

__all__ = ["N_SHAPE", "Z", "Declared", "Law", "compare_init", "declared_init", "expected_weight_law",
           "fans", "init_failures"]

Z = 6.0  # standard errors allowed before a statistical check fails
K_CLIP = 4.0  # values are clipped at +-K_CLIP std before their moments are taken
C_SHAPE = NormalDist().inv_cdf(0.75)  # 0.6745: half of a normal's |w| lies below C_SHAPE std
P_NORMAL = 2.0 * NormalDist().cdf(C_SHAPE) - 1.0  # fraction of |w| below C_SHAPE std: 0.5
P_UNIFORM = C_SHAPE / math.sqrt(3.0)  # the same for a uniform of the same std: 0.389
# least n whose 6-SE bands around P_NORMAL and P_UNIFORM are disjoint: 2872
N_SHAPE = math.ceil(
    (Z * (math.sqrt(P_NORMAL * (1 - P_NORMAL)) + math.sqrt(P_UNIFORM * (1 - P_UNIFORM))) / (P_NORMAL - P_UNIFORM)) ** 2
)
# least n of a two-sample scale or mean comparison: with normal draws the second-moment
# ratio is F(n, n)-distributed, and its 6-SE bound on the log scale (SE sqrt(4/n)) is passed
# with probability 3.7e-8 at n = 32 (4e-4 at n = 2; 2.0e-9, the normal tail, as n grows)
N_STAT = 32
MEDIAN_OF = 1 << 16  # reference values whose median |w| sets compare_init's clip point


@dataclass(frozen=True)
class Law:
    kind: str  # "normal" | "uniform"
    std: float
    bound: float | None = None  # support for uniform; truncation point for normal


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """torch.nn.init's fan_in and fan_out of a weight of ``shape``: dims 1 and 0 times the
    receptive field (groups not divided out)."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _uniform(bound: float) -> Law:
    """U(-bound, bound): standard deviation bound / sqrt(3)."""
    return Law("uniform", bound / math.sqrt(3.0), bound)


def expected_weight_law(scheme: str, weight: torch.Tensor) -> Law:
    fan_in, fan_out = fans(weight.shape)
    if scheme == "kaiming_normal_fan_out":
        return Law("normal", math.sqrt(2.0 / fan_out))
    if scheme == "kaiming_normal_fan_in":
        return Law("normal", math.sqrt(2.0 / fan_in))
    if scheme in ("normal_0.01",):
        return Law("normal", 0.01)
    if scheme.startswith("trunc_normal_"):
        std = float(scheme.removeprefix("trunc_normal_"))
        return Law("normal", std, 2.0)  # truncated at +-2 (absolute), >= 20 sigma here
    if scheme == "torch_default":
        return _uniform(1.0 / math.sqrt(fan_in))
    if scheme == "kaiming_uniform_fan_in":  # He et al. 2015 with ReLU's gain sqrt(2): U(+-sqrt(6/fan_in))
        return _uniform(math.sqrt(6.0 / fan_in))
    if scheme == "xavier_uniform":  # Glorot & Bengio 2010, Eq. (16)
        return _uniform(math.sqrt(6.0 / (fan_in + fan_out)))
    if scheme == "xavier_normal":
        return Law("normal", math.sqrt(2.0 / (fan_in + fan_out)))
    raise ValueError(f"unknown init scheme {scheme!r}")


def _clipped_law_moments(law: Law, k: float) -> tuple[float, float]:
    """``E[min(X^2, k^2)]`` and ``E[min(X^4, k^4)]`` for ``X`` of ``law`` in units of its std.

    Normal truncated at ``beta = bound/std`` (``beta = inf`` untruncated), clipped at
    ``k <= beta``, with ``P(x) = erf(x/sqrt(2))`` and ``phi`` the standard normal density:
    ``e2 = (P(k) - 2 k phi(k) + k^2 (P(beta) - P(k))) / P(beta)`` and
    ``e4 = (3 P(k) - 2 phi(k) (k^3 + 3k) + k^4 (P(beta) - P(k))) / P(beta)``
    (``int_{-k}^{k} x^2 phi = P(k) - 2 k phi(k)``,
    ``int_{-k}^{k} x^4 phi = 3 P(k) - 2 phi(k) (k^3 + 3k)``).
    Uniform on ``+-b`` (``b = sqrt(3)``) clipped at ``k``: ``e2 = k^3/(3b) + k^2 (1 - k/b)``,
    ``e4 = k^5/(5b) + k^4 (1 - k/b)``; for ``k >= b`` these are 1 and 9/5.
    """
    if law.kind == "uniform":
        b = math.sqrt(3.0)
        k = min(k, b)
        return k**3 / (3 * b) + k**2 * (1 - k / b), k**5 / (5 * b) + k**4 * (1 - k / b)
    beta = math.inf if law.bound is None else law.bound / law.std
    k = min(k, beta)
    p_beta = 1.0 if math.isinf(beta) else math.erf(beta / math.sqrt(2.0))
    p_k = math.erf(k / math.sqrt(2.0))
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    tail = p_beta - p_k
    return (p_k - 2 * k * phi + k**2 * tail) / p_beta, (3 * p_k - 2 * phi * (k**3 + 3 * k) + k**4 * tail) / p_beta


def _law_fraction_below(law: Law, c: float) -> float:
    """``P(|X| < c std)`` under ``law``: ``P(c) / P(beta)`` for a normal truncated at ``beta``
    std (``P(x) = erf(x/sqrt(2))``), ``c / sqrt(3)`` for a uniform (``c <= sqrt(3)``)."""
    if law.kind == "uniform":
        return min(c / math.sqrt(3.0), 1.0)
    beta = math.inf if law.bound is None else law.bound / law.std
    p_beta = 1.0 if math.isinf(beta) else math.erf(beta / math.sqrt(2.0))
    return math.erf(min(c, beta) / math.sqrt(2.0)) / p_beta


CHUNK = 1 << 20  # values per chunk in _moments


@dataclass(frozen=True)
class _Moments:
    n: int
    mean: float  # of the clipped values
    m2: float  # mean square of the clipped values
    m4: float  # mean fourth power of the clipped values


def _chunks(values: torch.Tensor) -> list[torch.Tensor]:
    """``values`` flattened, in chunks of ``CHUNK``, as float32 at least (float64 stays)."""
    flat = values.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        return [c.float() for c in flat.split(CHUNK)]
    return list(flat.split(CHUNK))


def _moments(values: torch.Tensor, clip: float) -> _Moments:
    """Means of ``v``, ``v**2`` and ``v**4`` about 0, ``v`` the values clipped to ``+-clip``.

    Powers and sums are taken per chunk of ``CHUNK`` values in the tensor's dtype (float32 at
    least; torch's cascade sum keeps a chunk's relative error near 1e-7, far below the 1e-3
    the bounds resolve) and the chunk sums are added in float64, so memory stays at a few MB
    where a float64 copy of VGG16's 102M-weight classifier layer and its powers needs 1.6 GB.
    """
    n = values.numel()
    s1 = s2 = s4 = 0.0
    for chunk in _chunks(values):
        c = chunk.clamp(-clip, clip)
        sq = c * c
        s1 += float(c.sum())
        s2 += float(sq.sum())
        s4 += float((sq * sq).sum())
    d = max(n, 1)
    return _Moments(n, s1 / d, s2 / d, s4 / d)


def _rms(values: torch.Tensor) -> float:
    """The root mean square of ``values``, unclipped (for messages)."""
    total = sum(float(c.square().sum()) for c in _chunks(values))
    return math.sqrt(total / max(values.numel(), 1))


def _fraction_below(values: torch.Tensor, tau: float) -> float:
    """The fraction of ``|values|`` strictly below ``tau``."""
    count = sum(int((c.abs() < tau).sum()) for c in _chunks(values))
    return count / max(values.numel(), 1)


def _largest_abs(values: torch.Tensor) -> float:
    """``max |v|`` without a temporary of the tensor's size (``aminmax`` reads it once)."""
    low, high = torch.aminmax(values)
    return max(-float(low), float(high))


SAMPLE = 1 << 22  # values whose moments are taken; a larger tensor is sampled at a fixed stride


def _sample(flat: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Every ``k``-th value, ``k`` the least stride leaving at most ``SAMPLE``, and a note on n.

    Weights are iid draws under their law, so every ``k``-th value is an iid sample of it, and
    the standard errors use the sample's ``n``. With ``n = 2**22`` the variance band is
    +-0.4 %, far inside any init mistake (fan_in for fan_out, a wrong gain, uniform for
    normal), and VGG16's 102M-weight layer costs 4M values instead of 102M.
    """
    step = -(-flat.numel() // SAMPLE)
    sample = flat[::step]
    note = f"{sample.numel()} of {flat.numel()} values, 1 in {step}" if step > 1 else str(sample.numel())
    return sample, note


def _stat_failures(name: str, values: torch.Tensor, law: Law, what: str) -> list[str]:
    """Bound (every value); variance, mean and shape (at most ``SAMPLE`` values) vs ``law``.

    Variance and mean are taken of the values clipped at ``K_CLIP`` std and held to their
    clipped expectations (module docstring); the shape (fraction of ``|w|`` below ``C_SHAPE``
    std) is judged from ``N_SHAPE`` values on, and only where the variance holds, so that a
    wrong scale is reported as one failure.
    """
    flat = values.detach().reshape(-1)
    out: list[str] = []
    if flat.numel() < 2:
        return out
    sample, n_note = _sample(flat)
    largest = _largest_abs(flat)  # the bound holds for every value, not only the sample
    if law.bound is not None and largest > law.bound * (1 + 1e-6):
        out.append(f"{name}: {what} has values outside +-{law.bound:.4g} (max |w| {largest:.4g}), declared {law.kind}")
    sigma = law.std
    m = _moments(sample, K_CLIP * sigma)
    n = m.n
    e2, e4 = _clipped_law_moments(law, K_CLIP)
    ratio = m.m2 / (e2 * sigma**2)
    se = math.sqrt((e4 - e2**2) / n) / e2
    scale_ok = abs(ratio - 1.0) <= Z * se
    if not scale_ok:
        out.append(
            f"{name}: {what} variance {_rms(sample) ** 2:.4g}, expected {sigma**2:.4g} (std {sigma:.4g}, {law.kind}); "
            f"ratio {ratio:.3f} is {abs(ratio - 1) / se:.1f} standard errors from 1 "
            f"(limit {Z:g}, n={n_note}; |w| clipped at {K_CLIP:g} std)"
        )
    mean_limit = Z * sigma * math.sqrt(e2 / n)
    if abs(m.mean) > mean_limit:
        out.append(f"{name}: {what} mean {m.mean:.4g}, expected 0 (limit {mean_limit:.3g}, n={n_note})")
    if scale_ok and n >= N_SHAPE:
        p = _law_fraction_below(law, C_SHAPE)
        q = _fraction_below(sample, C_SHAPE * sigma)
        limit = Z * math.sqrt(p * (1 - p) / n)
        if abs(q - p) > limit:
            other, p_other = ("uniform", P_UNIFORM) if law.kind == "normal" else ("normal", P_NORMAL)
            out.append(
                f"{name}: {what} shape: {q:.3f} of |w| below {C_SHAPE:.4f} std, expected {p:.3f} for a {law.kind} "
                f"(limit +-{limit:.3f}, n={n_note}); a {other} of the same std gives {p_other:.3f} "
                f"(kurtosis 1.8 for a uniform, 3 for a normal)"
            )
    return out


@dataclass(frozen=True)
class Declared:
    """What one tensor of a fresh model must hold under a declared scheme: a random ``law``
    or a ``constant`` (exactly one of the two is set)."""

    module: str  # qualified module name ("<root>" for the model itself)
    tensor: str  # qualified name of the tensor (a parameter, or what a parametrization computes)
    what: str  # "conv weight (kaiming_normal_fan_out)", "conv bias", "BN weight", "BN bias"
    law: Law | None = None
    constant: float | None = None
    why: str = ""  # why the constant: " (zero-init residual)", " (linear_bias=zeros)"


def declared_init(
    model: nn.Module, scheme: InitScheme, zero_gamma_bns: frozenset[str] = frozenset()
) -> tuple[list[str], list[Declared]]:
    """The scheme read against ``model``'s layers (any device, meta included): problems of the
    scheme itself (an override naming no module), and one ``Declared`` per judged tensor.

    Judged: the weights of every ``nn.Conv2d`` and ``nn.Linear`` (the scheme's law, or an
    override's), their biases (zeros, or PyTorch's default U(+-1/sqrt(fan_in))), and the
    affine parameters of every affine BatchNorm (gamma 1, or 0 in ``zero_gamma_bns``; beta 0).
    """
    problems: list[str] = []
    overrides = dict(scheme.overrides)
    names = {n for n, _ in model.named_modules()}
    problems += [f"{n}: init override names a module the model does not have" for n in overrides if n not in names]
    out: list[Declared] = []
    for name, mod in model.named_modules():
        label = name or "<root>"
        prefix = f"{name}." if name else ""
        if isinstance(mod, nn.Conv2d | nn.Linear):
            kind = "conv" if isinstance(mod, nn.Conv2d) else "linear"
            weight_scheme = overrides.get(name, scheme.conv if kind == "conv" else scheme.linear)
            bias_scheme = scheme.conv_bias if kind == "conv" else scheme.linear_bias
            out.append(Declared(label, prefix + "weight", f"{kind} weight ({weight_scheme})",
                                law=expected_weight_law(weight_scheme, mod.weight)))
            if mod.bias is not None:
                if bias_scheme == "zeros":
                    out.append(Declared(label, prefix + "bias", f"{kind} bias", constant=0.0,
                                        why=f" ({kind}_bias=zeros)"))
                else:
                    bound = 1.0 / math.sqrt(fans(mod.weight.shape)[0])
                    out.append(Declared(label, prefix + "bias", f"{kind} bias (torch_default)", law=_uniform(bound)))
        elif isinstance(mod, BATCH_NORMS) and mod.affine:
            zero = name in zero_gamma_bns
            out.append(Declared(label, prefix + "weight", "BN weight", constant=0.0 if zero else 1.0,
                                why=" (zero-init residual)" if zero else ""))
            out.append(Declared(label, prefix + "bias", "BN bias", constant=0.0))
    return problems, out


def init_failures(model: nn.Module, scheme: InitScheme, zero_gamma_bns: frozenset[str] = frozenset()) -> list[str]:
    """Every departure of ``model``'s weights from ``scheme``, each naming its module.

    ``zero_gamma_bns`` are the qualified names of BatchNorms whose gamma must be exactly zero
    (zero-init residual); every other BN must have gamma exactly 1 and beta exactly 0.
    """
    out, expected = declared_init(model, scheme, zero_gamma_bns)
    for e in expected:
        owner, _, attr = e.tensor.rpartition(".")
        values = getattr(model.get_submodule(owner), attr).detach()  # a parametrized weight too
        if e.law is not None:
            out += _stat_failures(e.module, values, e.law, e.what)
        elif e.constant is not None and bool(values.ne(e.constant).any()):
            if e.what.startswith("BN"):
                out.append(f"{e.module}: {e.what} expected all {e.constant:g}{e.why}, "
                           f"got values in [{float(values.min()):.4g}, {float(values.max()):.4g}]")
            else:
                out.append(f"{e.module}: bias expected all zeros{e.why}, got max |b| {_largest_abs(values):.4g}")
    return out


def compare_init(pairs: Sequence[tuple[str, torch.Tensor, str, torch.Tensor]]) -> list[str]:
    """Every departure of a candidate's fresh tensors from a reference's fresh tensors.

    ``pairs`` holds (candidate name, candidate tensor, reference name, reference tensor); each
    failure line names the candidate tensor and its reference counterpart. Per pair:

    * shapes must agree; integer tensors (``num_batches_tracked``) must agree exactly;
    * a constant reference (all elements equal: BN gamma 1 and beta 0, zero biases, running
      statistics, zero-init residual gammas) needs exactly that constant in the candidate; a
      one-element reference counts as a constant when it holds a whole number (a continuous
      draw hits one with negligible probability), and is skipped otherwise;
    * a random reference needs a non-constant candidate, and from ``N_STAT`` values on (at
      most ``SAMPLE`` of each, at one stride) the same law, by the two-sample forms of
      ``init_failures``' statistics, each held to ``Z`` = 6 standard errors. Both samples are
      clipped at ``+-K_CLIP s``, ``s = median|w_ref| / Phi^-1(0.75)`` (the reference's std
      for a normal; a uniform is not clipped), so a few extreme draws cannot move them:

      - scale: ``R = m2_cand / m2_ref`` (clipped second moments about 0); ``log R`` has
        standard error ``sqrt(r_c / n_c + r_r / n_r)``, ``r = max(2, m4 / m2^2 - 1)`` each
        sample's relative variance of ``w^2`` (2 for a normal, 0.8 for a uniform; the floor
        keeps the bound from shrinking with a noisy estimate);
      - mean: ``mean_cand - mean_ref`` within ``6 sqrt(m2_c / n_c + m2_r / n_r)``;
      - law, judged where the scale holds and from ``1/n_c + 1/n_r <= 1/N_SHAPE`` on: the
        fractions of ``|w|`` below ``tau = C_SHAPE sqrt(m2_ref)`` (0.5 for a normal, 0.389 for
        a uniform) must agree within ``6 sqrt(p (1 - p) (1/n_c + 1/n_r))``, ``p`` pooled;
        ``tau`` comes from the reference alone, and its noise moves both fractions alike.

    One-element random tensors, and random ones under ``N_STAT`` values beyond not being
    constant, are not judged (the F law of the ratio makes a 6-SE bound flake there).
    """
    out: list[str] = []
    for cname, cand, rname, ref in pairs:
        out += _compare_pair(cname, cand.detach(), rname, ref.detach())
    return out


def _compare_pair(cname: str, cand: torch.Tensor, rname: str, ref: torch.Tensor) -> list[str]:
    where = f"as reference {rname}"
    if cand.shape != ref.shape:
        return [f"{cname}: expected shape {tuple(ref.shape)} ({where}), got {tuple(cand.shape)}"]
    n = ref.numel()
    if n == 0:
        return []
    if not (ref.is_floating_point() and cand.is_floating_point()):
        differ = cand.reshape(-1).double().ne(ref.reshape(-1).double())
        if not bool(differ.any()):
            return []
        if n == 1:
            return [f"{cname}: expected {ref.item()} ({where}), got {cand.item()}"]
        i = int(differ.nonzero()[0])
        return [f"{cname}: expected the reference's integer values ({where}), got {int(differ.sum())} of {n} "
                f"different (first at flat index {i}: {cand.reshape(-1)[i].item()} vs {ref.reshape(-1)[i].item()})"]
    r_flat, c_flat = ref.reshape(-1), cand.reshape(-1)
    lo, hi = (float(x) for x in torch.aminmax(r_flat))
    c_lo, c_hi = (float(x) for x in torch.aminmax(c_flat))  # NaN if any value is NaN
    if not (math.isfinite(c_lo) and math.isfinite(c_hi)):
        bad = int((~torch.isfinite(c_flat)).sum())
        return [f"{cname}: expected finite values ({where}), got {bad} of {n} non-finite"]
    if lo == hi and (n >= 2 or lo.is_integer()):
        if c_lo != lo or c_hi != lo:
            return [f"{cname}: expected all {lo:g} ({where}), got values in [{c_lo:.4g}, {c_hi:.4g}]"]
        return []
    if n < 2:
        return []
    if c_lo == c_hi:
        return [f"{cname}: expected random values (std {_rms(r_flat):.4g}, {where}), got all {c_lo:g}"]
    if n < N_STAT:
        return []
    r, n_note = _sample(r_flat)
    c, _ = _sample(c_flat)
    # the clip point: any function of the reference alone serves; the median of at most
    # MEDIAN_OF values is the reference's std within ~1 % for a normal
    scale = float(r[:: -(-r.numel() // MEDIAN_OF)].abs().median()) / C_SHAPE
    clip = K_CLIP * scale if scale > 0 else math.inf
    mr, mc = _moments(r, clip), _moments(c, clip)
    n_r, n_c = mr.n, mc.n
    out: list[str] = []
    ratio = mc.m2 / mr.m2
    rel_c, rel_r = max(2.0, mc.m4 / mc.m2**2 - 1.0), max(2.0, mr.m4 / mr.m2**2 - 1.0)
    se = math.sqrt(rel_c / n_c + rel_r / n_r)
    k = abs(math.log(ratio)) / se if ratio > 0 else math.inf
    if k > Z:
        out.append(
            f"{cname}: std {_rms(c):.4g}, expected {_rms(r):.4g} ({where}); "
            f"second-moment ratio {ratio:.3f} is {k:.1f} standard errors from 1 "
            f"(limit {Z:g}, log scale, n={n_note}; |w| clipped at {clip:.4g})"
        )
    mean_limit = Z * math.sqrt(mc.m2 / n_c + mr.m2 / n_r)
    if abs(mc.mean - mr.mean) > mean_limit:
        out.append(f"{cname}: mean {mc.mean:.4g}, expected {mr.mean:.4g} ({where}; "
                   f"difference limit {mean_limit:.3g}, n={n_note})")
    h = 1.0 / n_c + 1.0 / n_r
    if k <= Z and h <= 1.0 / N_SHAPE:
        tau = C_SHAPE * math.sqrt(mr.m2)
        q_c, q_r = _fraction_below(c, tau), _fraction_below(r, tau)
        p = (n_c * q_c + n_r * q_r) / (n_c + n_r)
        limit = Z * math.sqrt(p * (1 - p) * h)
        if abs(q_c - q_r) > limit:
            out.append(
                f"{cname}: law differs: {q_c:.3f} of |w| below {tau:.4g} ({C_SHAPE:.4f} reference std), "
                f"expected {q_r:.3f} ({where}; limit +-{limit:.3f}, n={n_note}); "
                f"a normal gives {P_NORMAL:.3f}, a uniform of the same std {P_UNIFORM:.3f}"
            )
    return out
