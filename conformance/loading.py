"""Loading user input: candidate factories and checkpoints.

* ``load_factory("path/to/file.py:make")`` or ``load_factory("package.module:make")`` returns
  a zero-argument callable that builds an ``nn.Module``; every way this can go wrong (missing
  file, import error, missing attribute, a factory that needs arguments) is a ``UsageError``
  with one line naming the problem.
* ``load_checkpoint(path)`` reads a state_dict with ``torch.load(weights_only=True)`` or
  safetensors, so an untrusted pickle is refused before any of its code runs, with the globals
  it needs named; a file that is no torch checkpoint (text, a plain ``pickle.dump`` file, a
  corrupt archive) is told apart from such a refusal;
  ``load_into(model, state)`` checks every key and shape first and loads nothing partially.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pickle
import pickletools
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CheckpointError, UsageError

__all__ = ["build_candidate", "load_checkpoint", "load_factory", "load_into"]


def load_factory(target: str) -> Callable[[], nn.Module]:
    """Resolve ``FILE.py:FACTORY`` or ``package.module:FACTORY`` to a zero-argument callable.

    A file may import the modules beside it (``_importable_beside``). Python keeps an imported
    module by its name for the whole process, so two candidate files in different folders
    that each import a neighbour of the same name (``blocks.py``) get the first one's: load
    such candidates in separate processes (the command line loads one per run)."""
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
            with _importable_beside(path):
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


@contextmanager
def _importable_beside(path: Path) -> Iterator[None]:
    """Let the file import its neighbours (``from blocks import block``), as ``python file.py`` would.

    While the file runs, its directory is first on ``sys.path``. Afterwards the directory stays
    on ``sys.path`` but moves to the end (unless it was there already): an import the factory
    or the model makes later, when it is called (``def build(): from blocks import Net``),
    still finds the file's neighbours, while a neighbour that happens to share a name with an
    installed module (``inspect.py``, ``report.py``) cannot shadow anything imported after
    the candidate was loaded.
    """
    folder = str(path.resolve().parent)
    present = folder in sys.path
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:  # our entry, the first occurrence (unless the file removed it)
            sys.path.remove(folder)
        if not present:
            sys.path.append(folder)


_LIBRARIES = (os.path.dirname(torch.__file__) + os.sep, os.path.dirname(os.path.abspath(__file__)) + os.sep)


def _raised_at(exc: BaseException) -> str:
    """`` (at FILE:LINE, in FUNCTION)``: the innermost frame of the traceback in the model's own
    code (not in torch, not in this package); "" when there is none."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_LIBRARIES)]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno}, in {f.name})"


def build_candidate(factory: Callable[[], nn.Module], label: str) -> nn.Module:
    """Call a factory; anything but an ``nn.Module`` (or an exception) is a ``UsageError``."""
    try:
        model = factory()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"{label}: factory raised {type(exc).__name__}: {first}{_raised_at(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"{label}: factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def build_candidate_on_meta(factory: Callable[[], nn.Module], label: str) -> nn.Module:
    """``build_candidate`` on the meta device; a failure that comes from reading a tensor's
    value there (``.item()``) says so (``inspect.meta_build_hint``)."""
    from .inspect import build_on_meta, meta_build_hint

    try:
        return build_on_meta(lambda: build_candidate(factory, label))
    except UsageError as exc:
        raise UsageError(str(exc) + meta_build_hint(exc)) from exc.__cause__


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
            with warnings.catch_warnings():  # its "please file an issue" about pickle protocols: our error says what the file is
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _unreadable(p, exc) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    not_sd = f"checkpoint {str(p)!r} is not a state_dict (a mapping of names to tensors)"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{not_sd}: it holds {_a(type(state).__name__)}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        nested = [k for k in bad if isinstance(state[k], Mapping)]
        hint = (f"; {nested[0]!r} may hold the state_dict: only a top-level 'state_dict' key is unwrapped, so "
                f"save checkpoint[{nested[0]!r}] on its own") if nested else ""
        raise CheckpointError(f"{not_sd}: {bad[0]!r} is {_a(type(state[bad[0]]).__name__)}{more}{hint}")
    return dict(state)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# --- why torch.load refused or failed ----------------------------------------------------------
#
# torch wraps what its weights-only unpickler says in advice to retry with weights_only=False,
# the one thing this module exists to prevent; we pass on only the unpickler's own sentence.
# Refusals (the file needs a global outside the allow-list) are told apart from files that
# are no torch checkpoint at all (random bytes, a plain pickle.dump file, a corrupt archive).

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # the PROTO opcode that starts every pickle of protocol 2 or later
_ALLOWED = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed global by default")
_BLOCKED = re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked")
_CODE = re.compile(  # the unpickler stopped because the file would call or build something
    r"Trying to call reduce for unrecognized function|Can only create new object for|Can only build Tensor"
)
_OPERAND = re.compile(r"Unsupported operand (\d+)")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a module path or a qualified name


def _torch_detail(exc: BaseException) -> str:
    """The sentence that says what went wrong, without torch's advice to lower the guard."""
    inner = exc.__context__
    if isinstance(exc, pickle.UnpicklingError) and isinstance(inner, pickle.UnpicklingError):
        text = str(inner)  # the unpickler's own message, which torch re-raised wrapped
    else:
        text = str(exc)
        _, found, after = text.partition("WeightsUnpickler error:")
        if found:
            text = after
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip()
        and "weights_only" not in line  # "Re-running torch.load with weights_only set to False ..."
        and not line.strip().startswith(("Weights only load failed", "Please file an issue", "Check the documentation"))
    ]
    line = lines[0] if lines else type(exc).__name__
    return line.split(" Please use `torch.serialization", 1)[0].rstrip(". ")


def _refusal(detail: str) -> str:
    """What the unpickler refused to run, naming the global; "" when it refused nothing."""
    if m := _BLOCKED.search(detail):
        return f"Blocked global: GLOBAL {m.group(1)} (module {m.group(2)} is on torch's block list)"
    if (m := _ALLOWED.search(detail)) and _DOTTED.fullmatch(m.group(1)):
        return detail
    if _CODE.search(detail):
        return detail
    return ""  # including a "global" that is no module path: text read as the GLOBAL opcode


def _names(text: str, name: str) -> bool:
    """Whether ``text`` names the global ``name`` (torch writes ``builtins.eval`` as ``eval``)."""
    words = set(text.replace("(", " ").replace(")", " ").split())
    return name in words or name.removeprefix("builtins.") in words


def _operand(detail: str) -> str:
    """``Unsupported operand 149`` with the opcode's name, when the detail is that."""
    m = _OPERAND.search(detail)
    if not m:
        return detail
    code = chr(int(m.group(1)))
    name = next((op.name for op in pickletools.opcodes if op.code == code), "")
    return f"{detail} (pickle opcode {name})" if name else detail


def _pickle_globals(p: Path) -> tuple[list[str], bool, object]:
    """Globals named by the pickles at the start of ``p``, read with ``pickletools`` (which
    parses and never runs anything); whether the first pickle parsed to its end; its value
    when it is a single integer (the magic number of a pre-1.6 ``torch.save`` file)."""
    found: list[str] = []
    first_complete: bool = False
    first_value: object = None
    memo: dict[int, object] = {}
    recent: list[object] = [None, None]  # the last two values pushed, for STACK_GLOBAL
    with open(p, "rb") as fh:
        for index in range(8):  # a pre-1.6 torch file holds 4 pickles, then raw storages
            ops: list[tuple[str, object]] = []
            try:
                for op, arg, _ in pickletools.genops(fh):
                    ops.append((op.name, arg))
                    if op.name == "GLOBAL" and isinstance(arg, str):
                        module, _, name = arg.partition(" ")
                        if not (_DOTTED.fullmatch(module) and _DOTTED.fullmatch(name)):
                            raise ValueError("not a global: text that happens to start with the GLOBAL opcode")
                        found.append(f"{module}.{name}")
                    elif op.name == "STACK_GLOBAL":
                        mod, qual = recent[-2:]
                        found.append(f"{mod}.{qual}" if isinstance(mod, str) and isinstance(qual, str) else "<unnamed global>")
                    if op.name in ("MEMOIZE",):
                        memo[len(memo)] = recent[-1]
                    elif op.name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                        memo[arg] = recent[-1]
                    elif op.name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                        recent.append(memo.get(arg))
                    elif op.name not in ("PROTO", "FRAME", "MARK", "STOP"):
                        text = isinstance(arg, str) and ("UNICODE" in op.name or "STRING" in op.name)
                        recent.append(arg if text else None)
                    del recent[:-2]
            except Exception:  # noqa: BLE001 - the end of the pickles, or a corrupt one
                break
            if index == 0:
                values = [arg for name, arg in ops if name not in ("PROTO", "FRAME", "STOP")]
                first_complete = bool(values)  # a lone STOP byte is no pickle
                first_value = values[0] if len(values) == 1 else None
    return found, first_complete, first_value


def _outside_allow_list(names: list[str]) -> list[str]:
    """The names torch's weights-only unpickler would not import, in order, once each."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - a private helper: without it, every global counts
        allowed = set()
    for g in torch.serialization.get_safe_globals():  # what the user allow-listed: an object, or (object, "name")
        allowed.add(g[1] if isinstance(g, tuple) else f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', '')}")
    return list(dict.fromkeys(n for n in names if n not in allowed))


def _unreadable(p: Path, exc: BaseException) -> CheckpointError:
    """The error for a file ``torch.load(weights_only=True)`` would not read."""
    where = f"checkpoint {str(p)!r}"
    detail = _torch_detail(exc)
    if isinstance(exc, OSError):  # the file itself could not be read (permissions, a device error)
        return CheckpointError(f"{where} cannot be read: {type(exc).__name__}: {exc.strerror or exc}")
    try:
        return _diagnosed(p, exc, where, detail)
    except OSError as read_error:  # reading it again, to say what it is, failed
        return CheckpointError(f"{where} cannot be read: {type(exc).__name__}: {detail} "
                               f"(and reading it again failed: {read_error.strerror or read_error})")


def _diagnosed(p: Path, exc: BaseException, where: str, detail: str) -> CheckpointError:
    """What the file is, read without running any of it, and why torch did not load it."""
    with open(p, "rb") as fh:
        head = fh.read(16)
    refused = _refusal(detail)
    archive = head.startswith(_ZIP_MAGIC)
    legacy = complete = False
    if archive:
        try:  # every global the archive needs, not only the first one torch stopped at
            needs = list(torch.serialization.get_unsafe_globals_in_checkpoint(p))
        except Exception:  # noqa: BLE001 - a corrupt archive: torch's detail says why
            needs = []
    else:
        names, complete, first_value = _pickle_globals(p)
        needs = _outside_allow_list(names)
        legacy = complete and isinstance(first_value, int) and first_value == torch.serialization.MAGIC_NUMBER
    if refused or needs:
        if refused:
            more = [g for g in needs if not _names(refused, g)]
            reason = refused + (f"; it also needs {', '.join(more)}" if more else "")
        else:
            plain = "" if archive or legacy else "a plain pickle, not a torch.save checkpoint, that "
            reason = f"{plain or 'it '}would import {', '.join(needs)}"
        return CheckpointError(
            f"{where} refused: it is a pickle that needs code outside torch's weights-only allow-list "
            f"to load ({reason}); it was not executed"
        )
    if archive:
        return CheckpointError(f"{where} cannot be read: {type(exc).__name__}: {_operand(detail)}")
    if legacy:
        return CheckpointError(
            f"{where} cannot be read: it is a pre-1.6 torch.save file that is truncated or corrupt "
            f"({type(exc).__name__}: {_operand(detail)})"
        )
    proto = head[:1] == bytes([_PICKLE_PROTO])
    protocol = f"protocol {head[1]}" if proto and len(head) > 1 else ("protocol 0 or 1" if not proto else "protocol unknown")
    if complete:
        return CheckpointError(
            f"{where} is not a torch checkpoint: it is a plain pickle ({protocol}), such as pickle.dump "
            f"writes, which torch's weights-only reader does not read ({_operand(detail)}); nothing in it was run. "
            "Save a state_dict with torch.save or safetensors"
        )
    if proto:
        return CheckpointError(
            f"{where} cannot be read: it starts like a pickle ({protocol}) but is corrupt "
            f"({type(exc).__name__}: {_operand(detail)}); nothing in it was run"
        )
    return CheckpointError(
        f"{where} is not a torch checkpoint: it is neither a zip archive (what torch.save writes) "
        f"nor a pickle (it starts with {head!r}); it is corrupt or in another format"
    )


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
    cast = [f"{k}: {str(state[k].dtype).removeprefix('torch.')} -> {str(own[k].dtype).removeprefix('torch.')}"
            for k in sorted(own) if own[k].dtype != state[k].dtype]
    if cast:  # load_state_dict casts to the model's dtypes: said, not silent
        warnings.warn(f"{label}: {len(cast)} tensor(s) cast to the model's dtype on loading: {'; '.join(cast[:4])}"
                      + (" ..." if len(cast) > 4 else ""), stacklevel=2)
    model.load_state_dict(state, strict=True)
