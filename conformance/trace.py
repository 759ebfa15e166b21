"""One trace per model: every op that defines the architecture, in execution order.

``trace_model(model, input_size)`` runs one forward pass under a ``TorchFunctionMode``
(torch's public hook on every torch function call) and records each call at the level of
``torch.nn.functional``: ``F.conv2d``, ``F.batch_norm``, ``F.linear``, the pools, the
activations, additions, concatenations, reshapes. Module classes do not matter: a
``BatchNormAct2d`` subclass, a functional ``F.avg_pool2d`` in ``forward``, an in-place
``out += identity`` and Python control flow all show up as the ops they run. Each op keeps

* its canonical kind and attributes (stride, padding, dilation, groups, eps, momentum,
  kernel, ceil_mode, activation kind, concatenation arity, ...);
* the parameters and buffers it consumes, by identity, as state_dict keys with their role
  (``weight``, ``bias``, ``running_mean``, ...), also through a transposed or reshaped view
  of a weight (``x @ w.t() + b`` is a linear layer);
* the ops whose outputs it reads (the dataflow graph), the module path that was running,
  and its output shape.

Ops fall in two classes. *Significant* ops define the function's structure: every op that
consumes a parameter or buffer, pools, activations, and sums, products and concatenations
of two or more values computed from the input. *Glue* (views, reshapes, flatten, dropout in
eval mode, slicing, padding, concatenation with constants) changes layout, not structure;
glue is kept in the trace but skipped when two traces are compared
(``conformance.align``); whatever glue does to the numbers, the numerical checks see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .errors import ConformanceError

__all__ = ["Op", "Trace", "TraceError", "trace_model"]

# ops recognised by name (the ``__name__`` of the function torch hands the mode). An op not
# listed here is still recorded, as kind "op:NAME" with its plain arguments as attributes.
_CONV = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution"}
_POOL = {
    "max_pool1d": "max", "max_pool2d": "max", "_max_pool2d": "max", "max_pool2d_with_indices": "max",
    "avg_pool1d": "avg", "avg_pool2d": "avg",
    "adaptive_avg_pool1d": "adaptive_avg", "adaptive_avg_pool2d": "adaptive_avg",
    "adaptive_max_pool2d": "adaptive_max", "_adaptive_max_pool2d": "adaptive_max",
    "adaptive_max_pool2d_with_indices": "adaptive_max",
}
_ACTS = {
    "relu": "relu", "relu_": "relu", "relu6": "relu6", "hardswish": "hardswish", "hardswish_": "hardswish",
    "hardsigmoid": "hardsigmoid", "hardsigmoid_": "hardsigmoid", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "silu": "silu", "silu_": "silu", "gelu": "gelu", "tanh": "tanh", "tanh_": "tanh", "elu": "elu", "elu_": "elu",
    "leaky_relu": "leaky_relu", "leaky_relu_": "leaky_relu", "hardtanh": "hardtanh", "hardtanh_": "hardtanh",
    "softmax": "softmax", "log_softmax": "log_softmax", "mish": "mish", "selu": "selu",
}
_ADD = {"add", "add_", "__add__", "__iadd__", "__radd__"}
_SUB = {"sub", "sub_", "__sub__", "__isub__", "__rsub__"}
_MUL = {"mul", "mul_", "__mul__", "__imul__", "__rmul__"}
_DIV = {"div", "div_", "__truediv__", "__itruediv__"}
_MATMUL = {"matmul", "mm", "__matmul__", "addmm"}
_CAT = {"cat", "concat", "concatenate", "stack"}
_GLUE = {
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "view_as", "reshape_as", "t", "permute",
    "transpose", "__getitem__", "pad", "clone", "detach", "dropout", "dropout_", "dropout2d", "feature_dropout",
    "alpha_dropout", "expand", "expand_as", "to", "float", "double", "type_as", "chunk", "split", "narrow",
    "identity", "unbind",
}
_MEAN = {"mean"}
_BN = {"batch_norm", "instance_norm", "layer_norm", "group_norm"}
_LINEAR = {"linear"}
# functions whose call says nothing about the architecture (shape queries, asserts, dtype)
_IGNORED = {
    "dim", "size", "_assert", "numel", "__len__", "__bool__", "__format__", "__repr__", "is_floating_point",
    "__eq__", "__ne__", "__lt__", "__gt__", "__le__", "__ge__", "is_contiguous", "stride", "__iter__", "__hash__",
    "item", "tolist", "__index__", "__int__", "__float__", "data_ptr", "get_device", "element_size", "requires_grad_",
    "__setstate__", "__reduce_ex__", "__deepcopy__", "storage_offset", "has_names", "is_complex", "__contains__",
    "_is_view", "untyped_storage", "backward", "register_hook", "retain_grad", "__setitem__", "__array__",
    "empty", "zeros", "ones", "full", "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
    "new_empty", "new_full", "tensor", "as_tensor", "arange", "randn", "rand", "randint", "normal_", "uniform_",
    "zero_", "fill_", "copy_", "bernoulli_", "rand_like", "randn_like", "manual_seed",
}


class TraceError(ConformanceError):
    """The forward pass raised while being traced. ``where`` names the innermost module."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


@dataclass
class Op:
    """One recorded call. ``inputs`` are indices of the ops whose outputs it reads (-1: the
    model's input), in argument order; ``tensors`` the (role, state_dict key) it consumes."""

    index: int
    name: str  # the torch function's name, as called
    kind: str  # canonical: conv, linear, norm, pool, act, add, mul, cat, matmul, glue, op:NAME
    attrs: dict[str, Any]
    inputs: list[int]
    tensors: list[tuple[str, str]]
    module: str
    out_shape: tuple[int, ...]
    significant: bool = True
    note: str = ""

    def signature(self, with_shape: bool = False) -> tuple[Any, ...]:
        """What must be equal for two ops to play the same role (shapes of what it consumes
        included; the output's shape only when asked, since it follows from the input's)."""
        sig: tuple[Any, ...] = (self.kind, tuple(sorted(self.attrs.items())), tuple(r for r, _ in self.tensors))
        return sig + (self.out_shape,) if with_shape else sig

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={_fmt(v)}" for k, v in self.attrs.items())
        where = f" in {self.module}" if self.module else " in <root>"
        return f"{self.kind}({attrs}){where} -> {_fmt(self.out_shape)}"


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(map(_fmt, v)) + ")" if len(v) != 1 else f"({_fmt(v[0])},)"
    return str(v)


@dataclass
class Trace:
    """The ops of one forward pass, with the state_dict's shapes and the outputs' producers."""

    ops: list[Op]
    outputs: list[int]  # producer op index of each output tensor, in output order
    shapes: dict[str, tuple[int, ...]]  # state_dict key -> shape
    unused: list[str] = field(default_factory=list)  # state_dict keys no op consumed
    params: frozenset[str] = frozenset()  # the state_dict keys that are parameters (not buffers)
    input_size: tuple[int, ...] = ()
    train: bool = False


def _pair(v: Any, n: int = 2) -> tuple[Any, ...]:
    if isinstance(v, (list, tuple)):
        t = tuple(v)
        return t * n if len(t) == 1 else t
    return (v,) * n


def _bind(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], names: Sequence[str],
          defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    out.update(dict(zip(names, args, strict=False)))
    out.update({k: v for k, v in kwargs.items() if k in names or k in defaults})
    return out


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_BN_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


class _Recorder(TorchFunctionMode):
    """Records every torch function call of a forward pass (see the module docstring)."""

    def __init__(self, model: nn.Module, module_stack: list[str]) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.stack = module_stack
        # id of a tensor -> producer op index (-1: the input); ids stay valid because ``keep``
        # holds every tensor seen for the duration of the pass
        self.producer: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []
        state = model.state_dict(keep_vars=True)
        self.shapes = {k: tuple(t.shape) for k, t in state.items()}
        self.key_of: dict[int, str] = {}
        for k, t in state.items():
            self.key_of.setdefault(id(t), k)
        # tensors derived from one state tensor only (w.t(), w.view(...)): id -> key
        self.derived: dict[int, str] = {}
        self.used: set[str] = set()

    def mark_input(self, x: torch.Tensor) -> None:
        self.producer[id(x)] = -1
        self.keep.append(x)

    def _flat(self, args: Any) -> Iterator[torch.Tensor]:
        if isinstance(args, torch.Tensor):
            yield args
        elif isinstance(args, (list, tuple)):
            for a in args:
                yield from self._flat(a)
        elif isinstance(args, dict):
            for a in args.values():
                yield from self._flat(a)

    def _state_key(self, t: Any) -> str | None:
        if not isinstance(t, torch.Tensor):
            return None
        return self.key_of.get(id(t)) or self.derived.get(id(t))

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "") or str(func)
        if name in _IGNORED:
            return out
        tensors_in = list(self._flat((args, kwargs)))
        data_in = [self.producer[id(t)] for t in tensors_in if id(t) in self.producer]
        state_in = [k for t in tensors_in if (k := self._state_key(t)) is not None]
        outs = list(self._flat(out))
        if not outs:  # a shape, a number, a flag: nothing flows on from it
            return out
        if not data_in:
            # no value computed from the input: a view of one weight is remembered as that weight
            if len(state_in) == 1 and len(set(state_in)) == 1:
                for o in outs:
                    self.derived[id(o)] = state_in[0]
                    self.keep.append(o)
            return out
        op = self._classify(func, name, args, kwargs, tensors_in)
        self._fuse_bias(op, data_in)
        op.index = len(self.ops)
        op.inputs = data_in
        op.module = self.stack[-1] if self.stack else ""
        op.out_shape = tuple(outs[0].shape[1:]) if outs and outs[0].dim() > 0 else ()
        self.used.update(k for _, k in op.tensors)
        self.ops.append(op)
        for o in outs:
            self.producer[id(o)] = op.index
            self.keep.append(o)
        return out

    def _fuse_bias(self, op: Op, data_in: list[int]) -> None:
        """``y + b`` right after a bias-free linear layer, with ``b`` a 1-d parameter of its
        width, is that layer's bias (``x @ w.t() + b`` is ``F.linear(x, w, b)``)."""
        if op.kind != "add" or len(data_in) != 1 or len(op.tensors) != 1 or data_in[0] < 0:
            return
        prev = self.ops[data_in[0]]
        key = op.tensors[0][1]
        if prev.kind == "linear" and not prev.attrs["bias"] and self._shape(key) == (prev.attrs["weight"][0],):
            prev.attrs["bias"] = True
            prev.tensors.append(("bias", key))
            op.kind, op.attrs, op.tensors, op.significant = "glue", {"fn": "bias of the linear layer before"}, [], False

    def _shape(self, key: str) -> tuple[int, ...]:
        return self.shapes.get(key, ())

    def _roles(self, bound: dict[str, Any], names: Sequence[str]) -> list[tuple[str, str]]:
        return [(n, k) for n in names if (k := self._state_key(bound.get(n))) is not None]

    def _classify(self, func: Any, name: str, args: Sequence[Any], kwargs: dict[str, Any],
                  tensors_in: list[torch.Tensor]) -> Op:
        def op(kind: str, attrs: dict[str, Any], tensors: list[tuple[str, str]], significant: bool = True,
               note: str = "") -> Op:
            return Op(0, name, kind, attrs, [], tensors, "", (), significant, note)

        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if name in _CONV:
            b = _bind(func, args, kwargs, _CONV_ARGS,
                      {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1})
            w = b["weight"]
            nd = w.dim() - 2
            pad = b["padding"] if isinstance(b["padding"], str) else _pair(b["padding"], nd)
            attrs: dict[str, Any] = {"weight": tuple(w.shape), "stride": _pair(b["stride"], nd), "padding": pad,
                     "dilation": _pair(b["dilation"], nd), "groups": int(b["groups"]), "bias": b["bias"] is not None}
            return op("conv", attrs, self._roles(b, ("weight", "bias")))
        if name in _LINEAR:
            b = _bind(func, args, kwargs, ("input", "weight", "bias"), {"bias": None})
            attrs = {"weight": tuple(b["weight"].shape), "bias": b["bias"] is not None}
            return op("linear", attrs, self._roles(b, ("weight", "bias")))
        if name in _MATMUL:
            mats = [t for t in tensors_in if self._state_key(t) is not None]
            if name == "addmm":  # addmm(bias, x, w.t())
                b = _bind(func, args, kwargs, ("input", "mat1", "mat2"), {})
                w, bias = b["mat2"], b["input"]
                if self._state_key(w) is not None:
                    return op("linear", {"weight": (w.shape[1], w.shape[0]), "bias": True},
                              self._roles({"weight": w, "bias": bias}, ("weight", "bias")))
            if len(mats) == 1 and mats[0].dim() == 2:
                w = mats[0]
                # x @ w.t() uses a (in, out) view of an (out, in) weight
                return op("linear", {"weight": (w.shape[1], w.shape[0]), "bias": False},
                          [("weight", self._state_key(w) or "")])
            return op("matmul", {}, [("mat", k) for t in tensors_in if (k := self._state_key(t))])
        if name in _BN:
            if name == "batch_norm":
                b = _bind(func, args, kwargs, _BN_ARGS, {"weight": None, "bias": None, "training": False,
                                                         "momentum": 0.1, "eps": 1e-5})
                attrs = {"kind": "batch", "channels": int(x.shape[1]) if x is not None else 0, "eps": float(b["eps"]),
                         "momentum": None if b["momentum"] is None else float(b["momentum"]),
                         "affine": b["weight"] is not None, "running_stats": b["running_mean"] is not None}
                return op("norm", attrs, self._roles(b, ("weight", "bias", "running_mean", "running_var")))
            tensors = [(f"arg{i}", k) for i, t in enumerate(tensors_in) if (k := self._state_key(t))]
            return op("norm", {"kind": name.removesuffix("_norm"), **_plain(args[1:], kwargs)}, tensors)
        if name in _POOL or name in _MEAN:
            return self._pool(op, name, func, args, kwargs, x)
        if name in _ACTS:
            act = _ACTS[name]
            attrs = {"fn": act}
            if act == "hardtanh":
                lo, hi = (list(args[1:3]) + [kwargs.get("min_val", -1.0), kwargs.get("max_val", 1.0)])[:2] \
                    if len(args) >= 3 else (kwargs.get("min_val", -1.0), kwargs.get("max_val", 1.0))
                if float(lo) == 0.0 and float(hi) == 6.0:
                    attrs = {"fn": "relu6"}
                else:
                    attrs = {"fn": "hardtanh", "min": float(lo), "max": float(hi)}
            elif act == "leaky_relu":
                attrs["slope"] = float(args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01))
            return op("act", attrs, [])
        state = [(f"arg{i}", k) for i, t in enumerate(tensors_in) if (k := self._state_key(t))]
        data = [t for t in tensors_in if id(t) in self.producer]
        if name in _ADD | _SUB | _MUL | _DIV:
            kind = ("add" if name in _ADD else "sub" if name in _SUB else "mul" if name in _MUL else "div")
            # a sum of two computed values (a shortcut, a gate) is structure; adding a weight
            # (a bias written by hand) too; a constant (x + 1, x / 6) is glue
            alpha = kwargs.get("alpha", 1)
            attrs = {"alpha": alpha} if alpha != 1 else {}
            if len(data) >= 2 or state:
                return op(kind, attrs, state)
            consts = [a for a in args[1:] if isinstance(a, (int, float))]
            return op(kind, {"const": tuple(consts)}, [], significant=False)
        if name in _CAT:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            parts = args[0] if args else kwargs.get("tensors", ())
            computed = sum(1 for t in parts if isinstance(t, torch.Tensor) and id(t) in self.producer)
            return op("cat", {"dim": int(dim), "parts": len(parts)}, state, significant=computed >= 2)
        if name in _GLUE:
            return op("glue", {"fn": name}, state, significant=bool(state))
        return op(f"op:{name}", _plain(args[1:], kwargs), state)

    def _pool(self, op: Callable[..., Op], name: str, func: Any, args: Sequence[Any], kwargs: dict[str, Any],
              x: torch.Tensor | None) -> Op:
        spatial = tuple(x.shape[2:]) if x is not None else ()
        if name in _MEAN:
            dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
            dims = tuple(sorted(d % x.dim() for d in _pair(dims, 1))) if x is not None and dims is not None else None
            if x is not None and x.dim() >= 3 and dims == tuple(range(2, x.dim())):
                return op("pool", {"kind": "global_avg"}, [], note=f"mean over dims {dims}")
            return op("op:mean", {"dim": dims, "keepdim": bool(kwargs.get("keepdim", False))}, [])
        kind = _POOL[name]
        if kind.startswith("adaptive"):
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            size = _pair(size, len(spatial))
            if all(s == 1 for s in size):
                return op("pool", {"kind": f"global_{kind.removeprefix('adaptive_')}"}, [],
                          note=f"adaptive_{kind.removeprefix('adaptive_')}_pool(1)")
            return op("pool", {"kind": kind, "output_size": size}, [])
        names = _AVG_ARGS if kind == "avg" else _POOL_ARGS
        b = _bind(func, args, kwargs, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                                              "count_include_pad": True, "divisor_override": None})
        n = len(spatial) or 2
        k = _pair(b["kernel_size"], n)
        s = _pair(b["stride"], n) if b["stride"] not in (None, [], ()) else k
        p = _pair(b["padding"], n)
        if kind == "avg" and spatial and k == spatial and all(v == 0 for v in p) and b["divisor_override"] is None:
            return op("pool", {"kind": "global_avg"}, [], note=f"avg_pool(kernel {_fmt(k)}) over {_fmt(spatial)} maps")
        attrs: dict[str, Any] = {"kind": kind, "kernel": k, "stride": s, "padding": p,
                                 "ceil_mode": bool(b["ceil_mode"])}
        if kind == "max":
            attrs["dilation"] = _pair(b["dilation"], n)
        elif any(v for v in p):
            attrs["count_include_pad"] = bool(b["count_include_pad"])
        return op("pool", attrs, [])


def _plain(args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The plain (non-tensor) arguments of a call, as attributes."""
    out: dict[str, Any] = {}
    for i, a in enumerate(args):
        if isinstance(a, (int, float, bool, str)) or a is None:
            out[f"arg{i + 1}"] = a
        elif isinstance(a, (list, tuple)) and all(isinstance(v, (int, float, bool)) for v in a):
            out[f"arg{i + 1}"] = tuple(a)
    for k, v in kwargs.items():
        if isinstance(v, (int, float, bool, str)) or v is None:
            out[k] = v
    return out


@contextmanager
def _module_stack(model: nn.Module) -> Iterator[list[str]]:
    """The qualified names of the modules running, innermost last (forward pre/post hooks)."""
    stack: list[str] = []

    def leave(_m: nn.Module, _a: Any, _o: Any) -> None:  # a hook that returned a value would replace the output
        if stack:
            stack.pop()

    handles = []
    for name, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(lambda _m, _a, n=name: stack.append(n)))
        handles.append(mod.register_forward_hook(leave))  # not on an exception: the stack then names where
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def trace_model(model: nn.Module, input_size: Sequence[int], *, train: bool = False, batch: int = 2) -> Trace:
    """Trace one forward pass of ``model`` (on its own device; meta costs no memory).

    Raises ``TraceError`` naming the innermost module running when the forward raised.
    """
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros((batch, *input_size), device=device, dtype=dtype)
    was_training = model.training
    model.train(train)
    with _module_stack(model) as stack:
        rec = _Recorder(model, stack)
        rec.mark_input(x)
        try:
            with rec, torch.no_grad():
                out = model(x)
        except Exception as exc:
            where = stack[-1] if stack else ""
            first = (str(exc).strip().splitlines() or [""])[0]
            raise TraceError(f"the forward pass at input {tuple(input_size)} raised {type(exc).__name__} "
                             f"in {where or '<root>'}: {first}", where) from exc
        finally:
            model.train(was_training)
    outputs = [rec.producer.get(id(t), -1) for t in rec._flat(out)]
    shapes = {k: tuple(t.shape) for k, t in model.state_dict(keep_vars=True).items()}
    unused = [k for k in shapes if k not in rec.used]
    params = frozenset(n for n, _ in model.named_parameters(remove_duplicate=False))
    return Trace(rec.ops, outputs, shapes, unused, params=params, input_size=tuple(input_size), train=train)
