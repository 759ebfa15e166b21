"""What a model's construction draws into each parameter, read from its init calls on the
meta device, without drawing a value.

A builder initialises a tensor by calling ``torch.nn.init`` (``kaiming_normal_(w,
mode="fan_out", nonlinearity="relu")``, ``normal_(w, 0, 0.01)``, ``trunc_normal_``,
``constant_``) or a tensor's own fill (``w.normal_(0, 0.01)``, ``b.zero_()``). While the
builder runs on ``meta``, each public ``torch.nn.init`` function is replaced by one that
records its call (``_watch_nn_init``; the originals are put back afterwards), and a
``TorchFunctionMode`` (PyTorch's public override protocol) sees every tensor fill and every
other in-place write. The last such call into a parameter fixes its law exactly, by the
formulas ``torch.nn.init`` documents: He et al. 2015, Eq. (10)/(14) for kaiming, Glorot &
Bengio 2010, Eq. (16) for xavier.

``read_init(factory)`` returns that law per parameter, or raises ``InitUnreadable`` naming
the first parameter whose last write is anything else (``orthogonal_``, a ``mul_`` after
the draw, a write through ``.data`` or a view, a tensor made off meta): its law can then
only be measured on drawn values (``conformance.init_check.init_failures``).

Reading is exact where measuring is statistical, and it costs a meta build: holding a spec's
declaration against torchvision's own initialisation needs none of VGG16's 138M draws.

Where values must be measured (a candidate's fresh weights), ``build_fresh(factory)`` builds
the model for real but holds each whole-tensor fill of a parameter until something reads it,
so a fill that a later one overwrites is never drawn.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from cnn_models import InitScheme

from .init_check import Z, declared_init, fans

__all__ = ["Drawn", "InitUnreadable", "build_fresh", "declaration_failures", "read_init"]

REL = 1e-9  # a read constant equals the declared one up to float rounding of the formula


@dataclass(frozen=True)
class Drawn:
    """One parameter's law as its last init call sets it: ``kind`` "normal", "uniform" or
    "constant"; ``std`` the normal's std (before truncation) or the uniform's; ``bound`` the
    uniform's half-width or the normal's truncation point (``None``: untruncated)."""

    kind: str
    mean: float = 0.0
    std: float = 0.0
    bound: float | None = None
    call: str = ""  # the call as written, for messages

    def describe(self) -> str:
        if self.kind == "constant":
            return f"all {self.mean:g}"
        law = f"{self.kind}(mean {self.mean:g}, std {self.std:.6g}"
        law += f", bound +-{self.bound:.6g})" if self.bound is not None else ")"
        return law


class InitUnreadable(Exception):
    """The builder's calls do not fix a parameter's law (see the module docstring)."""


_NN_INITS = {getattr(nn.init, n): n for n in dir(nn.init)
             if n.endswith("_") and not n.startswith("_") and callable(getattr(nn.init, n))}
_NOT_WRITES = frozenset({"requires_grad_", "share_memory_", "retain_grad", "record_stream"})
_IN_PLACE_DUNDERS = frozenset(f"__i{op}__" for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod",
                                                       "pow", "and", "or", "xor", "lshift", "rshift"))


def _bound_args(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The call's arguments by name, defaults filled in; ``None`` when they do not fit the
    signature (the function itself then raises its own error)."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _gain(nonlinearity: str, param: Any) -> float:
    return float(nn.init.calculate_gain(nonlinearity, param))  # type: ignore[arg-type]  # torch raises on a name it lacks


def _by_std(kind: str, std: float, call: str) -> Drawn:
    """A zero-mean normal, or a zero-mean uniform of that std (half-width sqrt(3) std)."""
    return Drawn(kind, 0.0, std, math.sqrt(3.0) * std if kind == "uniform" else None, call)


def _uniform_between(lo: float, hi: float, call: str) -> Drawn:
    return Drawn("uniform", (lo + hi) / 2, (hi - lo) / 2 / math.sqrt(3.0), (hi - lo) / 2, call)


def _law_of_init(name: str, a: dict[str, Any], shape: Sequence[int]) -> Drawn | None:
    """The law that ``torch.nn.init.<name>`` with bound arguments ``a`` draws, or ``None``."""
    call = f"nn.init.{name}(" + ", ".join(f"{k}={v!r}" for k, v in a.items()
                                          if k not in ("tensor", "generator")) + ")"
    if name in ("kaiming_normal_", "kaiming_uniform_"):
        if a["mode"] not in ("fan_in", "fan_out"):
            return None  # torch raises
        fan_in, fan_out = fans(shape)
        fan = fan_in if a["mode"] == "fan_in" else fan_out
        std = _gain(a["nonlinearity"], a["a"]) / math.sqrt(fan)
        return _by_std("normal" if name == "kaiming_normal_" else "uniform", std, call)
    if name in ("xavier_normal_", "xavier_uniform_"):
        fan_in, fan_out = fans(shape)
        std = float(a["gain"]) * math.sqrt(2.0 / (fan_in + fan_out))
        return _by_std("normal" if name == "xavier_normal_" else "uniform", std, call)
    if name == "normal_":
        return Drawn("normal", float(a["mean"]), float(a["std"]), None, call)
    if name == "trunc_normal_":
        lo, hi, mean = float(a["a"]), float(a["b"]), float(a["mean"])
        if lo - mean != -(hi - mean):
            return None  # an asymmetric truncation: no declared scheme has one
        return Drawn("normal", mean, float(a["std"]), hi - mean, call)
    if name == "uniform_":
        return _uniform_between(float(a["a"]), float(a["b"]), call)
    if name in ("constant_", "ones_", "zeros_"):
        value = float(a["val"]) if name == "constant_" else float(name == "ones_")
        return Drawn("constant", value, call=call)
    return None


def _law_of_method(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Drawn | None:
    """The law of a tensor's own fill (``t.normal_(0, 0.01)``, ``t.zero_()``), or ``None``."""
    call = f"Tensor.{name}(" + ", ".join([*(repr(x) for x in args), *(f"{k}={v!r}" for k, v in kwargs.items())]) + ")"
    if "generator" in kwargs:
        kwargs = {k: v for k, v in kwargs.items() if k != "generator"}
    names = {"normal_": ("mean", "std"), "uniform_": ("from", "to"), "fill_": ("value",)}.get(name)
    if name == "zero_":
        return Drawn("constant", 0.0, call=call) if not args and not kwargs else None
    if names is None or len(args) > len(names) or set(kwargs) - set(names):
        return None
    values = dict(zip(names, args, strict=False)) | kwargs
    if any(isinstance(v, torch.Tensor) for v in values.values()):
        return None
    if name == "normal_":
        return Drawn("normal", float(values.get("mean", 0.0)), float(values.get("std", 1.0)), None, call)
    if name == "uniform_":
        return _uniform_between(float(values.get("from", 0.0)), float(values.get("to", 1.0)), call)
    return Drawn("constant", float(values["value"]), call=call)


class _Recorder(TorchFunctionMode):
    """Records the last write into every meta tensor while a builder runs; runs no fill.

    ``torch.nn.init`` functions that do not go through ``__torch_function__`` on meta
    (``trunc_normal_`` returns at once for a meta tensor) are seen through ``watch_nn_init``.
    """

    def __init__(self) -> None:
        super().__init__()
        # id -> (the tensor, kept alive so its id stays its own; the law; the call's name)
        self.last: dict[int, tuple[torch.Tensor, Drawn | None, str]] = {}

    def _write(self, target: Any, law: Drawn | None, call: str) -> None:
        if isinstance(target, torch.Tensor):
            self.last[id(target)] = (target, law, call)

    def record_init(self, name: str, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """A ``torch.nn.init`` call: recorded (and not run) when it fills a meta tensor."""
        a = _bound_args(fn, args, kwargs)
        target = a.get("tensor") if a is not None else None
        if a is None or not (isinstance(target, torch.Tensor) and target.is_meta):
            return False, None
        self._write(target, _law_of_init(name, a, tuple(target.shape)), f"nn.init.{name}")
        return True, target  # meta: no values to draw

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = _NN_INITS.get(func)
        if name is not None:
            done, result = self.record_init(name, func, args, kwargs)
            return result if done else func(*args, **kwargs)
        fname = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if owner is torch.Tensor.is_meta and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            # torch.nn.init functions reached by a name not replaced here (imported before the
            # build) return at once for a meta tensor after this test, leaving no trace
            self._write(args[0], None, "a test of .is_meta (an init function that skips meta tensors)")
        if owner is torch.Tensor.data and fname == "__set__" and args:
            self._write(args[0], None, "an assignment to .data")
        writes = (fname.endswith("_") and not fname.startswith("_") and fname not in _NOT_WRITES) or \
            fname == "__setitem__" or fname in _IN_PLACE_DUNDERS
        if writes and args and isinstance(args[0], torch.Tensor):
            law = _law_of_method(fname, args[1:], kwargs) if args[0].is_meta else None
            self._write(args[0], law, f"Tensor.{fname}")
            if law is not None:
                return args[0]  # meta: no values to draw
        if isinstance(kwargs.get("out"), torch.Tensor):
            self._write(kwargs["out"], None, f"{fname}(out=...)")
        return func(*args, **kwargs)


def _watched(name: str, fn: Callable[..., Any], recorder: _Recorder) -> Callable[..., Any]:
    @functools.wraps(fn)
    def watched(*args: Any, **kwargs: Any) -> Any:
        done, result = recorder.record_init(name, fn, args, kwargs)
        return result if done else fn(*args, **kwargs)

    return watched


@contextlib.contextmanager
def _watch_nn_init(recorder: _Recorder) -> Iterator[None]:
    """Each public ``torch.nn.init`` function replaced, while a builder runs, by one that records
    its call into a meta tensor (a builder calls them as ``nn.init.NAME(...)``, an attribute
    lookup at call time); the originals are put back afterwards, whatever happens."""
    originals = {name: getattr(nn.init, name) for name in _NN_INITS.values()}
    try:
        for name, fn in originals.items():
            setattr(nn.init, name, _watched(name, fn, recorder))
        yield
    finally:
        for name, fn in originals.items():
            setattr(nn.init, name, fn)


def read_init(factory: Callable[[], nn.Module]) -> tuple[nn.Module, dict[str, Drawn]]:
    """Build ``factory``'s model on meta and read each parameter's law from its last init call.

    Returns the meta model and a law per parameter name. Raises ``InitUnreadable`` when a
    parameter's last write is not a recognised init call, when any tensor that is not one of
    the model's parameters or buffers was written to (a ``.data`` or view alias), or when a
    parameter was made off meta.
    """
    recorder = _Recorder()
    with torch.device("meta"), _watch_nn_init(recorder), recorder:  # the recorder innermost: it sees calls first
        model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory returned {type(model).__name__}, not an nn.Module")
    named = [*model.named_parameters(), *model.named_buffers()]
    off_meta = [n for n, t in named if not t.is_meta]
    if off_meta:
        raise InitUnreadable(f"{off_meta[0]}: made off the meta device, so its init calls ran on values")
    state = {id(t): n for n, t in named}
    for tensor, _, call in recorder.last.values():
        if tensor.is_meta and id(tensor) not in state:  # a write off meta computed a value, not a weight
            raise InitUnreadable(f"{call} wrote into a tensor that is neither a parameter nor a buffer "
                                 f"(through .data, a view or a temporary): a parameter's law cannot be read")
    laws: dict[str, Drawn] = {}
    for pname, p in model.named_parameters():
        entry = recorder.last.get(id(p))
        if entry is None:
            raise InitUnreadable(f"{pname}: no init call wrote it (it keeps torch.empty's undefined values, "
                                 f"or was filled off meta)")
        if entry[1] is None:
            raise InitUnreadable(f"{pname}: its last write ({entry[2]}) is not a torch.nn.init call or a tensor fill "
                                 f"whose law can be read")
        laws[pname] = entry[1]
    return model, laws


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b), 1e-300)


def _same_support(drawn: Drawn, want: Drawn) -> bool:
    """Equal bounds; a normal truncated ``Z`` (6) standard deviations out or further counts as
    untruncated, as it does for the measurement (init_check), which no such draw can tell apart."""
    def far(d: Drawn) -> bool:
        return d.bound is None or (d.kind == "normal" and d.bound >= Z * d.std)

    if drawn.kind == "normal" and far(drawn) and far(want):
        return True
    return drawn.bound is not None and want.bound is not None and _close(drawn.bound, want.bound)


def declaration_failures(
    factory: Callable[[], nn.Module], scheme: InitScheme, zero_gamma_bns: frozenset[str] = frozenset()
) -> tuple[list[str], str]:
    """Every tensor whose declared law (``scheme``) is not what ``factory``'s init calls draw,
    exactly, and a one-line account of what was read. Raises ``InitUnreadable``
    (``read_init``)."""
    model, laws = read_init(factory)
    out, expected = declared_init(model, scheme, zero_gamma_bns)
    for e in expected:
        drawn = laws.get(e.tensor)
        if drawn is None:
            raise InitUnreadable(f"{e.tensor}: not a parameter of its own (a parametrization computes it)")
        if e.law is not None:
            want = Drawn(e.law.kind, 0.0, e.law.std, e.law.bound)
            same = (drawn.kind == want.kind and drawn.mean == 0.0 and _close(drawn.std, want.std)
                    and _same_support(drawn, want))
            declared = want.describe()
        else:
            assert e.constant is not None
            same = drawn.kind == "constant" and drawn.mean == e.constant
            declared = f"all {e.constant:g}{e.why}"
        if not same:
            out.append(f"{e.module}: {e.what} declared {declared}; its init call {drawn.call} draws {drawn.describe()}")
    calls = sorted({d.call.split("(", 1)[0] for d in laws.values()})
    return out, f"{len(expected)} tensors read from {', '.join(calls)} calls on meta"


# --- fresh builds without the draws a later fill overwrites ----------------------------------

_SKIPPABLE_FILLS = frozenset({"uniform_", "normal_", "fill_", "zero_"})
_SHAPE_ONLY_METHODS = frozenset({"dim", "ndimension", "size", "numel", "nelement", "stride", "is_contiguous",
                                 "element_size", "__len__", "is_floating_point", "is_complex", "get_device"})
_SHAPE_ONLY_ATTRIBUTES = tuple(getattr(torch.Tensor, name) for name in (
    "shape", "dtype", "device", "requires_grad", "is_meta", "ndim", "layout", "is_leaf", "is_cuda", "is_sparse",
    "is_quantized", "itemsize", "nbytes",
) if hasattr(torch.Tensor, name))


def _storage_key(t: torch.Tensor) -> int | None:
    """Where ``t``'s values live: every alias of a parameter (``.data``, ``detach()``, a view, a
    new ``nn.Parameter`` around it) shares it."""
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # a tensor without storage (a subclass, a nested tensor)
        return None


class _SkipOverwrittenFills(TorchFunctionMode):
    """Holds back each whole-tensor fill of a parameter (an ``nn.init`` call or a tensor's own
    ``uniform_``/``normal_``/``fill_``/``zero_``) until anything touches its storage; a later
    whole fill of the same storage replaces it, so its draws are never made. Calls that only ask
    for the shape (``dim()``, ``size()``, ``.shape``) do not touch it. ``release()`` runs what
    is still held, in the order it was called. Held fills run under ``torch.no_grad()``, as
    ``nn.init`` runs them; a fill that could raise (a tensor method on a leaf that requires grad
    with grad enabled, an integer or inference tensor) is not held."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, tuple[torch.Tensor, Callable[..., Any], Sequence[Any], dict[str, Any]]] = {}

    def _whole_fill_target(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
        """The parameter a call fills whole with a law ``read_init`` can read and arguments
        torch accepts, or ``None`` (the call then runs at once: one that raises, raises where
        the builder made it)."""
        name = _NN_INITS.get(func)
        fname = getattr(func, "__name__", "")
        if name is not None:
            a = _bound_args(func, args, kwargs)
            target = a.get("tensor") if a is not None else None
        elif fname in _SKIPPABLE_FILLS and args and isinstance(args[0], torch.Tensor):
            target = args[0]
            if torch.is_grad_enabled() and target.requires_grad:
                return None  # torch refuses an in-place fill of a leaf that requires grad
        else:
            return None
        if not isinstance(target, nn.Parameter) or target.is_meta or not target.is_floating_point() \
                or target.numel() == 0 or target.is_inference() or torch.is_inference_mode_enabled():
            return None
        whole = (target.storage_offset() == 0 and target.is_contiguous()
                 and target.numel() * target.element_size() == target.untyped_storage().nbytes())
        if not whole:
            return None  # a parameter that is a view of a larger storage: its fill is part of it
        try:
            law = (_law_of_init(name, a, tuple(target.shape)) if name is not None and a is not None
                   else _law_of_method(fname, args[1:], kwargs))
        except Exception:  # noqa: BLE001 - arguments torch refuses (a 1-d tensor's fans, an unknown gain)
            return None
        if law is None or not (law.std >= 0 and (law.bound is None or law.bound >= 0)):
            return None
        return target

    def _release(self, key: int) -> None:
        _, func, args, kwargs = self.held.pop(key)
        with torch.no_grad():
            func(*args, **kwargs)

    def release(self) -> None:
        for key in list(self.held):
            self._release(key)

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        target = self._whole_fill_target(func, args, kwargs)
        key = _storage_key(target) if target is not None else None
        if target is not None and key is not None:
            self.held.pop(key, None)  # overwritten whole: its draws are never made
            self.held[key] = (target, func, args, kwargs)
            return target
        shape_only = getattr(func, "__name__", "") in _SHAPE_ONLY_METHODS or \
            getattr(func, "__self__", None) in _SHAPE_ONLY_ATTRIBUTES
        if not shape_only and self.held:
            for t in _tensors_in((args, kwargs)):
                k = _storage_key(t)
                if k in self.held:
                    self._release(k)
        return func(*args, **kwargs)


def _tensors_in(obj: Any) -> list[torch.Tensor]:
    """The tensors in a call's arguments, walking lists, tuples and dicts only: unlike
    ``compare._tensors`` (for outputs, any iterable), it must not consume an argument that is
    an iterator before the op gets it."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors_in(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors_in(v)]
    return []


def build_fresh(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()``, with the draws that a later whole fill of the same parameter overwrites
    left out: ``nn.Linear``'s default ``kaiming_uniform_`` before VGG's ``normal_(0, 0.01)``
    is never drawn (half of a VGG16 build). Every value the model ends with is drawn by the
    call that sets it, from the same law; only the order in which the generator is consumed
    changes, so seeded values differ from a plain build's, and two tensors a plain build would
    draw alike from one seed are drawn apart. Anything that touches a parameter's storage while
    the builder runs (a slice, ``.data``, an alias taken earlier, arithmetic) sees it filled
    first.
    """
    mode = _SkipOverwrittenFills()
    try:
        with mode:
            model = factory()
        mode.release()
    except Exception:  # noqa: BLE001 - raised inside this module's frames: let a plain build say where
        return factory()  # the builder's own error, raised from its own frames (or, were it ours, the model)
    return model
