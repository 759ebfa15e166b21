"""Numerical comparison of two models that claim to be the same architecture.

The reference's weights are first **randomized**: every parameter and every floating buffer
(BN running mean/var and affine too), so an identity-like initialisation hides nothing (a BN
with gamma 1, beta 0 and fresh running stats would hide a missing BN in eval mode). The
randomized state_dict is copied into the candidate, and both run in float64 on the same
input: outputs in eval and in train mode (same seed, so dropout draws the same mask), input
gradients, every parameter's gradient, and BN running statistics after one train step.
Mismatch messages give the tensor's qualified name, the count of mismatches, the worst
element with its index, and the tolerance, in the spirit of ``torch.testing.assert_close``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .layer_table import build_on_meta
from .torch_private import BATCH_NORMS, state_dict_metadata, with_state_dict_metadata

__all__ = [
    "materialize",
    "RTOL",
    "ATOL",
    "compare_tensors",
    "numerics_checks",
    "randomize_",
    "state_dict_diff",
]

# float64 throughout: identical architectures agree to ~1e-13; these leave room for a
# different (valid) summation order, and stay far below any structural difference.
RTOL = 1e-7
ATOL = 1e-9


DRAW_BLOCK = 1 << 22  # float32 values drawn at a time into a weight of another dtype


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter and floating buffer with seeded random values, in place.

    Weights of rank >= 2 get N(0, 2/fan_in) (He et al. 2015, Eq. 10: activations keep their
    scale through deep stacks), drawn in float32 and widened (1.15-1.2x faster than a float64
    uniform draw into VGG16's weights, one thread); 1-d parameters U(-0.2, 0.2) around their
    role (BN gamma around 1), running variances U(0.5, 1.5), other floating buffers U(-0.2, 0.2).
    """
    gen = torch.Generator().manual_seed(seed)

    def fill(t: torch.Tensor, low: float, high: float) -> None:
        t.uniform_(low, high, generator=gen)

    def normal(t: torch.Tensor, std: float) -> None:
        if t.dtype == torch.float32 or not t.is_contiguous():
            t.copy_(torch.randn(t.shape, generator=gen).mul_(std))
            return
        flat, block = t.view(-1), torch.empty(min(t.numel(), DRAW_BLOCK))
        for start in range(0, flat.numel(), DRAW_BLOCK):
            part = flat[start:start + DRAW_BLOCK]
            drawn = block[:part.numel()].normal_(0.0, std, generator=gen)
            part.copy_(drawn)

    with torch.no_grad():
        for mod in model.modules():
            is_bn = (isinstance(mod, BATCH_NORMS)
                     or type(mod).__name__.startswith(("BatchNorm", "GroupNorm", "LayerNorm")))
            for pname, p in mod.named_parameters(recurse=False):
                if p.dim() >= 2:
                    normal(p, math.sqrt(2.0 / max(p[0].numel(), 1)))
                elif is_bn and pname == "weight":
                    fill(p, 0.6, 1.4)
                else:
                    fill(p, -0.2, 0.2)
            for bname, b in mod.named_buffers(recurse=False):
                if not b.is_floating_point():
                    b.copy_(torch.randint(0, 100, b.shape, generator=gen))
                elif "var" in bname:
                    fill(b, 0.5, 1.5)
                else:
                    fill(b, -0.2, 0.2)
    return model


def _ties(model: nn.Module) -> list[list[str]]:
    """Groups of names under which one Parameter object is registered more than once."""
    groups: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(n)
    return [names for names in groups.values() if len(names) > 1]


def _retie(model: nn.Module, ties: list[list[str]]) -> nn.Module:
    """Register the first name's Parameter under the others of its group (``_ties``)."""
    for first, *others in ties:
        shared = model.get_parameter(first)
        for n in others:
            owner, _, attr = n.rpartition(".")
            setattr(model.get_submodule(owner), attr, shared)
    return model


def materialize(factory: Callable[[], nn.Module], dtype: torch.dtype = torch.float64) -> nn.Module:
    """Build ``factory``'s model in ``dtype`` on the CPU *without running its initialisation*.

    The model is built on ``meta`` and given uninitialised CPU storage: every value must be
    overwritten afterwards (``randomize_`` or ``load_state_dict``), which is what the
    numerical checks do anyway, and it spares building VGG's 138M weights twice. A model with
    non-persistent buffers (not in its state_dict, so nothing would overwrite them) is built
    normally instead.
    """
    model, on_meta = _meta_or_built(factory, dtype)
    if not on_meta:
        return model
    ties = _ties(model)  # moving off meta gives each registration its own Parameter
    return _retie(model.to_empty(device="cpu"), ties)


def _meta_or_built(factory: Callable[[], nn.Module], dtype: torch.dtype) -> tuple[nn.Module, bool]:
    """``factory``'s model in ``dtype`` and whether it is on ``meta``: it is built normally
    instead when it has non-persistent buffers (not in its state_dict, so nothing would fill them).
    The meta build is ``build_on_meta``'s: its initialisation calls are skipped, as nothing
    would keep their values."""
    model = build_on_meta(factory)
    if set(dict(model.named_buffers())) - set(model.state_dict()):
        return factory().to(dtype), False
    return model.to(dtype), True


def state_dict_diff(candidate: nn.Module, reference: nn.Module) -> list[str]:
    """Keys missing, unexpected, or of another shape, each named."""
    cand, ref = candidate.state_dict(), reference.state_dict()
    out = [f"{k}: missing in candidate (reference shape {tuple(ref[k].shape)})" for k in ref if k not in cand]
    out += [f"{k}: unexpected in candidate (shape {tuple(cand[k].shape)})" for k in cand if k not in ref]
    out += [
        f"{k}: expected shape {tuple(ref[k].shape)}, got {tuple(cand[k].shape)}"
        for k in ref
        if k in cand and cand[k].shape != ref[k].shape
    ]
    return out


CHUNK = 1 << 22  # elements per slice when a mismatch must be located (32 MB in float64)


class LinearWeightGrad:
    """The gradient of one ``nn.Linear`` weight by the layer's formula, produced in row blocks.

    For ``y = x W^T + b`` the weight's gradient is ``g^T x`` summed over the layer's calls,
    with ``g`` the gradient of its output and ``x`` its input (flattened to rows). Both are
    kept (a few hundred KB for VGG's fc6 at batch 2) instead of the 822 MB float64 gradient
    itself, and ``compare_tensors`` asks for it block by block, so comparing a candidate's
    gradient with it never holds a second full-size copy. Blocks are whole multiples of 64
    rows (about ``CHUNK`` elements: 128 rows of VGG's fc6, 1024 of fc7): with torch's MKL, row
    blocks of 8 to 2048 rows (multiples of 8) equal the full product bit for bit, and for a
    layer called once autograd's gradient is that full product, so the common case stays an
    exact-equality pass; a split that rounds differently (167-row blocks did, by 5.6e-17) or
    a layer called several times (autograd adds one product per call) is still compared
    within the tolerance, only more slowly.
    """

    def __init__(self, out_features: int, in_features: int, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.shape = torch.Size((out_features, in_features))
        self._g = torch.cat([g.reshape(-1, out_features) for _, g in pairs]).t()  # (out, rows)
        self._x = torch.cat([x.reshape(-1, in_features) for x, _ in pairs])  # (rows, in)

    def numel(self) -> int:
        return self.shape.numel()

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return torch.mm(self._g[start:stop], self._x)

    def blocks(self) -> Iterable[tuple[int, torch.Tensor]]:
        """(flat offset, flattened block) pairs covering the gradient in row-major order."""
        out_f, in_f = self.shape
        step = max(64, CHUNK // max(in_f, 1) // 64 * 64)
        for r in range(0, out_f, step):
            yield r * in_f, self.rows(r, min(r + step, out_f)).reshape(-1)

    def value(self, flat_index: int) -> float:
        r, c = divmod(flat_index, self.shape[1])
        return float(self.rows(r, r + 1)[0, c])


Expected = torch.Tensor | LinearWeightGrad


def _expected_blocks(expected: Expected) -> Callable[[], Iterable[tuple[int, torch.Tensor]]]:
    if isinstance(expected, LinearWeightGrad):
        return expected.blocks
    flat = expected.detach().reshape(-1)
    return lambda: ((i, flat[i:i + CHUNK]) for i in range(0, flat.numel(), CHUNK))


def compare_tensors(name: str, got: torch.Tensor, expected: Expected, rtol: float = RTOL,
                    atol: float = ATOL) -> str | None:
    """``None`` if close; otherwise one line: name, mismatch count, worst element, tolerance.

    Close means ``|got - expected| <= atol * max(max|expected|, 1) + rtol * |expected|`` element
    by element, with non-finite values required at the same places and equal. Work is done in
    slices of about ``CHUNK`` elements, so locating a mismatch in an 800 MB gradient costs a
    few slices' worth of memory, not several copies of the tensor. ``expected`` is a tensor or
    a ``LinearWeightGrad`` (a reference gradient computed slice by slice).
    """
    if got.shape != expected.shape:
        return f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if isinstance(expected, torch.Tensor) and torch.equal(got, expected) and all_finite(got):
        return None  # the common case, and cheap
    g_all = got.detach().reshape(-1)
    blocks = _expected_blocks(expected)
    if (isinstance(expected, LinearWeightGrad)
            and all(torch.equal(g_all[i:i + e.numel()], e) for i, e in blocks()) and all_finite(got)):
        return None  # block by block: the same common case

    def slices() -> Iterable[tuple[int, torch.Tensor, torch.Tensor]]:
        for i, e in blocks():
            yield i, g_all[i:i + e.numel()].double(), e.double()

    # pass 1: non-finite values must match in place and value; the scale of the finite rest
    g_bad = e_bad = 0
    same_nonfinite = True
    scale = 0.0
    for _, g, e in slices():
        gnf, enf = ~torch.isfinite(g), ~torch.isfinite(e)
        g_bad, e_bad = g_bad + int(gnf.sum()), e_bad + int(enf.sum())
        same_nonfinite = (same_nonfinite and torch.equal(gnf, enf)
                          and torch.allclose(g[gnf], e[enf], rtol=0.0, atol=0.0, equal_nan=True))
        finite = e[~enf]
        if finite.numel():
            scale = max(scale, float(finite.abs().max()))
    if (g_bad or e_bad) and not same_nonfinite:
        return f"{name}: {g_bad} non-finite values in candidate vs {e_bad} in reference"
    # pass 2: count the elements out of tolerance and find the worst one
    n_bad, worst, worst_excess = 0, -1, -math.inf
    for start, g, e in slices():
        keep = torch.isfinite(e)
        diff = torch.where(keep, (g - e).abs(), 0.0)
        excess = diff - (atol * max(scale, 1.0) + rtol * e.abs().nan_to_num(0.0))
        n_bad += int((excess > 0).sum())
        i = int(torch.argmax(excess))
        if float(excess[i]) > worst_excess:
            worst, worst_excess = start + i, float(excess[i])
    if n_bad == 0:
        return None
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), got.shape)) if got.dim() else ()
    exp_v = (expected.value(worst) if isinstance(expected, LinearWeightGrad)
             else float(expected.detach().reshape(-1)[worst]))
    got_v = float(g_all[worst])
    return (
        f"{name}: {n_bad}/{g_all.numel()} elements differ; worst at index {idx}: "
        f"expected {exp_v:.6g}, got {got_v:.6g} "
        f"(|diff| {abs(got_v - exp_v):.3g}, rtol {rtol:g}, atol {atol:g}*{max(scale, 1.0):.3g})"
    )


def all_finite(t: torch.Tensor) -> bool:
    """True when no element is NaN or infinite.

    A finite sum proves it (any NaN or infinity makes the sum non-finite); only when the sum
    is not finite, which an overflow of finite values could also cause, look element-wise.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for v in output.values() for t in _tensors(v)]
    if isinstance(output, Iterable) and not isinstance(output, (str, bytes)):
        return [t for v in output for t in _tensors(v)]
    return []


def _forward_backward(
    model: nn.Module, x: torch.Tensor, seed: int, train: bool
) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    model.train(train)
    model.zero_grad(set_to_none=True)
    xin = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # dropout masks
    outs = _tensors(model(xin))
    gen = torch.Generator().manual_seed(seed + 1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    assert isinstance(loss, torch.Tensor)
    if not train:  # eval: only the input gradient, so autograd skips every weight gradient
        (gx,) = torch.autograd.grad(loss, xin, allow_unused=True)
        return [o.detach() for o in outs], gx if gx is not None else torch.zeros(0), {}
    loss.backward()
    # zero_grad(set_to_none=True) on the next pass drops these tensors rather than reusing them
    grads = {n: p.grad.detach() for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], xin.grad.detach() if xin.grad is not None else torch.zeros(0), grads


FORMULA_MIN_NUMEL = 4 * CHUNK  # nn.Linear weights this large get the reference gradient by formula


class FormulaCapture(TorchFunctionMode):
    """Watches every torch call of one pass for the weights in ``frozen`` (id -> name).

    An ``F.linear`` call with such a weight (from ``nn.Linear.forward`` or anywhere else) is
    recorded: its input, and its output's gradient through a tensor hook on the output itself
    (so module hooks that replace the output, and in-place ops after it, change nothing). Any
    other call that takes a frozen weight and returns a tensor (a tied projection
    ``h @ w.t()``, ``w.T``, even ``w.detach()``) sets ``other_use``: the weight's gradient may
    then have parts the formula does not see, and the pass must be rerun with autograd. Calls
    that return no tensor (``w.shape``, ``w.grad`` of a frozen weight) carry no gradient and
    are let through. After the pass, ``grads`` holds a
    ``LinearWeightGrad`` for every frozen weight whose output reached the loss.
    """

    def __init__(self, frozen: dict[int, str]) -> None:
        super().__init__()
        self.frozen = frozen
        self.calls: dict[str, list[list[torch.Tensor | None]]] = {name: [] for name in frozen.values()}
        self.other_use: str | None = None
        self.grads: dict[str, LinearWeightGrad] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        hits = [self.frozen[id(t)] for t in _tensors((args, kwargs)) if id(t) in self.frozen]
        if not hits or not _tensors(out):
            return out  # no frozen weight in, or no tensor out (w.shape, w.grad): no gradient can flow
        if func is torch.nn.functional.linear and len(hits) == 1:
            x = args[0] if args else kwargs.get("input")
            w = args[1] if len(args) > 1 else kwargs.get("weight")
            if id(w) in self.frozen and isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
                if not torch.is_grad_enabled():
                    return out  # autograd would give this call no weight gradient either
                if out.requires_grad:
                    entry: list[torch.Tensor | None] = [x.detach().clone(), None]
                    self.calls[hits[0]].append(entry)
                    out.register_hook(lambda g: entry.__setitem__(1, g.detach()))
                    return out
        if self.other_use is None:
            self.other_use = (f"{hits[0]} is used by {getattr(func, '__name__', func)!s} "
                              "outside an F.linear the formula can follow")
        return out

    def finish(self, model: nn.Module) -> None:
        for name, entries in self.calls.items():
            pairs = [(x, g) for x, g in entries if x is not None and g is not None]
            if pairs:
                out_f, in_f = model.get_parameter(name).shape
                self.grads[name] = LinearWeightGrad(out_f, in_f, pairs)


@contextlib.contextmanager
def linear_grads_by_formula(model: nn.Module, min_numel: int | None = None) -> Iterator[FormulaCapture]:
    """During one backward pass of ``model``: large ``nn.Linear`` weights get no autograd gradient.

    Their ``F.linear`` calls are recorded instead (``FormulaCapture``), and after the block the
    capture's ``grads`` maps each weight's name to its ``LinearWeightGrad``, unless
    ``other_use`` says the weight was used some other way, in which case the pass must be
    redone with autograd. Used on the *reference* of ``numerics_checks``: VGG16's fc6 gradient
    is 822 MB in float64, and the candidate's own gradient of it, from its own backward, is
    compared with the reference's formula block by block instead of with a second full copy.
    Weights of ``nn.Linear`` modules with at least ``min_numel`` elements (default
    ``FORMULA_MIN_NUMEL``), registered once, qualify; every other parameter keeps autograd.
    """
    min_numel = FORMULA_MIN_NUMEL if min_numel is None else min_numel
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    frozen: dict[int, str] = {}
    weights: list[nn.Parameter] = []
    for mname, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if (isinstance(mod, nn.Linear) and isinstance(w, nn.Parameter) and w.requires_grad
                and w.numel() >= min_numel and uses.get(id(w)) == 1):
            frozen[id(w)] = f"{mname}.weight" if mname else "weight"
            weights.append(w)
    capture = FormulaCapture(frozen)
    if not frozen:
        yield capture
        return
    try:
        for w in weights:
            w.requires_grad_(False)
        with capture:
            yield capture
        if capture.other_use is None:
            capture.finish(model)
    finally:
        for w in weights:
            w.requires_grad_(True)


def _reference_train_pass(
    ref: nn.Module, x: torch.Tensor, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, Expected]]:
    """The reference's train pass: outputs, input gradient, and its parameter gradients, the
    large ``nn.Linear`` ones by formula (``linear_grads_by_formula``). When a frozen weight
    turns out to be used outside ``F.linear``, the buffers (BN statistics) are put back as they
    were and the pass is run again with autograd for every weight."""
    with linear_grads_by_formula(ref) as capture:
        # a rerun needs the buffers as they were; there is none without a frozen weight
        buffers = {n: b.clone() for n, b in ref.named_buffers()} if capture.frozen else {}
        out, gx, grads = _forward_backward(ref, x, seed, train=True)
    if capture.other_use is None:
        return out, gx, {**grads, **capture.grads}
    with torch.no_grad():
        for n, b in ref.named_buffers():
            b.copy_(buffers[n])
    ref.zero_grad(set_to_none=True)
    out, gx, grads = _forward_backward(ref, x, seed, train=True)
    return out, gx, dict(grads)


def _record(model: nn.Module, x: torch.Tensor, seed: int, train: bool) -> list[tuple[str, str, int, torch.Tensor]]:
    """(name, kind, call index, output copy) of every module call, in the order calls finish."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: dict[str, int] = {}
    out: list[tuple[str, str, int, torch.Tensor]] = []

    def hook(mod: nn.Module, _inp: object, output: object) -> None:
        name = names.get(id(mod), "?")
        calls[name] = calls.get(name, 0) + 1
        tensors = _tensors(output)
        if tensors:  # copy: a later in-place op (ReLU(inplace=True)) would change it
            out.append((name, type(mod).__name__, calls[name], tensors[0].detach().clone()))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        model.train(train)
        torch.manual_seed(seed)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return out


def first_divergence(candidate: nn.Module, reference: nn.Module, x: torch.Tensor, seed: int, train: bool,
                     modules: Mapping[str, str] | None = None) -> str | None:
    """Name the first module (in the order calls finish) whose output differs.

    Modules are matched by qualified name and call number, so a wrong activation, a missing
    shortcut or a swapped concatenation is reported at the module where it happens.
    """
    ref = {(n, i): (k, t) for n, k, i, t in _record(reference, x, seed, train)}
    for name, kind, i, got in _record(candidate, x, seed, train):
        ref_module = (modules or {}).get(name, name)
        if (ref_module, i) not in ref:
            continue
        ref_kind, exp = ref[(ref_module, i)]
        if (m := compare_tensors("output", got, exp)) is not None:
            call = f", call {i}" if i > 1 else ""
            label = (name or "<root>") + (f" (reference {ref_module})" if ref_module != name else "")
            kinds = kind if kind == ref_kind else f"{kind}; reference {ref_kind}"
            return f"first divergence at {label} ({kinds}{call}): {m}"
    return None


def share_parameters(candidate: Callable[[], nn.Module] | nn.Module, reference: nn.Module,
                     key_map: Mapping[str, str] | None = None) -> nn.Module:
    """The candidate with the reference's state: parameters *shared*, buffers copied.

    Neither forward nor backward writes to a parameter, so both models can read the same
    storage: VGG16's 138M float64 weights then exist once (1.1 GB) instead of twice. Buffers
    (BN running statistics) are written by a train-mode forward and are copied. A strict
    load: missing, unexpected or mis-shaped keys raise as ``load_state_dict`` does.
    """
    params = {n for n, _ in reference.named_parameters()}
    names = key_map or {}
    state = {names.get(k, k): (v if k in params else v.clone()) for k, v in reference.state_dict().items()}
    # on meta, the load below gives it the reference's tensors: no storage of its own at all
    model = (copy.deepcopy(candidate).double() if isinstance(candidate, nn.Module)
             else _meta_or_built(candidate, torch.float64)[0])
    # the candidate's own state_dict metadata (module versions): a module's _load_from_state_dict
    # may read it (torchvision's MNASNet refuses a state without its version)
    own = model.state_dict()
    metadata = state_dict_metadata(own)
    # a model written without BatchNorm's step counter (F.batch_norm with its own buffers)
    state = OrderedDict((k, v) for k, v in state.items() if k in own or not k.endswith("num_batches_tracked"))
    with_state_dict_metadata(state, metadata)
    ties = _ties(model)
    model.load_state_dict(state, strict=True, assign=True)  # one new Parameter per key ...
    _retie(model, ties)  # ... so parameters used in two places are made one again
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"candidate tensors not in the reference's state_dict: {', '.join(left[:5])}")
    return model


def numerics_checks(
    candidate: nn.Module | Callable[[], nn.Module],
    reference: nn.Module | Callable[[], nn.Module],
    input_size: tuple[int, ...],
    batch_size: int = 2,
    seed: int = 0,
    key_map: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Randomize the reference, give the candidate its state, compare in float64.

    ``candidate`` and ``reference`` are zero-argument factories (built with ``materialize``,
    skipping their own initialisation) or modules (copied, so the caller's modules are left
    as they were). ``key_map`` (reference key -> candidate key, from ``conformance.align``)
    says where each reference tensor goes in the candidate; names not in it are taken as equal.
    Returns failures by check name: ``eval_output``, ``train_output``,
    ``input_grad``, ``param_grads``, ``bn_running_stats``, ``finite_grads``.

    Memory: the two models share their parameters (``share_parameters``), and each candidate
    gradient is compared with the reference's the moment backward produces it, then both are
    dropped. The reference's gradients of large ``nn.Linear`` weights are not materialized at
    all (``linear_grads_by_formula``: they are computed from the layer's input and output
    gradient, block by block, as they are compared). The peak is one copy of the weights, the
    reference's other gradients and the candidate's largest single gradient: for VGG16 in
    float64, 1.1 + 0.15 + 0.8 GB instead of 1.1 + 1.1 + 0.8 (fc6 and fc7 go by formula).
    """
    ref = randomize_(copy.deepcopy(reference).double() if isinstance(reference, nn.Module) else materialize(reference),
                     seed)
    cand = share_parameters(candidate, ref, key_map)
    ref_name = {c: r for r, c in (key_map or {}).items()}  # candidate key -> reference key
    modules = {c.rpartition(".")[0]: r.rpartition(".")[0] for c, r in ref_name.items()}
    x = torch.randn((batch_size, *input_size), generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    failures: dict[str, list[str]] = {k: [] for k in ("eval_output", "input_grad", "train_output", "param_grads",
                                                      "bn_running_stats", "finite_grads")}

    def outputs(tag: str, got: list[torch.Tensor], exp: list[torch.Tensor]) -> list[str]:
        if len(got) != len(exp):
            return [f"{tag}: reference returns {len(exp)} tensor(s), candidate {len(got)}"]
        return [m for i, (g, e) in enumerate(zip(got, exp, strict=False))
                if (m := compare_tensors(f"{tag}[{i}]", g, e))]

    # the reference's passes first (eval, then train keeping its gradients), so a candidate
    # that wrote to the shared weights could not change what it is compared with
    r_eval, r_eval_gx, _ = _forward_backward(ref, x, seed, train=False)
    r_out, r_gx, r_grads = _reference_train_pass(ref, x, seed)
    ref.zero_grad(set_to_none=True)  # r_grads holds them now; freed one by one below
    weights = {n: p.detach().sum() for n, p in cand.named_parameters()}

    c_out, c_gx, _ = _forward_backward(cand, x, seed, train=False)
    failures["eval_output"] = outputs("eval output", c_out, r_eval)
    if m := compare_tensors("input gradient (eval)", c_gx, r_eval_gx):
        failures["input_grad"].append(m)

    # train mode: each candidate gradient is checked and compared as soon as it is accumulated
    seen: set[str] = set()

    def on_grad(name: str, p: torch.Tensor) -> None:
        seen.add(name)
        g = p.grad
        if g is None:
            return
        if not all_finite(g):
            failures["finite_grads"].append(f"{name}: gradient has {int((~torch.isfinite(g)).sum())} non-finite values")
        rname = ref_name.get(name, name)
        label = name if rname == name else f"{name} (reference {rname})"
        if rname not in r_grads:
            failures["param_grads"].append(f"{label}: candidate has a gradient, reference none")
        elif m := compare_tensors(f"grad of {label}", g, r_grads.pop(rname)):
            failures["param_grads"].append(m)
        p.grad = None

    handles = [p.register_post_accumulate_grad_hook(lambda p, n=n: on_grad(n, p))
               for n, p in cand.named_parameters() if p.requires_grad]
    try:
        c_out, c_gx, _ = _forward_backward(cand, x, seed, train=True)
    finally:
        for h in handles:
            h.remove()
    failures["train_output"] = outputs("train output", c_out, r_out)
    if m := compare_tensors("input gradient (train)", c_gx, r_gx):
        failures["input_grad"].append(m)
    failures["param_grads"] += [f"{name}: reference has a gradient, candidate none" for name in r_grads]
    r_grads.clear()
    failures["train_output"] += [
        f"{n}: the candidate's forward or backward wrote to this parameter in place; "
        "a model must not change its weights"
        for n, p in cand.named_parameters() if not torch.equal(p.detach().sum(), weights[n])
    ]
    failures["finite_grads"] += [f"{name}: received no gradient" for name, p in cand.named_parameters()
                                 if p.requires_grad and name not in seen]
    c_state, r_state = cand.state_dict(), ref.state_dict()
    for key, value in r_state.items():
        ckey = (key_map or {}).get(key, key)
        if ckey not in c_state:
            continue  # a step counter the candidate does not keep (share_parameters)
        if (("running_" in key or "num_batches" in key)
                and (m := compare_tensors(f"{ckey} after a train step", c_state[ckey], value))):
            failures["bn_running_stats"].append(m)
    # where did it go wrong? (reruns with hooks only when an output differs)
    for check_name, train in (("eval_output", False), ("train_output", True)):
        if failures[check_name] and (where := first_divergence(cand, ref, x, seed, train, modules)):
            failures[check_name].insert(0, where)
    return failures
