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

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

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


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter and floating buffer with seeded random values, in place.

    Weights of rank >= 2 get variance 2/fan_in (activations keep their scale through deep
    stacks), 1-d parameters U(-0.2, 0.2) around their role (BN gamma around 1), running
    variances U(0.5, 1.5), other floating buffers U(-0.2, 0.2).
    """
    gen = torch.Generator().manual_seed(seed)

    def fill(t: torch.Tensor, low: float, high: float) -> None:
        t.uniform_(low, high, generator=gen)

    with torch.no_grad():
        for mod in model.modules():
            is_bn = isinstance(mod, _BatchNorm) or type(mod).__name__.startswith(("BatchNorm", "GroupNorm", "LayerNorm"))
            for pname, p in mod.named_parameters(recurse=False):
                if p.dim() >= 2:
                    fan_in = p[0].numel()
                    bound = math.sqrt(6.0 / max(fan_in, 1))  # U(-b, b) has variance b^2/3 = 2/fan_in
                    fill(p, -bound, bound)
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


def materialize(factory: Callable[[], nn.Module], dtype: torch.dtype = torch.float64) -> nn.Module:
    """Build ``factory``'s model in ``dtype`` on the CPU *without running its initialisation*.

    The model is built on ``meta`` and given uninitialised CPU storage: every value must be
    overwritten afterwards (``randomize_`` or ``load_state_dict``), which is what the
    numerical checks do anyway, and it spares building VGG's 138M weights twice. A model with
    non-persistent buffers (not in its state_dict, so nothing would overwrite them) is built
    normally instead.
    """
    with torch.device("meta"):
        model = factory()
    if set(dict(model.named_buffers())) - set(model.state_dict()):
        return factory().to(dtype)
    return model.to(dtype).to_empty(device="cpu")


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


def compare_tensors(name: str, got: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """``None`` if close; otherwise one line: name, mismatch count, worst element, tolerance."""
    if got.shape != expected.shape:
        return f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if torch.equal(got, expected) and all_finite(got):  # the common case, and cheap
        return None
    got64, exp64 = got.detach().double(), expected.detach().double()
    gnf, enf = ~torch.isfinite(got64), ~torch.isfinite(exp64)
    if gnf.any() or enf.any():
        if torch.equal(gnf, enf) and torch.equal(got64[gnf], exp64[gnf]):
            got64, exp64 = got64[~gnf], exp64[~enf]
        else:
            return f"{name}: {int(gnf.sum())} non-finite values in candidate vs {int(enf.sum())} in reference"
    if got64.numel() == 0:
        return None
    scale = float(exp64.abs().max())
    tol = atol * max(scale, 1.0) + rtol * exp64.abs()
    diff = (got64 - exp64).abs()
    bad = diff > tol
    if not bad.any():
        return None
    worst = int(torch.argmax(diff - tol))
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), diff.shape)) if diff.dim() else ()
    return (
        f"{name}: {int(bad.sum())}/{bad.numel()} elements differ; worst at index {idx}: "
        f"expected {float(exp64.flatten()[worst]):.6g}, got {float(got64.flatten()[worst]):.6g} "
        f"(|diff| {float(diff.flatten()[worst]):.3g}, rtol {rtol:g}, atol {atol:g}*{max(scale, 1.0):.3g})"
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


def first_divergence(candidate: nn.Module, reference: nn.Module, x: torch.Tensor, seed: int, train: bool) -> str | None:
    """Name the first module (in the order calls finish) whose output differs.

    Modules are matched by qualified name and call number, so a wrong activation, a missing
    shortcut or a swapped concatenation is reported at the module where it happens.
    """
    ref = {(n, i): (k, t) for n, k, i, t in _record(reference, x, seed, train)}
    for name, kind, i, got in _record(candidate, x, seed, train):
        if (name, i) not in ref:
            continue
        ref_kind, exp = ref[(name, i)]
        if (m := compare_tensors("output", got, exp)) is not None:
            call = f", call {i}" if i > 1 else ""
            label = name or "<root>"
            kinds = kind if kind == ref_kind else f"{kind}; reference {ref_kind}"
            return f"first divergence at {label} ({kinds}{call}): {m}"
    return None


def numerics_checks(
    candidate: nn.Module | Callable[[], nn.Module],
    reference: nn.Module | Callable[[], nn.Module],
    input_size: tuple[int, ...],
    batch_size: int = 2,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Randomize the reference, copy its state into the candidate, compare in float64.

    ``candidate`` and ``reference`` are zero-argument factories (built with ``materialize``,
    skipping their own initialisation) or modules (copied, so the caller's modules are left
    as they were). Returns failures by check name: ``eval_output``, ``train_output``,
    ``input_grad``, ``param_grads``, ``bn_running_stats``, ``finite_grads``.
    """

    def prepare(m: nn.Module | Callable[[], nn.Module]) -> nn.Module:
        return copy.deepcopy(m).double() if isinstance(m, nn.Module) else materialize(m)

    ref = randomize_(prepare(reference), seed)
    cand = prepare(candidate)
    cand.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn((batch_size, *input_size), generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    failures: dict[str, list[str]] = {k: [] for k in ("eval_output", "input_grad", "train_output", "param_grads", "bn_running_stats", "finite_grads")}

    def outputs(tag: str, got: list[torch.Tensor], exp: list[torch.Tensor]) -> list[str]:
        if len(got) != len(exp):
            return [f"{tag}: reference returns {len(exp)} tensor(s), candidate {len(got)}"]
        return [m for i, (g, e) in enumerate(zip(got, exp, strict=False)) if (m := compare_tensors(f"{tag}[{i}]", g, e))]

    # eval mode: outputs and input gradients
    c_out, c_gx, _ = _forward_backward(cand, x, seed, train=False)
    r_out, r_gx, _ = _forward_backward(ref, x, seed, train=False)
    failures["eval_output"] = outputs("eval output", c_out, r_out)
    if m := compare_tensors("input gradient (eval)", c_gx, r_gx):
        failures["input_grad"].append(m)

    # train mode: outputs, every parameter gradient, BN running stats after the step
    c_out, c_gx, c_grads = _forward_backward(cand, x, seed, train=True)
    r_out, r_gx, r_grads = _forward_backward(ref, x, seed, train=True)
    failures["train_output"] = outputs("train output", c_out, r_out)
    if m := compare_tensors("input gradient (train)", c_gx, r_gx):
        failures["input_grad"].append(m)
    for name, g in r_grads.items():
        if name not in c_grads:
            failures["param_grads"].append(f"{name}: reference has a gradient, candidate none")
        elif m := compare_tensors(f"grad of {name}", c_grads[name], g):
            failures["param_grads"].append(m)
    for name in sorted(set(c_grads) - set(r_grads)):
        failures["param_grads"].append(f"{name}: candidate has a gradient, reference none")
    c_state, r_state = cand.state_dict(), ref.state_dict()
    for key, value in r_state.items():
        if ("running_" in key or "num_batches" in key) and (m := compare_tensors(f"{key} after a train step", c_state[key], value)):
            failures["bn_running_stats"].append(m)
    # where did it go wrong? (reruns with hooks only when an output differs)
    for check_name, train in (("eval_output", False), ("train_output", True)):
        if failures[check_name] and (where := first_divergence(cand, ref, x, seed, train)):
            failures[check_name].insert(0, where)
    for name, p in cand.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            failures["finite_grads"].append(f"{name}: received no gradient")
        elif not all_finite(p.grad):
            failures["finite_grads"].append(f"{name}: gradient has {int((~torch.isfinite(p.grad)).sum())} non-finite values")
    return failures
