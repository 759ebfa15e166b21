"""Every use of a private torch name in the project, each beside its public-API twin.

torch promises nothing about these names, so each is looked up when first needed, and its
public twin is used instead when the name is missing, when using it raises, or inside
``public_only()``. tests/test_torch_private.py runs every built-in architecture both ways and
asserts identical layer tables and MAC counts (totals, per op, per layer type, per module);
``python -m benchmarks.private_paths`` measures what each fast path buys (a path is kept only
for at least 1.5x on some benchmark row).

=====================================  ===========================================  ==========================
private names                          what they buy                                public twin
=====================================  ===========================================  ==========================
``torch.utils._python_dispatch.``      a convolution or 2-d linear answered by its  the op runs for real
``_get_current_dispatch_mode``,        shape formula on meta is handed to           under the counter
``FlopCounterMode._count_flops``       FlopCounterMode's bookkeeping instead of
                                       dispatched (``counted_by_flop_counter``)
``torch._C._ExcludeDispatchKeyGuard``, the empty meta tensors of answered ops are    ``torch.empty``, seen by
``DispatchKeySet``, ``DispatchKey``,   made out of every dispatch mode's sight, so  the active modes
``_len_torch_dispatch_stack`` (and     FlopCounterMode never dispatches an op (its
``torch._ops``' pre-dispatch twin)     first dispatch imports torch._dynamo, 1.5-5
                                       s) (``hidden_empty``); together with the row
                                       above, 2-3x on a warm ``flops`` count and the
                                       cold import
``FlopCounterMode.flop_registry``,     each counted op's formula called with its    torch's ``_count_flops``
``shape_wrapper``'s ``__wrapped__``    shapes, skipping the wrapper's pytree walk   (the wrapper maps the
                                       of every argument (``_shape_formula``);      arguments to shapes)
                                       addmm by mm's formula (``_addmm_by_mm``)
``ModuleTracker._get_mod_name``,       each counted op credited once, to the        own = total minus the
``FlopCounterMode.mod_tracker``,       innermost running module (right for shared   children's totals (right
``flop_counts``, the ``self`` of       and recursive modules), the running modules  for a tree of modules)
``nn.Module._call_impl`` frames        read off the stack, not kept by global
                                       module hooks (``innermost_counter``)
``torch._weights_only_unpickler.``     a refused checkpoint's message lists only    every global is listed
``_get_allowed_globals``               the globals torch would not import
``nn.Module._call_impl``,              the innermost module of a failed forward     any frame whose ``self``
``_wrapped_call_impl``                 comes from module *call* frames only         is a module of the tree
``state_dict._metadata``               module versions travel with a copied state   (none: torch's own load
                                       (torchvision's MNASNet refuses one without)  reads it there)
=====================================  ===========================================  ==========================
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "BATCH_NORMS",
    "NORMS_WITH_STATS",
    "allowed_unpickler_globals",
    "counted_by_flop_counter",
    "hidden_empty",
    "innermost_counter",
    "module_call_codes",
    "public_only",
    "state_dict_metadata",
    "with_state_dict_metadata",
]

_PUBLIC_ONLY = False

# torch's BatchNorm base classes are private (``_BatchNorm``, ``_NormBase``): their public
# subclasses instead (timm's BatchNormAct2d subclasses nn.BatchNorm2d)
BATCH_NORMS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d,
)
NORMS_WITH_STATS: tuple[type[nn.Module], ...] = (
    *BATCH_NORMS, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LazyInstanceNorm1d, nn.LazyInstanceNorm2d, nn.LazyInstanceNorm3d,
)


@contextlib.contextmanager
def public_only() -> Iterator[None]:
    """Inside, every function here takes its public twin (what a torch without these names gets)."""
    global _PUBLIC_ONLY
    before, _PUBLIC_ONLY = _PUBLIC_ONLY, True
    try:
        yield
    finally:
        _PUBLIC_ONLY = before


# --- FlopCounterMode's bookkeeping without dispatch ----------------------------------------
@functools.cache
def _dispatch_mode_getter() -> Callable[[], Any]:
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return _get_current_dispatch_mode


def _current_dispatch_mode() -> Any:
    return _dispatch_mode_getter()()


def counted_by_flop_counter() -> Any:
    """Who watches the aten ops of this pass: ``None`` (no dispatch mode), a FlopCounterMode
    whose ``_count_flops`` an answered op can be handed to, or ``False`` (another mode, a torch
    without these names, or ``public_only``: the op must really run)."""
    if _PUBLIC_ONLY:
        return False
    try:
        mode = _current_dispatch_mode()
    except Exception:  # noqa: BLE001 - a torch without it: take the public path
        return False
    if mode is None:
        return None
    # only a process that made a FlopCounterMode has imported its module (which imports
    # triton: 0.2 s and 90 MB that a summary should not pay)
    flop_counter = sys.modules.get("torch.utils.flop_counter")
    counter = getattr(mode, "counter", None)
    if flop_counter is not None and isinstance(counter, flop_counter.FlopCounterMode) \
            and callable(getattr(counter, "_count_flops", None)):
        return counter
    return False


def count_into(counter: Any, aten_op: Any, out: torch.Tensor, args: tuple[Any, ...]) -> bool:
    """Hand one answered op to a counter from ``counted_by_flop_counter``; False (nothing
    counted: the caller runs the real op instead) where the counter's bookkeeping raises."""
    try:
        counter._count_flops(aten_op, out, args, {})
    except (AttributeError, TypeError, KeyError):  # another torch's signature
        return False
    return True


def _python_key() -> Any:
    try:
        if hasattr(torch._C, "_ExcludeDispatchKeyGuard"):
            return torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
    except (AttributeError, TypeError):  # pragma: no cover - another torch
        pass
    return None


_PYTHON_KEY = _python_key()


_STACK_LENGTHS = (getattr(torch._C, "_len_torch_dispatch_stack", None),
                  getattr(getattr(torch, "_ops", None), "_len_torch_dispatch_stack_pre_dispatch", None))


def _dispatch_modes_active() -> bool:
    """Whether a dispatch mode is on the stack; True when this torch cannot say."""
    count, pre_dispatch = _STACK_LENGTHS
    if count is None or pre_dispatch is None:
        return True
    return bool(count() > 0 or pre_dispatch() > 0)


def hidden_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty meta tensor made where no dispatch mode sees it (the ``Python`` dispatch key
    excluded for the call); the public twin makes it in the modes' sight."""
    if _PUBLIC_ONLY or _PYTHON_KEY is None or not _dispatch_modes_active():
        return torch.empty(shape, dtype=dtype, device="meta")
    try:
        with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEY):
            return torch.empty(shape, dtype=dtype, device="meta")
    except (AttributeError, TypeError, RuntimeError):  # pragma: no cover - another torch
        return torch.empty(shape, dtype=dtype, device="meta")


# --- FlopCounterMode crediting each op to the innermost module ------------------------------
def innermost_counter() -> tuple[Any, Callable[[], dict[str, int] | None]]:
    """A FlopCounterMode, and a function that gives, after the pass, the FLOPs credited to
    each innermost running module ("Global" outside any), or ``None`` where only the public
    twin ran (the caller then subtracts the children's totals from FlopCounterMode's)."""
    from torch.utils.flop_counter import FlopCounterMode

    if _PUBLIC_ONLY:
        counter = FlopCounterMode(display=False)
        return counter, lambda: None
    try:
        counter = _make_innermost_counter()
    except Exception:  # noqa: BLE001 - another torch: the public counter
        counter = FlopCounterMode(display=False)
        return counter, lambda: None
    return counter, lambda: dict(counter.innermost) if counter.tracked else None


def _make_innermost_counter() -> Any:
    from torch.utils.module_tracker import ModuleTracker

    if not callable(getattr(ModuleTracker, "_get_mod_name", None)):
        raise AttributeError("ModuleTracker._get_mod_name")
    counter_class, tracker_class = _innermost_classes()
    counter = counter_class()
    if not isinstance(getattr(counter, "flop_registry", None), dict):
        raise AttributeError("FlopCounterMode.flop_registry")
    if type(getattr(counter, "mod_tracker", None)) is not ModuleTracker:
        raise AttributeError("FlopCounterMode.mod_tracker")
    counter.mod_tracker = tracker_class()
    counter.tracked = True
    return counter


@functools.cache
def _innermost_classes() -> tuple[type, type]:
    """The counter and tracker classes of ``_make_innermost_counter``, defined once per process
    (making two classes costs more than the counter itself)."""
    from torch.utils.flop_counter import FlopCounterMode
    from torch.utils.module_tracker import ModuleTracker

    call_impl = getattr(getattr(nn.Module, "_call_impl", None), "__code__", None)
    if call_impl is None:
        raise AttributeError("nn.Module._call_impl")

    class FrameTracker(ModuleTracker):
        """torch's module tracker with its names and ``parents`` set, read off the Python stack
        when an op is counted instead of kept by a forward pre-hook and hook on every module:
        with no global module hook, each module call takes ``nn.Module._call_impl``'s fast path,
        about a third of a meta FLOP count. The running modules are the ``self`` of the
        ``_call_impl`` frames between the counted op and the frame that entered the tracker
        (a module calling ``count_flops`` from its own ``forward`` is outside the pass), named
        by torch's own ``_get_mod_name`` outermost first, the order its pre-hooks would have.
        Each call frame's names are kept for the rest of the pass, so a count reads only the
        frames of the calls it has not seen (the innermost one or two)."""

        def __init__(self) -> None:
            super().__init__()
            # plain containers instead of its weak ones: the tracker lives for one pass
            self._known_modules: dict[nn.Module, str] = {}  # type: ignore[assignment]
            self._seen_modules: set[nn.Module] = set()  # type: ignore[assignment]
            self._outside: frozenset[int] = frozenset()
            self._frames: dict[Any, tuple[str, ...]] = {}  # a call frame -> the names running there

        def __enter__(self) -> FrameTracker:
            outside: list[int] = []
            f: types.FrameType | None = sys._getframe(1)
            while f is not None:
                outside.append(id(f))  # live frames for the whole pass: no new frame takes their ids
                f = f.f_back
            self._outside = frozenset(outside)
            return self

        def __exit__(self, *args: object) -> None:
            self._outside = frozenset()
            self._frames.clear()

        def stack(self) -> tuple[str, ...]:
            """The names of the module calls running, outermost first."""
            new: list[Any] = []
            names: tuple[str, ...] = ()
            f: types.FrameType | None = sys._getframe(1)
            outside, frames = self._outside, self._frames
            while f is not None and id(f) not in outside:
                if f.f_code is call_impl:
                    known = frames.get(f)
                    if known is not None:
                        names = known
                        break
                    new.append(f)
                f = f.f_back
            for frame in reversed(new):
                mod = frame.f_locals.get("self")
                names = (*names, self._get_mod_name(mod)) if isinstance(mod, nn.Module) else names
                frames[frame] = names
            return names

        @property
        def parents(self) -> set[str]:
            return {"Global", *self.stack()}

        @parents.setter
        def parents(self, value: set[str]) -> None:  # torch's __init__ sets {"Global"}: read off the stack instead
            pass

    class Counter(FlopCounterMode):
        """FlopCounterMode that also credits each counted op to the innermost running module:
        its own per-key totals count an op for every module in ``parents``, so a module's own
        FLOPs by subtraction go wrong for a module registered under two parents or called
        from inside itself."""

        def __init__(self) -> None:
            super().__init__(display=False)
            self.innermost: dict[str, int] = {}
            self.tracked = False

        def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
            tracker = getattr(self, "mod_tracker", None)
            if not isinstance(tracker, FrameTracker):
                return super()._count_flops(func_packet, out, args, kwargs)
            raw = _shape_formula(self.flop_registry.get(func_packet), out, args, kwargs)
            if raw is not None and len(args) == 3 and func_packet is torch.ops.aten.addmm \
                    and (mm := _addmm_by_mm()) is not None:
                raw, args = mm, args[1:]
            stack = tracker.stack()
            if raw is None:
                totals = self.flop_counts["Global"]  # a defaultdict: .get leaves no zero entry behind
                before = totals.get(func_packet, 0)
                super()._count_flops(func_packet, out, args, kwargs)
                added = totals.get(func_packet, 0) - before
            else:  # what torch's _count_flops does, the formula fed shapes without its pytree walk
                added = raw(*(a.shape if isinstance(a, torch.Tensor) else a for a in args), out_shape=out.shape)
                for par in {"Global", *stack}:
                    self.flop_counts[par][func_packet] += added
            if added:
                key = stack[-1] if stack else "Global"
                self.innermost[key] = self.innermost.get(key, 0) + added
            return out

    return Counter, FrameTracker


@functools.cache
def _wrapper_code() -> Any:
    """The code object of every function torch's ``shape_wrapper`` returns."""
    from torch.utils.flop_counter import shape_wrapper

    return shape_wrapper(_wrapper_code).__code__


def _shape_formula(formula: Any, out: Any, args: tuple[Any, ...], kwargs: Any) -> Callable[..., int] | None:
    """The FLOP formula under torch's ``shape_wrapper`` (which maps each tensor argument to
    its shape with a pytree walk, about 40 % of a meta FLOP count), where the arguments are
    flat: tensors, numbers and lists of numbers, so that mapping each one by hand gives the
    same call; ``None`` otherwise (the wrapper runs)."""
    raw = _unwrapped(formula)
    if raw is None or kwargs or not isinstance(out, torch.Tensor):
        return None
    for a in args:
        if isinstance(a, (list, tuple)):
            for v in a:
                if isinstance(v, (torch.Tensor, list, tuple, dict)):
                    return None
        elif isinstance(a, dict):
            return None
    return raw


@functools.cache
def _addmm_by_mm() -> Callable[..., int] | None:
    """``aten.mm``'s unwrapped formula where it gives what ``aten.addmm``'s does on addmm's last
    two operands (torch's ``addmm_flop`` counts the product alone, through the *wrapped*
    ``mm_flop``: a second pytree walk, about 25 us a call); checked here on one shape, None
    where this torch counts addmm otherwise."""
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    addmm, mm = _unwrapped(flop_registry.get(aten.addmm)), _unwrapped(flop_registry.get(aten.mm))
    if addmm is None or mm is None:
        return None
    for m, k, n in ((5, 7, 3),):
        a, b, bias, out = torch.Size([m, k]), torch.Size([k, n]), torch.Size([n]), torch.Size([m, n])
        try:
            if addmm(bias, a, b, out_shape=out) != mm(a, b, out_shape=out):
                return None
        except Exception:  # noqa: BLE001 - another torch's formulas: the addmm formula stays
            return None
    return mm


_UNWRAPPED: dict[Any, Any] = {}


def _unwrapped(formula: Any) -> Callable[..., int] | None:
    """The function ``shape_wrapper`` wrapped into ``formula``, or None (any other formula)."""
    try:
        return _UNWRAPPED[formula]
    except KeyError:
        raw = getattr(formula, "__wrapped__", None)
        if getattr(formula, "__code__", None) is not _wrapper_code():
            raw = None
        _UNWRAPPED[formula] = raw
        return raw
    except TypeError:  # an unhashable formula
        return None


# --- the rest: messages and metadata ---------------------------------------------------------
def allowed_unpickler_globals() -> set[str]:
    """The globals torch's weights-only unpickler imports by default; empty (every global
    counts as refused) where this torch does not say."""
    if _PUBLIC_ONLY:
        return set()
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - a private helper: without it, every global counts
        return set()


def module_call_codes() -> frozenset[Any]:
    """The code objects of a module *call* (``module(x)``), whatever its ``forward`` looks
    like; empty where this torch has other names (then any frame of a module counts)."""
    if _PUBLIC_ONLY:
        return frozenset()
    return frozenset(
        f.__code__ for name in ("_call_impl", "_wrapped_call_impl")
        if (f := getattr(nn.Module, name, None)) is not None and hasattr(f, "__code__")
    )


def state_dict_metadata(state: Mapping[str, Any]) -> Any:
    """The per-module version metadata ``nn.Module.state_dict`` attaches (``None`` if none)."""
    return getattr(state, "_metadata", None)


def with_state_dict_metadata(state: Any, metadata: Any) -> Any:
    """``state`` carrying ``metadata``, as ``load_state_dict`` reads it."""
    if metadata is not None:
        state._metadata = metadata
    return state
