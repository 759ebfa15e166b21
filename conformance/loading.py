"""Loading user input: candidate factories and checkpoints.

* ``load_factory("path/to/file.py:make")`` or ``load_factory("package.module:make")`` returns
  a zero-argument callable that builds an ``nn.Module``; every way this can go wrong (missing
  file, import error, missing attribute, a factory that needs arguments) is a ``UsageError``
  with one line naming the problem.
* ``load_checkpoint(path)`` reads a state_dict with ``torch.load(weights_only=True)`` or
  safetensors, so an untrusted pickle is refused before any of its code runs;
  ``load_into(model, state)`` checks every key and shape first and loads nothing partially.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CheckpointError, UsageError

__all__ = ["build_candidate", "load_checkpoint", "load_factory", "load_into"]


def load_factory(target: str) -> Callable[[], nn.Module]:
    """Resolve ``FILE.py:FACTORY`` or ``package.module:FACTORY`` to a zero-argument callable."""
    if ":" not in target:
        raise UsageError(f"--candidate {target!r}: expected MODULE_OR_FILE.py:FACTORY (a colon before the factory name)")
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise UsageError(f"--candidate {target!r}: expected MODULE_OR_FILE.py:FACTORY")
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"--candidate {target!r}: file {str(path)!r} does not exist")
        mod_name = f"_cnn_conformance_candidate_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"--candidate {target!r}: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UsageError(f"--candidate {target!r}: importing {str(path)!r} raised {type(exc).__name__}: {first}") from exc
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise UsageError(f"--candidate {target!r}: cannot import module {where!r}: {type(exc).__name__}: {exc}") from exc
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"--candidate {target!r}: {where!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise UsageError(f"--candidate {target!r}: {attr!r} is a {type(factory).__name__}, not a callable factory")
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        required = [
            p.name
            for p in sig.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if required:
            raise UsageError(
                f"--candidate {target!r}: factory {attr!r} needs arguments ({', '.join(required)}); "
                "a candidate factory must take none"
            )
    return factory


def build_candidate(factory: Callable[[], nn.Module], label: str) -> nn.Module:
    """Call a factory; anything but an ``nn.Module`` (or an exception) is a ``UsageError``."""
    try:
        model = factory()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"{label}: factory raised {type(exc).__name__}: {first}") from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"{label}: factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict safely: safetensors, or ``torch.load(weights_only=True)``.

    A pickle that would import or call anything outside torch's tensor allow-list is refused
    by ``weights_only=True`` before any of its code runs; we turn that refusal into a
    ``CheckpointError`` naming the file. A nested ``{"state_dict": ...}`` is unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes)")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise CheckpointError(f"checkpoint {str(p)!r}: reading .safetensors needs the 'safetensors' package") from exc
        try:
            state: object = load_file(str(p))
        except Exception as exc:
            raise CheckpointError(f"checkpoint {str(p)!r} is not a valid safetensors file: {exc}") from exc
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            reason = text[0] if text else type(exc).__name__
            if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
                reason = _unpickler_reason(str(exc)) or reason
                raise CheckpointError(
                    f"checkpoint {str(p)!r} refused: it is a pickle that needs code outside torch's "
                    f"weights-only allow-list to load ({reason}); it was not executed"
                ) from None
            raise CheckpointError(f"checkpoint {str(p)!r} cannot be read: {type(exc).__name__}: {reason}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    not_sd = f"checkpoint {str(p)!r} is not a state_dict (a mapping of names to tensors)"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{not_sd}: it holds a {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise CheckpointError(f"{not_sd}: {bad[0]!r} is a {type(state[bad[0]]).__name__}{more}")
    return dict(state)


def _unpickler_reason(message: str) -> str:
    """What torch's weights-only unpickler refused ("Unsupported global: GLOBAL getattr ..."),
    without torch's advice to retry with ``weights_only=False``."""
    _, found, detail = message.partition("WeightsUnpickler error:")
    if not found:
        return ""
    line = next((x.strip() for x in detail.splitlines() if x.strip()), "")
    return line.split(" Please use", 1)[0].rstrip(". ")


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], label: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` only if every key and shape fits; else name every misfit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:8])}{' ...' if len(shapes) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{label} does not fit {type(model).__name__}, nothing was loaded: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)
