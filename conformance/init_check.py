"""Does a freshly built model follow the initialisation scheme its spec declares?

Constants are checked exactly (BN gamma 1 and beta 0, zero biases, zero-init residual
gammas). Random weights are checked statistically, per layer, with bounds that cannot flake:

* the sample variance ``s^2`` of n iid draws with variance ``sigma^2`` has standard error
  ``sigma^2 sqrt((kurt - 1) / n)`` (kurtosis 3 for a normal, 1.8 for a uniform); a layer
  fails when ``|s^2/sigma^2 - 1|`` exceeds **6** standard errors (one false alarm in ~5e8
  layers), and the pooled statistic over all layers of a kind is held to the same bound;
* the mean is held to 6 standard errors, ``6 sigma / sqrt(n)``;
* a uniform scheme must stay inside its bound exactly; a normal scheme's excess kurtosis is
  checked when n is large enough for a 6-SE band (``sqrt(24/n)``) to separate normal from
  uniform (n >= 4096), so a uniform-for-normal swap is caught on big layers.

Formulas for each scheme: He et al. 2015, Eq. (10) (fan_in) and Eq. (14) (fan_out), as
``torch.nn.init.kaiming_normal_`` implements them (fan_out = C_out * k_h * k_w, groups not
divided out); PyTorch's default ``kaiming_uniform_(a=sqrt(5))`` is U(+-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from cnn_models import InitScheme

__all__ = ["Z", "init_failures", "expected_weight_law"]

Z = 6.0  # standard errors allowed before a statistical check fails


@dataclass(frozen=True)
class Law:
    kind: str  # "normal" | "uniform"
    std: float
    bound: float | None = None  # support for uniform; truncation point for normal


def _fans(w: torch.Tensor) -> tuple[int, int]:
    receptive = w[0][0].numel() if w.dim() > 2 else 1
    return w.shape[1] * receptive, w.shape[0] * receptive


def _uniform(bound: float) -> Law:
    """U(-bound, bound): standard deviation bound / sqrt(3)."""
    return Law("uniform", bound / math.sqrt(3.0), bound)


def expected_weight_law(scheme: str, weight: torch.Tensor) -> Law:
    fan_in, fan_out = _fans(weight)
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


CHUNK = 1 << 20  # values per float64 chunk in _moments


def _moments(values: torch.Tensor) -> tuple[int, float, float, float]:
    """``n`` and the means of ``v``, ``v**2`` and ``v**4``, in float64.

    Summed over chunks of ``CHUNK`` values: a float64 copy of VGG16's 102M-weight classifier
    layer and its powers took 1.6 GB of peak memory and about 3 of the 4 s of an init check
    (cProfile: ``Tensor.pow``); chunks keep the same float64 arithmetic in a few MB.
    """
    flat = values.detach().reshape(-1)
    n = flat.numel()
    s1 = s2 = s4 = 0.0
    for chunk in flat.split(CHUNK):
        c = chunk.double()
        sq = c * c
        s1 += float(c.sum())
        s2 += float(sq.sum())
        s4 += float((sq * sq).sum())
    return n, s1 / max(n, 1), s2 / max(n, 1), s4 / max(n, 1)


SAMPLE = 1 << 22  # values whose moments are taken; a larger tensor is sampled at a fixed stride


def _stat_failures(name: str, values: torch.Tensor, law: Law, what: str) -> list[str]:
    """Bound (every value), variance, mean and kurtosis (at most ``SAMPLE`` values) vs ``law``.

    Weights are iid draws under the declared law, so every ``k``-th value is an iid sample of
    it, and the standard errors below use the sample's ``n``. With ``n = 2**22`` the variance
    band is +-0.4 %, far inside any init mistake (fan_in for fan_out, a wrong gain, uniform for
    normal), and VGG16's 102M-weight layer costs 4M values instead of 102M (the moments were
    half of a wide ResNet-101 init check in cProfile).
    """
    flat = values.detach().reshape(-1)
    out: list[str] = []
    if flat.numel() < 2:
        return out
    step = -(-flat.numel() // SAMPLE)
    n, mean, var, fourth = _moments(flat[::step])
    largest = float(flat.abs().max())  # the bound holds for every value, not only the sample
    if step > 1:
        n_note = f"{n} of {flat.numel()} values, 1 in {step}"
    else:
        n_note = str(n)
    if law.bound is not None and largest > law.bound * (1 + 1e-6):
        out.append(f"{name}: {what} has values outside +-{law.bound:.4g} (max |w| {largest:.4g}), declared {law.kind}")
    # var: the second moment about the known mean 0
    kurt = 1.8 if law.kind == "uniform" else 3.0
    se = math.sqrt((kurt - 1.0) / n)
    ratio = var / law.std**2
    if abs(ratio - 1.0) > Z * se:
        out.append(
            f"{name}: {what} variance {var:.4g}, expected {law.std**2:.4g} (std {law.std:.4g}, {law.kind}); "
            f"ratio {ratio:.3f} is {abs(ratio - 1) / se:.1f} standard errors from 1 (limit {Z:g}, n={n_note})"
        )
    if abs(mean) > Z * law.std / math.sqrt(n):
        out.append(f"{name}: {what} mean {mean:.4g}, expected 0 (limit {Z * law.std / math.sqrt(n):.3g}, n={n_note})")
    if law.kind == "normal" and n >= 4096:
        excess = fourth / var**2 - 3.0 if var > 0 else math.nan  # as the tensor division gave
        if abs(excess) > Z * math.sqrt(24.0 / n):
            out.append(f"{name}: {what} excess kurtosis {excess:.3f}, expected 0 for a normal (limit {Z * math.sqrt(24.0 / n):.3f}); a uniform has -1.2")
    return out


def init_failures(model: nn.Module, scheme: InitScheme, zero_gamma_bns: frozenset[str] = frozenset()) -> list[str]:
    """Every departure of ``model``'s weights from ``scheme``, each naming its module.

    ``zero_gamma_bns`` are the qualified names of BatchNorms whose gamma must be exactly zero
    (zero-init residual); every other BN must have gamma exactly 1 and beta exactly 0.
    """
    out: list[str] = []
    overrides = dict(scheme.overrides)
    names = {n for n, _ in model.named_modules()}
    out += [f"{n}: init override names a module the model does not have" for n in overrides if n not in names]
    for name, mod in model.named_modules():
        label = name or "<root>"
        if isinstance(mod, nn.Conv2d | nn.Linear):
            kind = "conv" if isinstance(mod, nn.Conv2d) else "linear"
            weight_scheme = overrides.get(name, scheme.conv if kind == "conv" else scheme.linear)
            bias_scheme = scheme.conv_bias if kind == "conv" else scheme.linear_bias
            out += _stat_failures(label, mod.weight, expected_weight_law(weight_scheme, mod.weight), f"{kind} weight ({weight_scheme})")
            if mod.bias is not None:
                if bias_scheme == "zeros":
                    if bool(mod.bias.detach().ne(0).any()):
                        out.append(f"{label}: bias expected all zeros ({kind}_bias=zeros), got max |b| {float(mod.bias.detach().abs().max()):.4g}")
                else:
                    bound = 1.0 / math.sqrt(_fans(mod.weight)[0])
                    out += _stat_failures(label, mod.bias, Law("uniform", bound / math.sqrt(3), bound), f"{kind} bias (torch_default)")
        elif isinstance(mod, _BatchNorm) and mod.affine:
            gamma = 0.0 if name in zero_gamma_bns else 1.0
            w, b = mod.weight.detach(), mod.bias.detach()
            if bool(w.ne(gamma).any()):
                why = " (zero-init residual)" if gamma == 0.0 else ""
                out.append(f"{label}: BN weight expected all {gamma:g}{why}, got values in [{float(w.min()):.4g}, {float(w.max()):.4g}]")
            if bool(b.ne(0).any()):
                out.append(f"{label}: BN bias expected all 0, got values in [{float(b.min()):.4g}, {float(b.max()):.4g}]")
    return out
