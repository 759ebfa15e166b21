"""The model registry: one dict, filled at import time by each family module.

``register_model`` refuses a duplicate name and an incomplete spec (naming the field), so a
broken contribution fails the moment it is imported, not halfway through a CI run.
Third-party packages add architectures through the entry-point group
``cnn_conformance.architectures``: each entry point names a module (importing it registers
its specs) or a callable returning one spec or a list of them.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable
from typing import Any

import torch.nn as nn

from ._spec import ArchSpec, SpecError

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownModelError",
    "get_model",
    "get_spec",
    "list_models",
    "register_model",
]


class UnknownModelError(KeyError, ValueError):
    """An architecture name that is not registered (both a KeyError and a ValueError)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

ENTRY_POINT_GROUP = "cnn_conformance.architectures"

_REGISTRY: dict[str, ArchSpec] = {}
_plugins_loaded = False
_plugin_errors: list[str] = []
_lock = threading.RLock()  # re-entrant: a plugin module may call list_models() while it loads


def register_model(spec: ArchSpec) -> ArchSpec:
    """Add ``spec`` to the registry; raise ``SpecError`` naming what is wrong."""
    if not isinstance(spec, ArchSpec):
        raise SpecError(f"register_model expects an ArchSpec, got {type(spec).__name__}")
    problems = spec.problems()
    label = spec.name if isinstance(spec.name, str) else "<unnamed spec>"
    if problems:
        raise SpecError(f"spec {label!r} is incomplete: " + "; ".join(problems))
    if spec.name in _REGISTRY:
        other = _REGISTRY[spec.name]
        raise SpecError(
            f"duplicate architecture name {spec.name!r}: already registered by "
            f"{getattr(other.builder, '__module__', '?')}.{getattr(other.builder, '__qualname__', '?')}"
        )
    _REGISTRY[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Remove a name (for tests that register throwaway specs)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type):
                    result = obj()
                    specs: Iterable[Any]
                    if isinstance(result, ArchSpec):
                        specs = [result]
                    elif result is None:  # the callable registered its specs itself
                        specs = []
                    elif isinstance(result, Iterable) and not isinstance(result, (str, bytes)):
                        specs = list(result)
                    else:
                        raise SpecError(
                            f"{ep.value} returned {type(result).__name__}; expected an ArchSpec, "
                            "a list of them, or None"
                        )
                    for spec in specs:  # a spec the module registered at import is not a duplicate
                        if not isinstance(spec, ArchSpec) or _REGISTRY.get(spec.name) is not spec:
                            register_model(spec)
            except Exception as exc:  # reported, never swallowed: see plugin_errors()
                msg = f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP}: {type(exc).__name__}: {exc}"
                _plugin_errors.append(msg)


def plugin_errors() -> list[str]:
    """Errors raised while loading third-party architectures (empty when all loaded)."""
    _load_entry_points()
    return list(_plugin_errors)


def list_models() -> list[str]:
    """All registered architecture names, sorted (identical on every xdist worker)."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ArchSpec:
    """The spec registered under ``name``; ``KeyError`` lists the close matches."""
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UnknownModelError(
            f"unknown architecture {name!r}{hint} (cnn_models.list_models() lists all {len(_REGISTRY)})"
        ) from None


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` with its default kwargs updated by ``kwargs``."""
    return get_spec(name).build(**kwargs)
