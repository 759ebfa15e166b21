"""Per-layer tables computed on the ``meta`` device: shapes and parameters, no weights.

``layer_table(factory, input_size)`` builds the model under ``torch.device("meta")``, runs
one forward pass with forward hooks on every submodule, and returns one row per module call
in the order the calls *finish* (so a container follows its children, as in torchsummary).
Building on meta allocates no storage, so VGG16's 138M parameters cost nothing.

A module that already holds real weights is never moved: ``to_meta`` makes a meta copy
(``copy.deepcopy`` with every parameter and buffer pre-mapped to an empty meta tensor, so the
copy allocates nothing and the caller's model is left as it was).

``run_forward`` runs the pass; if it raises, a one-line ``ForwardError`` names the innermost
module that was running and carries the rows recorded so far. ``conformance.summary_table`` (the
torchsummary layout) and ``conformance.macs`` (FlopCounterMode) build on the same helpers.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .errors import ConformanceError
from .formulas.layers import conv2d_out, pool2d_out
from .torch_private import count_into, counted_by_flop_counter, hidden_empty, module_call_codes

__all__ = [
    "ForwardError",
    "LayerRow",
    "build_on_meta",
    "layer_table",
    "meta_build_hint",
    "meta_inputs",
    "meta_module",
    "meta_pass",
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


# Value-only initialisation on a meta tensor changes nothing (there is no data), yet costs:
# some fills' meta kernels are Python references wrapped in torch._disable_dynamo, so the first
# such call in a process imports torch._dynamo (1.5-5 s; a cProfile of a cold meta build of
# VGG16 showed 5.6 of its 5.6 s there, reached from kaiming_normal_), and every nn.init call
# runs a dozen torch functions through the device mode (about a third of a warm meta build of
# MobileNet v2). A build on meta answers these with their target tensor, unchanged.
_META_NOOP_FILLS = frozenset({
    "normal_", "uniform_", "zero_", "fill_", "erfinv_", "clamp_", "clamp_min_", "clamp_max_", "exponential_",
    "log_normal_", "cauchy_", "geometric_", "random_", "bernoulli_",
})
_META_NOOP_INITS = frozenset(
    f for name in dir(nn.init)
    if name.endswith("_") and not name.startswith("_") and callable(f := getattr(nn.init, name))
)


def _meta_target(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The meta tensor that ``func`` would only fill, or ``None`` when ``func`` must run."""
    if func in _META_NOOP_INITS or getattr(func, "__name__", None) in _META_NOOP_FILLS:
        # Tensor.normal_(t, ...) passes t first; torch.nn.init.normal_ passes tensor=t
        target = args[0] if args else kwargs.get("tensor")
        if isinstance(target, torch.Tensor) and target.is_meta:
            return target
    return None


class _SkipMetaFills(TorchFunctionMode):
    """Make ``torch.nn.init`` functions and value-only fills no-ops on meta tensors."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        target = _meta_target(func, args, kwargs)
        return func(*args, **kwargs) if target is None else target


@contextlib.contextmanager
def _meta_build_mode() -> Iterator[None]:
    """``meta`` as the default device, value-only fills skipped."""
    with torch.device("meta"), _SkipMetaFills():
        yield


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Call ``factory`` with ``meta`` as the default device: shapes only, no storage.

    Tensors the factory pins to another device explicitly (``torch.zeros(..., device="cpu")``
    registered as a buffer) are moved to meta afterwards, so the forward pass sees one device.
    """
    with _meta_build_mode():
        model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory returned {type(model).__name__}, not an nn.Module")
    if not _is_meta(model):
        model = model.to("meta")  # only what the factory pinned elsewhere; nothing real to lose
    return model


def meta_build_hint(exc: BaseException) -> str:
    """What to do when building on meta failed because the factory read a tensor's value
    (``.item()``, ``.tolist()``, ``float(t)``): "" for any other failure."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if "meta" in str(e).lower() and isinstance(e, (RuntimeError, NotImplementedError)):
            return ("; the model is built on the meta device first (shapes, parameters and MACs without "
                    "allocating weights), where a tensor has no values: compute values the builder needs, "
                    "such as a drop-path schedule, from Python numbers instead of .item() / .tolist() of a tensor")
        e = e.__cause__ or e.__context__
    return ""


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


@contextlib.contextmanager
def meta_pass(model: ModelLike, train: bool | None) -> Iterator[nn.Module]:
    """``model`` on meta, in train or eval mode (``None``: its own modes), for one pass.

    A module whose tensors are all on meta already is used as it is (a copy of a 300-module
    ResNet costs 0.1-0.2 s, and the gate makes several passes over its meta models) and its
    modules' train/eval flags are put back afterwards; anything else goes through
    ``meta_module`` (a factory is built on meta, a real module copied there).
    """
    if isinstance(model, nn.Module) and _is_meta(model):
        modes = [(m, m.training) for m in model.modules()]
        try:
            yield model if train is None else _set_mode(model, train)
        finally:
            for m, mode in modes:
                if m.training is not mode:
                    m.training = mode
    else:
        module = meta_module(model)
        yield module if train is None else _set_mode(module, train)


def _set_mode(module: nn.Module, train: bool) -> nn.Module:
    """``module.train(train)``. Where no class in the tree overrides ``train`` or ``__setattr__``,
    what that does is set each module's ``training`` flag, and it is set here directly, without
    ``Module.__setattr__``'s checks of the value against parameters, buffers and submodules."""
    modules = list(module.modules())
    if not isinstance(train, bool) or any(
            type(m).train is not nn.Module.train or type(m).__setattr__ is not nn.Module.__setattr__ for m in modules):
        return module.train(train)
    for m in modules:
        object.__setattr__(m, "training", train)
    return module


def meta_inputs(
    input_size: Sequence[int] | Sequence[Sequence[int]], batch_size: int = 2, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Empty meta tensors of shape ``(batch_size, *size)``: one per input.

    ``input_size`` is one size ``(C, H, W)`` or a list of sizes (a model with several inputs).
    """
    return [torch.empty((batch_size, *dims), dtype=dtype, device="meta") for dims in input_dims(input_size)]


def input_dims(input_size: Sequence[int] | Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """``input_size`` as one tuple of dimensions per input; ValueError unless all are positive."""
    sizes: list[Sequence[int]] = [input_size] if _is_one_size(input_size) else list(input_size)  # type: ignore[list-item, arg-type]
    out = []
    for size in sizes:
        dims = tuple(int(d) for d in size)
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"input_size: expected positive dimensions such as (3, 224, 224), got {dims}")
        out.append(dims)
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

    ``model`` is a module (one on meta is used as it is, its train/eval flags restored; any
    other is copied to meta, the original untouched) or a zero-argument factory (built
    directly on meta). ``train`` selects the mode of the pass (eval by default,
    the mode in which torchvision's GoogLeNet/Inception skip their auxiliary heads).
    """
    rows: list[LayerRow] = []
    with meta_pass(model, train) as module:
        names = {id(m): n for n, m in module.named_modules()}

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


class _MetaShapeOnly(TorchFunctionMode):
    """On meta inputs, answer the common CNN ops by their output-shape formulas.

    A meta kernel gives the same answer, but slowly: in torch 2.x the meta kernels of
    convolution, pooling, batch norm, most activations, broadcasting arithmetic and
    concatenation are Python functions. The first one a process runs imports sympy (0.4 s,
    through ``torch._check``) or ``torch._dynamo`` (1.5-5 s, through ``_disable_dynamo``), and
    each later call costs 0.1-3 ms against ~0.01 ms here: without this mode a meta forward
    pass of MobileNet v2 is slower than a real CPU pass (benchmarks/private_paths.py and the
    ``summary`` benchmark measure both). The shapes here follow the PyTorch docs' formulas
    (``conformance.formulas.layers.conv2d_out`` / ``pool2d_out``); tests hold them equal to
    the meta kernels over random hyper-parameters and every built-in architecture.

    Each op is answered only where the real op would succeed (the checks the kernels make
    first: ranks, channel counts, dtypes, broadcastable shapes, window sizes); anything else,
    including every error case, goes to the real op, which raises as before. Convolutions and
    ``linear`` are what FlopCounterMode counts: under it, an answered convolution or 2-d
    ``linear`` is handed to the counter's own bookkeeping as the aten op it would have dispatched (``aten.convolution``,
    ``aten.addmm`` / ``aten.mm``), so FlopCounterMode's formulas and module tracking apply;
    under any other dispatch mode they run for real.
    """

    _INPLACE_ARG = {F.relu: 1, F.relu6: 1, F.hardtanh: 3, F.hardswish: 1, F.hardsigmoid: 1}
    _UNARY = frozenset({torch.sigmoid, torch.Tensor.sigmoid, torch.tanh, torch.Tensor.tanh,
                        F.silu, F.gelu, F.sigmoid, F.tanh})
    _BINARY = frozenset({
        torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__,
        torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__,
        torch.sub, torch.Tensor.sub, torch.Tensor.__sub__,
    })
    _BINARY_INPLACE = frozenset({torch.Tensor.add_, torch.Tensor.__iadd__, torch.Tensor.mul_, torch.Tensor.__imul__,
                                 torch.Tensor.sub_, torch.Tensor.__isub__})

    # every function ``_answer`` (or the ``torch.cat`` branch) may answer; anything else --
    # ``Tensor.size``, ``requires_grad``, the hooks' own calls -- goes straight to the real op
    _ANSWERED = frozenset({
        *_INPLACE_ARG, *_UNARY, *_BINARY, *_BINARY_INPLACE, torch.cat, F.batch_norm, F.dropout, torch.flatten,
        torch.Tensor.flatten, F.pad, F.local_response_norm, F.adaptive_avg_pool2d, F.max_pool2d, F.avg_pool2d,
        F.conv2d, F.linear,
    })

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in self._ANSWERED:
            return func(*args, **kwargs)
        x = _arg(args, kwargs, 0, "input")
        out = None
        if func is torch.cat:
            out = _cat_shape(args, kwargs)
        elif isinstance(x, torch.Tensor) and x.is_meta:
            out = self._answer(func, x, args, kwargs)
        return func(*args, **kwargs) if out is None else out

    def _answer(self, func: Any, x: torch.Tensor, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
        """The op's result as an empty meta tensor, or ``None`` to run the real op."""
        if func in self._BINARY or func in self._BINARY_INPLACE:
            other = _arg(args, kwargs, 1, "other")
            shape = _broadcast(x, other)
            if shape is None:
                return None
            if func in self._BINARY_INPLACE:
                return x if shape == tuple(x.shape) else None
            return _empty(shape, x)
        if func is F.batch_norm:
            return _like(x) if self._batch_norm_ok(x, args, kwargs) else None
        pos = self._INPLACE_ARG.get(func)
        if pos is not None:
            if func is F.hardtanh and not self._hardtanh_ok(args, kwargs):
                return None
            return x if _arg(args, kwargs, pos, "inplace", False) else _like(x)
        if func in self._UNARY and x.is_floating_point():
            return _like(x)
        if func is F.dropout:
            if not self._dropout_ok(args, kwargs):
                return None
            return x if _arg(args, kwargs, 3, "inplace", False) else _like(x)
        if func is torch.flatten or func is torch.Tensor.flatten:
            return _flatten_shape(x, _arg(args, kwargs, 1, "start_dim", 0), _arg(args, kwargs, 2, "end_dim", -1))
        if func is F.pad:
            return _pad_shape(x, _arg(args, kwargs, 1, "pad"), _arg(args, kwargs, 2, "mode", "constant"))
        if func is F.local_response_norm:
            return _like(x) if x.dim() >= 3 and x.is_floating_point() else None
        if func is F.adaptive_avg_pool2d:
            return _adaptive_pool_shape(x, _arg(args, kwargs, 1, "output_size"))
        if func is F.max_pool2d or func is F.avg_pool2d:
            return _pool_shape(func is F.max_pool2d, x, args, kwargs)
        if func is F.conv2d or func is F.linear:
            counter = counted_by_flop_counter()
            if counter is False:
                return None  # an unknown dispatch mode is watching: let it see the real op
            if func is F.conv2d:
                call = _conv_call(x, args, kwargs)
                if call is None:
                    return None
                out, aten_args = call
                if counter is not None and not count_into(counter, torch.ops.aten.convolution, out, aten_args):
                    return None  # the counter would not take it: the real op, which it counts itself
                return out
            w, b = _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
            shape = self._linear_shape(x, w, b)
            if shape is None or (counter is not None and x.dim() != 2):
                return None  # FlopCounterMode would see the N-d input's own decomposition
            out = _empty(shape, x)
            if counter is not None:  # aten's linear: addmm(bias, x, w.t()) with a bias, else mm(x, w.t())
                wt = _empty((w.shape[1], w.shape[0]), w)  # the counter reads shapes only
                counted = count_into(counter, torch.ops.aten.mm, out, (x, wt)) if b is None else \
                    count_into(counter, torch.ops.aten.addmm, out, (b, x, wt))
                if not counted:
                    return None
            return out
        return None

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
            if t is not None and not (isinstance(t, torch.Tensor) and t.is_meta and t.dim() == 1
                                      and t.numel() == channels):
                return False
        if _arg(args, kwargs, 5, "training", False):
            return math.prod(x.shape) // max(channels, 1) > 1  # more than one value per channel
        return stats[0] is not None and stats[1] is not None  # eval needs running statistics

    @staticmethod
    def _hardtanh_ok(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
        low, high = _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0)
        return isinstance(low, (int, float)) and isinstance(high, (int, float)) and low <= high


def _empty(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """An empty meta tensor of ``like``'s dtype, made out of any dispatch mode's sight where
    torch allows it (``torch_private.hidden_empty``): an op FlopCounterMode dispatches runs
    through ``torch._disable_dynamo``, whose first call in a process imports torch._dynamo
    (1.5-5 s), and an empty tensor carries no FLOPs."""
    return hidden_empty(tuple(shape), like.dtype)


def _like(x: torch.Tensor) -> torch.Tensor:
    """An empty meta tensor of ``x``'s shape and dtype (``torch.empty_like``'s meta kernel is a
    Python reference that imports sympy on its first call)."""
    return _empty(x.shape, x)


_INTEGER_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})


def _broadcast(x: torch.Tensor, other: Any) -> tuple[int, ...] | None:
    """Broadcast shape of ``x`` with a same-dtype meta tensor or a Python number, else None."""
    if isinstance(other, (int, float)) and not isinstance(other, bool) and x.is_floating_point():
        return tuple(x.shape)
    if type(other) is int and x.dtype in _INTEGER_DTYPES:  # an int keeps an integer tensor's dtype
        return tuple(x.shape)  # (BatchNorm's num_batches_tracked.add_(1) in train mode)
    if not (isinstance(other, torch.Tensor) and other.is_meta and other.dtype == x.dtype):
        return None
    a, b = tuple(x.shape), tuple(other.shape)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    if any(i != j and 1 not in (i, j) for i, j in zip(a, b, strict=True)):
        return None
    return tuple(max(i, j) if 0 not in (i, j) else 0 for i, j in zip(a, b, strict=True))


def _ints(v: Any, n: int = 2) -> tuple[int, ...] | None:
    """``v`` as ``n`` non-negative ints (an int is repeated), or None if it is anything else."""
    if type(v) is tuple and len(v) == n and all(type(i) is int and i >= 0 for i in v):
        return v  # what nn.Conv2d and nn.MaxPool2d hold: the common case first
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v,) * n
    if isinstance(v, (tuple, list)) and len(v) == 1 and n > 1:
        v = tuple(v) * n
    if not (isinstance(v, (tuple, list)) and len(v) == n
            and all(isinstance(i, int) and not isinstance(i, bool) for i in v)):
        return None
    return tuple(v) if all(i >= 0 for i in v) else None


def _conv_call(x: torch.Tensor, args: Sequence[Any],
               kwargs: dict[str, Any]) -> tuple[torch.Tensor, tuple[Any, ...]] | None:
    """``F.conv2d``'s output, and its arguments as ``aten.convolution`` takes them (input,
    weight, bias, stride, padding, dilation, transposed, output_padding, groups)."""
    w, b = _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    stride, padding = _ints(_arg(args, kwargs, 3, "stride", 1)), _ints(_arg(args, kwargs, 4, "padding", 0))
    dilation, groups = _ints(_arg(args, kwargs, 5, "dilation", 1)), _arg(args, kwargs, 6, "groups", 1)
    if not (x.dim() == 4 and isinstance(w, torch.Tensor) and w.is_meta and w.dim() == 4 and w.dtype == x.dtype):
        return None
    if stride is None or padding is None or dilation is None or 0 in stride or 0 in dilation:
        return None
    if not (isinstance(groups, int) and groups > 0 and x.shape[1] == w.shape[1] * groups and w.shape[0] % groups == 0):
        return None
    if b is not None and not (isinstance(b, torch.Tensor) and b.is_meta and b.dtype == x.dtype
                              and b.shape == (w.shape[0],)):
        return None
    try:
        h, wd = (conv2d_out(x.shape[i + 2], w.shape[i + 2], stride[i], padding[i], dilation[i]) for i in (0, 1))
    except ValueError:  # the input is smaller than the window: the real op raises
        return None
    out = _empty((x.shape[0], w.shape[0], h, wd), x)
    return out, (x, w, b, stride, padding, dilation, False, (0, 0), groups)


def _pool_shape(is_max: bool, x: torch.Tensor, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    kernel = _ints(_arg(args, kwargs, 1, "kernel_size"))
    stride_arg = _arg(args, kwargs, 2, "stride")
    stride = kernel if stride_arg is None or stride_arg == [] or stride_arg == () else _ints(stride_arg)
    padding = _ints(_arg(args, kwargs, 3, "padding", 0))
    if is_max:
        dilation = _ints(_arg(args, kwargs, 4, "dilation", 1))
        ceil_mode, extra = _arg(args, kwargs, 5, "ceil_mode", False), _arg(args, kwargs, 6, "return_indices", False)
    else:
        dilation, ceil_mode = (1, 1), _arg(args, kwargs, 4, "ceil_mode", False)
        extra = _arg(args, kwargs, 6, "divisor_override", None) == 0  # the real op rejects 0
    if x.dim() != 4 or extra or kernel is None or stride is None or padding is None or dilation is None:
        return None
    if 0 in kernel or 0 in stride or 0 in dilation or not isinstance(ceil_mode, bool):
        return None
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):  # "pad should be at most half of kernel size"
        return None
    try:
        h, w = (pool2d_out(x.shape[i + 2], kernel[i], stride[i], padding[i], dilation[i], ceil_mode) for i in (0, 1))
    except ValueError:
        return None
    return _empty((x.shape[0], x.shape[1], h, w), x)


def _adaptive_pool_shape(x: torch.Tensor, output_size: Any) -> torch.Tensor | None:
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        size = tuple(x.shape[-2 + i] if s is None else s for i, s in enumerate(output_size))
    else:
        size = output_size
    out = _ints(size)
    if x.dim() not in (3, 4) or out is None or 0 in x.shape[-3:]:
        return None
    return _empty((*x.shape[:-2], *out), x)


def _flatten_shape(x: torch.Tensor, start: Any, end: Any) -> torch.Tensor | None:
    n = max(x.dim(), 1)
    if not (isinstance(start, int) and isinstance(end, int) and -n <= start < n and -n <= end < n):
        return None
    s, e = start % n, end % n
    if x.dim() == 0 or s > e:
        return None if s > e else _empty((1,), x)
    return _empty((*x.shape[:s], math.prod(x.shape[s:e + 1]), *x.shape[e + 1:]), x)


def _pad_shape(x: torch.Tensor, pad: Any, mode: Any) -> torch.Tensor | None:
    """Constant padding by non-negative amounts: each pair ``(left, right)`` from the last dim."""
    if mode != "constant" or not (isinstance(pad, (tuple, list)) and len(pad) % 2 == 0 and len(pad) // 2 <= x.dim()):
        return None
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pad):
        return None
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
    return _empty(shape, x)


def _cat_shape(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    tensors, dim = _arg(args, kwargs, 0, "tensors"), _arg(args, kwargs, 1, "dim", 0)
    if not (isinstance(tensors, (tuple, list)) and tensors and isinstance(dim, int) and not isinstance(dim, bool)):
        return None
    first = tensors[0]
    if not all(isinstance(t, torch.Tensor) and t.is_meta and t.dtype == first.dtype and t.dim() == first.dim()
               for t in tensors):
        return None
    if not -first.dim() <= dim < first.dim():
        return None
    d = dim % first.dim()
    if any(t.shape[:d] != first.shape[:d] or t.shape[d + 1:] != first.shape[d + 1:] for t in tensors):
        return None
    return _empty((*first.shape[:d], sum(t.shape[d] for t in tensors), *first.shape[d + 1:]), first)


def run_forward(module: nn.Module, inputs: Sequence[torch.Tensor], rows: Sequence[Any] = ()) -> Any:
    """``module(*inputs)``; an exception becomes a one-line ``ForwardError`` naming the
    innermost module that was running and carrying the ``rows`` recorded so far.

    On meta inputs a few shape-preserving ops skip their slow meta kernels (``_MetaShapeOnly``).
    The failing module is found after the fact, from the exception's traceback
    (``_innermost_module``), so a pass that succeeds runs no bookkeeping hooks (a pre-hook and
    a hook on every module cost about 40 % of a meta pass over MobileNet v2).
    """
    shape_only = _MetaShapeOnly() if inputs and all(x.is_meta for x in inputs) else contextlib.nullcontext()
    try:
        with shape_only:
            return module(*inputs)
    except Exception as exc:
        names = {id(m): n for n, m in module.named_modules(remove_duplicate=False)}
        failing = _innermost_module(exc, module)
        where = names.get(id(failing), "?") if failing is not None else None
        kind = type(failing if failing is not None else module).__name__
        at = f"in {where!r} ({kind})" if where else f"in the root module ({kind})"
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        sizes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise ForwardError(f"forward pass on {inputs[0].device.type if inputs else 'meta'} with input {sizes} "
                           f"raised {reason} {at}", rows, where) from exc


def _innermost_module(exc: BaseException, root: nn.Module) -> nn.Module | None:
    """The deepest module of ``root``'s tree whose call was on the stack when ``exc`` was
    raised: the ``self`` of the last ``nn.Module`` call frame in the traceback. Only call
    frames count: an error in a child's ``__getattr__`` or in ``seq[5]``, reached from the
    parent's ``forward``, is the parent's. Only those frames' locals are read, so the running
    frames (``run_forward``'s own, which holds ``exc``) are not snapshotted into a reference
    cycle that would keep a failed pass alive until the garbage collector runs. ``None`` when
    no call frame of the tree is in the traceback. (On a torch without these two methods, any
    frame whose ``self`` is a module of the tree counts.)
    """
    tree = {id(m): m for m in root.modules()}
    call_codes = module_call_codes()
    found = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code in call_codes or not call_codes:
            owner = frame.f_locals.get("self")
            if owner is not None and tree.get(id(owner)) is owner:
                found = owner
        tb = tb.tb_next
    return found


def _is_meta(model: nn.Module) -> bool:
    return all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
