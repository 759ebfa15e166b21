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

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

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


# In-place fills whose meta kernels are Python references wrapped in torch._disable_dynamo:
# the first such call in a process imports torch._dynamo (1.5-5 s and ~100-180 MB here; a
# cProfile of a cold meta build of VGG16 showed 5.6 of its 5.6 s in that import, reached from
# kaiming_normal_). On a meta tensor a fill changes nothing (there is no data), so a build on
# meta skips them: a cold parameter count on meta drops from seconds to milliseconds.
_META_NOOP_FILLS = frozenset({
    "normal_", "erfinv_", "clamp_", "clamp_min_", "clamp_max_", "exponential_", "log_normal_",
    "cauchy_", "geometric_",
})


class _SkipMetaFills(TorchFunctionMode):
    """Make the value-only fills above no-ops on meta tensors (no shape ever changes)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _META_NOOP_FILLS:
            # Tensor.normal_(t, ...) passes t first; torch.nn.init.normal_ passes tensor=t
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Call ``factory`` with ``meta`` as the default device: shapes only, no storage.

    Tensors the factory pins to another device explicitly (``torch.zeros(..., device="cpu")``
    registered as a buffer) are moved to meta afterwards, so the forward pass sees one device.
    """
    with torch.device("meta"), _SkipMetaFills():
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


def _arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _dispatch_mode_active() -> bool:
    """Whether a TorchDispatchMode (FlopCounterMode) is watching the aten ops of this pass."""
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
    except ImportError:  # pragma: no cover - older torch: assume watched, take no shortcut
        return True
    return _get_current_dispatch_mode() is not None


class _MetaShapeOnly(TorchFunctionMode):
    """On meta inputs, answer a few shape-preserving ops without running their meta kernels.

    In torch 2.x the meta kernels of batch norm, hardtanh (ReLU6), hardswish, hardsigmoid and
    out-of-place relu are Python decompositions: about 1-2 ms a call against 0.03 ms for a
    convolution, so they made a meta forward pass of MobileNet v2 slower than a real CPU pass
    (a cProfile of ``summarize(mobilenet_v2)`` showed ``native_batch_norm_helper`` and
    ``_prim_elementwise_meta`` in about two thirds of the time). Their output has the input's
    shape and dtype, so an empty meta tensor like the input (or the input itself, in place)
    is the same answer for every purpose here. ``F.linear``'s meta kernel (the addmm
    decomposition) imports ``torch._dynamo`` on its first call in a process (1.5-5 s, the
    whole cold cost of a VGG16 summary); its output shape is ``(*x.shape[:-1], out)``, so it
    is answered here too, except under a dispatch mode (FlopCounterMode must see the matmul);
    so is dropout (its train-mode meta kernel imports ``torch._dynamo`` the same way).
    The checks the real op makes first (channel count of the statistics, more than one value
    per channel in training, min <= max, matching in_features and dtypes) are made here too;
    anything else goes to the real op, which raises as before.
    """

    _INPLACE_ARG = {F.relu: 1, F.relu6: 1, F.hardtanh: 3, F.hardswish: 1, F.hardsigmoid: 1}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        x = _arg(args, kwargs, 0, "input")
        if isinstance(x, torch.Tensor) and x.is_meta:
            if func is F.batch_norm and self._batch_norm_ok(x, args, kwargs):
                return torch.empty_like(x)
            pos = self._INPLACE_ARG.get(func)
            if pos is not None and (func is not F.hardtanh or self._hardtanh_ok(args, kwargs)):
                return x if _arg(args, kwargs, pos, "inplace", False) else torch.empty_like(x)
            if func is F.dropout and self._dropout_ok(args, kwargs):
                return x if _arg(args, kwargs, 3, "inplace", False) else torch.empty_like(x)
            if func is F.linear and not _dispatch_mode_active():
                out = self._linear_shape(x, _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias"))
                if out is not None:
                    return x.new_empty(out)
        return func(*args, **kwargs)

    @staticmethod
    def _dropout_ok(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        p = _arg(args, kwargs, 1, "p", 0.5)
        return isinstance(p, (int, float)) and 0.0 <= p <= 1.0

    @staticmethod
    def _linear_shape(x: torch.Tensor, w: Any, b: Any) -> tuple[int, ...] | None:
        # Only where the real op would succeed: same dtype, in_features match, bias (out,).
        if not (isinstance(w, torch.Tensor) and w.is_meta and w.dim() == 2 and x.dim() >= 1):
            return None
        if x.dtype != w.dtype or x.shape[-1] != w.shape[1]:
            return None
        if b is not None and not (isinstance(b, torch.Tensor) and b.is_meta and b.dtype == x.dtype
                                  and b.dim() == 1 and b.numel() == w.shape[0]):
            return None
        return (*x.shape[:-1], w.shape[0])

    @staticmethod
    def _batch_norm_ok(x: torch.Tensor, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        if x.dim() < 2:
            return False
        channels = x.shape[1]
        stats = [_arg(args, kwargs, i, n) for i, n in enumerate(("running_mean", "running_var", "weight", "bias"), 1)]
        for t in stats:
            if t is not None and not (isinstance(t, torch.Tensor) and t.is_meta and t.dim() == 1 and t.numel() == channels):
                return False
        if _arg(args, kwargs, 5, "training", False):
            return math.prod(x.shape) // max(channels, 1) > 1  # more than one value per channel
        return stats[0] is not None and stats[1] is not None  # eval needs running statistics

    @staticmethod
    def _hardtanh_ok(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        low, high = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
        return isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high


def run_forward(module: nn.Module, inputs: Sequence[torch.Tensor], rows: Sequence[Any] = ()) -> Any:
    """``module(*inputs)``; an exception becomes a one-line ``ForwardError`` naming the
    innermost module that was running and carrying the ``rows`` recorded so far.

    On meta inputs a few shape-preserving ops skip their slow meta kernels (``_MetaShapeOnly``).
    """
    names = {id(m): n for n, m in module.named_modules(remove_duplicate=False)}
    stack: list[nn.Module] = []

    def enter(mod: nn.Module, _inp: object) -> None:
        stack.append(mod)

    def leave(mod: nn.Module, _inp: object, _out: object) -> None:
        if stack and stack[-1] is mod:
            stack.pop()

    handles = [h for m in module.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    shape_only = _MetaShapeOnly() if inputs and all(x.is_meta for x in inputs) else contextlib.nullcontext()
    try:
        with shape_only:
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
