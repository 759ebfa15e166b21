"""Per-layer tables computed on the ``meta`` device: shapes and parameters, no weights.

``layer_table(factory, input_size)`` builds the model under ``torch.device("meta")``, runs
one forward pass with forward hooks on every submodule, and returns one row per module call
in the order the calls *finish* (so a container follows its children, as in torchsummary).
Building on meta allocates no storage, so VGG16's 138M parameters cost nothing.

A module that already holds real weights is never moved: ``to_meta`` makes a meta copy
(``copy.deepcopy`` with every parameter and buffer pre-mapped to an empty meta tensor, so the
copy allocates nothing and the caller's model is left as it was).

``run_forward`` runs the pass; if it raises, a one-line ``ForwardError`` names the innermost
module that was running and carries the rows recorded so far. ``conformance.summary`` (the
torchsummary layout) and ``conformance.flops`` (FlopCounterMode) build on the same helpers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .errors import ConformanceError

__all__ = [
    "ForwardError",
    "LayerRow",
    "build_on_meta",
    "layer_table",
    "meta_inputs",
    "meta_module",
    "run_forward",
    "to_meta",
]

ModelLike = nn.Module | Callable[[], nn.Module]


@dataclass(frozen=True)
class LayerRow:
    name: str  # qualified module name ("" for the root)
    kind: str  # class name
    out_shape: tuple[int, ...]  # per sample (batch dimension dropped); () if not a tensor
    params: int  # parameters owned directly by the module (recurse=False)
    is_leaf: bool


class ForwardError(ConformanceError):
    """The forward pass raised. ``where`` is the qualified name of the innermost module that
    was running ("" for the root), ``rows`` what was recorded before the failure."""

    def __init__(self, message: str, rows: Sequence[Any] = (), where: str | None = None) -> None:
        super().__init__(message)
        self.rows = list(rows)
        self.where = where


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Call ``factory`` with ``meta`` as the default device: shapes only, no storage.

    Tensors the factory pins to another device explicitly (``torch.zeros(..., device="cpu")``
    registered as a buffer) are moved to meta afterwards, so the forward pass sees one device.
    """
    with torch.device("meta"):
        model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory returned {type(model).__name__}, not an nn.Module")
    if not _is_meta(model):
        model = model.to("meta")  # only what the factory pinned elsewhere; nothing real to lose
    return model


def to_meta(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers are empty meta tensors.

    The original keeps its weights, device and train/eval flags (a copy is made even when it
    is already on meta, so setting the copy's mode never touches the caller's model).
    Parameters keep ``requires_grad`` (the trainable flag that summaries report) and shared
    tensors stay shared.
    """
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    try:
        return copy.deepcopy(model, memo)
    except Exception as exc:  # e.g. a module holding a lock or an open file
        raise TypeError(
            f"cannot make a meta copy of {type(model).__name__} ({type(exc).__name__}: {exc}); "
            "pass a zero-argument factory instead, so the model is built on meta directly"
        ) from exc


def meta_module(model: ModelLike) -> nn.Module:
    """``model`` on meta: a factory is built there, a module is copied there (not moved)."""
    if isinstance(model, nn.Module):
        return to_meta(model)
    if not callable(model):
        raise TypeError(f"expected an nn.Module or a zero-argument factory, got {type(model).__name__}")
    return build_on_meta(model)


def meta_inputs(
    input_size: Sequence[int] | Sequence[Sequence[int]], batch_size: int = 2, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Empty meta tensors of shape ``(batch_size, *size)``: one per input.

    ``input_size`` is one size ``(C, H, W)`` or a list of sizes (a model with several inputs).
    """
    sizes: list[Sequence[int]] = [input_size] if _is_one_size(input_size) else list(input_size)  # type: ignore[list-item, arg-type]
    out = []
    for size in sizes:
        dims = tuple(int(d) for d in size)
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"input_size: expected positive dimensions such as (3, 224, 224), got {dims}")
        out.append(torch.empty((batch_size, *dims), dtype=dtype, device="meta"))
    return out


def _is_one_size(size: object) -> bool:
    return isinstance(size, Sequence) and all(isinstance(d, int) for d in size)


def _shape_of(output: object) -> tuple[int, ...]:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(output[0].shape[1:])
    return ()


def layer_table(
    model: ModelLike,
    input_size: tuple[int, ...],
    batch_size: int = 2,
    train: bool = False,
) -> list[LayerRow]:
    """Rows for every module call of one forward pass at ``(batch_size, *input_size)``.

    ``model`` is a module (copied to meta, the original is untouched) or a zero-argument
    factory (built directly on meta). ``train`` selects the mode of the pass (eval by default,
    the mode in which torchvision's GoogLeNet/Inception skip their auxiliary heads).
    """
    module = meta_module(model)
    module.train(train)
    names = {id(m): n for n, m in module.named_modules()}
    rows: list[LayerRow] = []

    def hook(mod: nn.Module, _inp: object, out: object) -> None:
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        rows.append(
            LayerRow(names.get(id(mod), "?"), type(mod).__name__, _shape_of(out), own, not any(mod.children()))
        )

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            run_forward(module, meta_inputs(input_size, batch_size), rows)
    finally:
        for h in handles:
            h.remove()
    return rows


def run_forward(module: nn.Module, inputs: Sequence[torch.Tensor], rows: Sequence[Any] = ()) -> Any:
    """``module(*inputs)``; an exception becomes a one-line ``ForwardError`` naming the
    innermost module that was running and carrying the ``rows`` recorded so far."""
    names = {id(m): n for n, m in module.named_modules(remove_duplicate=False)}
    stack: list[nn.Module] = []

    def enter(mod: nn.Module, _inp: object) -> None:
        stack.append(mod)

    def leave(mod: nn.Module, _inp: object, _out: object) -> None:
        if stack and stack[-1] is mod:
            stack.pop()

    handles = [h for m in module.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        return module(*inputs)
    except Exception as exc:
        where = names.get(id(stack[-1]), "?") if stack else None
        kind = type(stack[-1]).__name__ if stack else type(module).__name__
        at = f"in {where!r} ({kind})" if where else f"in the root module ({kind})"
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        sizes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise ForwardError(f"forward pass on {inputs[0].device.type if inputs else 'meta'} with input {sizes} raised {reason} {at}", rows, where) from exc
    finally:
        for h in handles:
            h.remove()


def _is_meta(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return all(t.is_meta for t in tensors)
