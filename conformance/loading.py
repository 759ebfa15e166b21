"""Loading user input: candidate factories and checkpoints.

* ``load_factory("path/to/file.py:make")`` or ``load_factory("package.module:make")`` returns
  a zero-argument callable that builds an ``nn.Module``; every way this can go wrong (missing
  file, import error, missing attribute, a factory that needs arguments) is a ``UsageError``
  with one line naming the problem.
* ``load_checkpoint(path, wrapper=None)`` reads a state_dict with ``torch.load(weights_only=True)``
  or safetensors, so an untrusted pickle is refused before any of its code runs, with the globals
  it needs named; a file that is no torch checkpoint (text, a plain ``pickle.dump`` file, a
  corrupt archive) is told apart from such a refusal. A state_dict stored under one of
  ``WRAPPERS`` beside a training script's other state is unwrapped; the ``Checkpoint`` it
  returns (a ``dict``) says which key it came from and what was left out.
* ``load_into(model, state, label, key_map=None)`` pairs the checkpoint's tensors with the
  model's (by name after a ``module.`` prefix is stripped, by ``key_map``, or by order and
  shape), checks every pair before loading anything, loads nothing partially, and returns a
  ``LoadReport`` of the pairing.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import CheckpointError, UsageError
from .torch_private import NORMS_WITH_STATS, allowed_unpickler_globals

__all__ = ["WRAPPERS", "Checkpoint", "LoadReport", "build_candidate", "load_checkpoint", "load_factory", "load_into"]


def load_factory(target: str) -> Callable[[], nn.Module]:
    """Resolve ``FILE.py:FACTORY`` or ``package.module:FACTORY`` to a zero-argument callable.

    A file may import the modules beside it (``_importable_beside``). Python keeps an imported
    module by its name for the whole process, so two candidate files in different folders
    that each import a neighbour of the same name (``blocks.py``) get the first one's: load
    such candidates in separate processes (the command line loads one per run)."""
    if ":" not in target:
        raise UsageError(
            f"--candidate {target!r}: expected MODULE_OR_FILE.py:FACTORY (a colon before the factory name)"
        )
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
            raise UsageError(
                f"--candidate {target!r}: importing {str(path)!r} raised {type(exc).__name__}: {first}"
            ) from exc
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise UsageError(
                f"--candidate {target!r}: cannot import module {where!r}: {type(exc).__name__}: {exc}"
            ) from exc
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
    from .layer_table import build_on_meta, meta_build_hint

    try:
        return build_on_meta(lambda: build_candidate(factory, label))
    except UsageError as exc:
        raise UsageError(str(exc) + meta_build_hint(exc)) from exc.__cause__


# The top-level keys under which training scripts store the model's state_dict beside the
# rest of their state (epoch, optimizer, metrics). ``load_checkpoint`` unwraps one of them
# without being told to when it is the only one in the file that holds a mapping of tensors:
#   'state_dict'          pytorch/examples imagenet/main.py; akamaster/pytorch_resnet_cifar10
#                         trainer.py; timm.utils.checkpoint_saver.CheckpointSaver
#   'state_dict_ema'      timm.utils.checkpoint_saver.CheckpointSaver (the weights' moving average)
#   'model', 'model_ema'  torchvision's references/classification/train.py
#   'model_state_dict'    PyTorch's recipe "Saving and loading a general checkpoint"
#   'net'                 kuangliu/pytorch-cifar main.py
WRAPPERS = ("state_dict", "model", "model_state_dict", "net", "state_dict_ema", "model_ema")


class Checkpoint(dict[str, torch.Tensor]):
    """A state_dict as ``load_checkpoint`` read it: a ``dict`` of names to tensors that also
    says where in the file it was.

    ``path``: the file. ``wrapper``: the top-level key the state_dict was stored under, or
    None when the file holds the state_dict itself. ``ignored``: that key's siblings in the
    file (``epoch``, ``best_prec1``, ``optimizer``, ...), which are not part of the state_dict
    and are not in this mapping.
    """

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None, *, path: str = "",
                 wrapper: str | None = None, ignored: tuple[str, ...] = ()) -> None:
        super().__init__(state or {})
        self.path = path
        self.wrapper = wrapper
        self.ignored = ignored

    def describe(self) -> str:
        """``'ck.th', key 'state_dict' (ignored: epoch, best_prec1)``, or ``'ck.pt'``."""
        if self.wrapper is None:
            return repr(self.path)
        ignored = f" (ignored: {', '.join(map(str, self.ignored))})" if self.ignored else ""
        return f"{self.path!r}, key {self.wrapper!r}{ignored}"


def load_checkpoint(path: str | os.PathLike[str], wrapper: str | None = None) -> Checkpoint:
    """Read a state_dict safely: safetensors, or ``torch.load(weights_only=True)``.

    A pickle that would import or call anything outside torch's tensor allow-list is refused
    by ``weights_only=True`` before any of its code runs; we turn that refusal into a
    ``CheckpointError`` naming the file.

    A file whose top level is a mapping of names to tensors is the state_dict. Otherwise the
    state_dict is the value under ``wrapper`` when it is given, else under the one key of
    ``WRAPPERS`` whose value is a mapping of tensors; its siblings are left out and listed in
    ``Checkpoint.ignored``. Several such keys (``state_dict`` and ``state_dict_ema``) are a
    ``CheckpointError`` naming them: ``wrapper`` chooses one.
    """
    p = Path(path)
    where = f"checkpoint {str(p)!r}"
    if not p.is_file():
        raise CheckpointError(f"{where} does not exist")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{where} is empty (0 bytes)")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise CheckpointError(f"{where}: reading .safetensors needs the 'safetensors' package") from exc
        try:
            state: object = load_file(str(p))
        except Exception as exc:
            raise CheckpointError(f"{where} is not a valid safetensors file: {exc}") from exc
    else:
        try:
            # torch's "please file an issue" about pickle protocols: our error says what the file is
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _unreadable(p, exc) from None
    not_sd = f"{where} is not a state_dict (a mapping of names to tensors)"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{not_sd}: it holds {_a(type(state).__name__)}")
    key = _wrapper_of(state, wrapper, where, not_sd)
    if key is None:
        return Checkpoint(state, path=str(p))
    return Checkpoint(state[key], path=str(p), wrapper=key, ignored=tuple(k for k in state if k != key))


def _not_tensor(mapping: Mapping[Any, object]) -> str:
    """Why ``mapping`` is no state_dict (``'epoch' is an int``); "" when it is one."""
    bad = [k for k, v in mapping.items() if not isinstance(v, torch.Tensor)]
    if not bad:
        return ""
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{bad[0]!r} is {_a(type(mapping[bad[0]]).__name__)}{more}"


def _holds_tensors(value: object) -> bool:
    """Whether ``value`` is a non-empty mapping of names to tensors."""
    return isinstance(value, Mapping) and bool(value) and not _not_tensor(value)


def _wrapper_of(state: Mapping[object, object], wrapper: str | None, where: str, not_sd: str) -> str | None:
    """The top-level key that holds the state_dict, or None when ``state`` is one itself."""
    if wrapper is not None:
        if wrapper not in state:
            keys = ", ".join(map(repr, list(state)[:8])) + (" ..." if len(state) > 8 else "")
            raise CheckpointError(f"{where} has no key {wrapper!r} (its top-level keys: {keys})")
        inner = state[wrapper]
        if not isinstance(inner, Mapping):
            raise CheckpointError(f"{where}[{wrapper!r}] is not a state_dict (a mapping of names to tensors): "
                                  f"it holds {_a(type(inner).__name__)}")
        if why := _not_tensor(inner):
            raise CheckpointError(f"{where}[{wrapper!r}] is not a state_dict (a mapping of names to tensors): {why}")
        return wrapper
    why = _not_tensor(state)
    if not why:
        return None
    present = [k for k in WRAPPERS if k in state]
    of_tensors = [k for k in present if _holds_tensors(state[k])]
    if len(of_tensors) == 1:
        return of_tensors[0]
    if of_tensors:
        raise CheckpointError(
            f"{where} holds {len(of_tensors)} state_dicts, under {', '.join(map(repr, of_tensors))}; nothing was "
            f"loaded: name the one to read (load_checkpoint(path, wrapper={of_tensors[0]!r}))"
        )
    if present:
        inner = state[present[0]]
        if not isinstance(inner, Mapping):
            raise CheckpointError(f"{not_sd}: {present[0]!r} holds {_a(type(inner).__name__)}")
        what = _not_tensor(inner) or "it is empty"
        raise CheckpointError(f"{not_sd}: under {present[0]!r}, {what}")
    nested = [k for k, v in state.items() if isinstance(v, Mapping)]
    hint = (f"; {nested[0]!r} may hold the state_dict: load_checkpoint(path, wrapper={nested[0]!r}) reads it "
            f"(the keys read without being named: {', '.join(WRAPPERS)})") if nested else ""
    raise CheckpointError(f"{not_sd}: {why}{hint}")


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
                        named = isinstance(mod, str) and isinstance(qual, str)
                        found.append(f"{mod}.{qual}" if named else "<unnamed global>")
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
    allowed = allowed_unpickler_globals()
    for g in torch.serialization.get_safe_globals():  # what the user allow-listed: an object, or (object, "name")
        qualified = f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', '')}"
        allowed.add(g[1] if isinstance(g, tuple) else qualified)
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
    if not proto:
        protocol = "protocol 0 or 1"
    else:
        protocol = f"protocol {head[1]}" if len(head) > 1 else "protocol unknown"
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


_COUNTER = "num_batches_tracked"  # BatchNorm's count of training batches, a buffer since torch 0.4.1
_RUNNING_MEAN = "running_mean"
_DATA_PARALLEL = "module."  # what nn.DataParallel and DistributedDataParallel put before every key


@dataclass
class LoadReport:
    """What ``load_into`` loaded and how it paired the checkpoint's tensors with the model's.

    ``how``: ``"names"`` (each tensor into the model's tensor of its name), ``"key_map"`` (names
    after the given renaming) or ``"order and shape"`` (the i-th tensor of the checkpoint into
    the i-th of the model). ``mapping``: every (checkpoint key as stored, model key) loaded, in
    the checkpoint's order. ``renamed``: the pairs whose names differ once ``prefix_stripped``
    is taken off. ``kept_at_model_value``: the model's ``num_batches_tracked`` buffers the
    checkpoint has none for, left as they were; ``kept_value``: their value when they all have
    the same one. ``cast``: ``key: dtype -> dtype`` for each tensor cast to the model's dtype.
    ``source``: ``Checkpoint.describe()`` when the state came from ``load_checkpoint``.
    """

    how: str
    total: int
    mapping: list[tuple[str, str]]
    renamed: list[tuple[str, str]]
    prefix_stripped: str | None
    kept_at_model_value: list[str]
    kept_value: int | None
    cast: list[str]
    source: str | None

    @property
    def loaded(self) -> int:
        """How many of the model's tensors came from the checkpoint."""
        return len(self.mapping)

    def describe(self) -> str:
        """One line: ``97 of 116 tensors by order and shape; 2 renamed (linear.weight -> fc.weight,
        linear.bias -> fc.bias); 'module.' prefix stripped; 19 num_batches_tracked kept at 0 ...``."""
        parts = [f"{self.loaded} of {self.total} tensors by {self.how}"]
        if self.renamed:
            shown = ", ".join(f"{a} -> {b}" for a, b in self.renamed[:4]) + (", ..." if len(self.renamed) > 4 else "")
            parts.append(f"{len(self.renamed)} renamed ({shown})")
        if self.prefix_stripped:
            parts.append(f"{self.prefix_stripped!r} prefix stripped")
        if self.kept_at_model_value:
            at = "the model's values" if self.kept_value is None else f"{self.kept_value} (the model's value)"
            parts.append(f"{len(self.kept_at_model_value)} {_COUNTER} kept at {at}")
        if self.cast:
            parts.append(f"{len(self.cast)} cast to the model's dtype")
        if self.source:
            parts.append(f"from {self.source}")
        return "; ".join(parts)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], label: str = "checkpoint",
              key_map: Mapping[str, str] | None = None) -> LoadReport:
    """Load ``state`` into ``model`` only if every tensor finds its place; else name every misfit.

    Keys are paired with the model's in this order, and nothing is loaded unless all fit:

    * a ``module.`` prefix on every key (``nn.DataParallel``) is stripped when no model key
      has it;
    * ``key_map`` (checkpoint key as stored -> model key) renames the keys it names; a
      ``num_batches_tracked`` it does not name follows its layer's ``running_mean``. A map that
      names keys the checkpoint or the model lacks, or sends two keys to one, is refused;
    * the model's BatchNorm ``num_batches_tracked`` buffers may be absent (torch before 0.4.1
      saved none): they keep the model's value, as ``nn.Module.load_state_dict`` keeps them;
    * without ``key_map``, when the checkpoint has keys the model lacks and the model has keys
      the checkpoint lacks, the checkpoint's tensors in stored order are paired with the
      model's ``state_dict`` order (``num_batches_tracked`` aside on both sides, each then
      following its layer's ``running_mean``): accepted only when both lists are equally long,
      every position has one shape on both sides, and no key goes into another model key
      than its own name; else the first position where they part is named.

    Tensors of another dtype are cast to the model's with a warning naming them. Should
    ``load_state_dict`` itself raise (a module's own loading hook), the model's tensors are
    put back. Returns the ``LoadReport``.
    """
    name = type(model).__name__
    own = model.state_dict()
    if why := _not_tensor(state):
        raise CheckpointError(f"{label} is not a state_dict (a mapping of names to tensors), nothing was loaded: {why}")
    counters = _counters(model, own)
    prefix = _DATA_PARALLEL if (state and all(k.startswith(_DATA_PARALLEL) for k in state)
                                and not any(k.startswith(_DATA_PARALLEL) for k in own)) else None
    renames = dict(key_map) if key_map is not None else {}
    if key_map is not None:
        _check_key_map(renames, state, own, label, name, prefix)
    shown = {k: k[len(prefix):] if prefix and k not in renames else k for k in state}
    target = {k: renames.get(k, shown[k]) for k in state}
    if key_map is not None:
        for k in state:  # a counter the map does not name follows its layer's running_mean
            layer = k[: -len(_COUNTER)]
            mean = renames.get(layer + _RUNNING_MEAN, "")
            if k not in renames and _leaf(k) == _COUNTER and mean.endswith(_RUNNING_MEAN):
                target[k] = mean[: -len(_RUNNING_MEAN)] + _COUNTER
        _check_one_to_one(target, label)
    how = "names" if key_map is None else "key_map"
    loaded = set(target.values())
    missing = sorted(k for k in own if k not in loaded and k not in counters)
    unexpected = sorted(t for t in target.values() if t not in own)
    by_order = ""
    if key_map is None and missing and unexpected:
        paired, by_order = _pair_by_order_and_shape(state, target, own, counters)
        if paired is not None:
            target, how, missing, unexpected = paired, "order and shape", [], []
    shapes = [f"{target[k]}: expected {tuple(own[target[k]].shape)}, got {tuple(state[k].shape)}"
              for k in sorted(state, key=target.__getitem__)
              if target[k] in own and own[target[k]].shape != state[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_first(missing, ', ')}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_first(unexpected, ', ')}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {_first(shapes, '; ')}")
    if by_order:
        problems.append(f"by order and shape: {by_order}")
    if problems:
        stripped = f" (its {prefix!r} prefix stripped)" if prefix else ""
        raise CheckpointError(f"{label}{stripped} does not fit {name}, nothing was loaded: " + " | ".join(problems))

    full = {target[k]: state[k] for k in state}
    kept = [k for k in own if k not in full]  # only counters remain unfilled once the checks pass
    full.update((k, own[k]) for k in kept)
    cast = [f"{k}: {str(full[k].dtype).removeprefix('torch.')} -> {str(own[k].dtype).removeprefix('torch.')}"
            for k in sorted(own) if own[k].dtype != full[k].dtype]
    if cast:  # load_state_dict casts to the model's dtypes: said, not silent
        warnings.warn(f"{label}: {len(cast)} tensor(s) cast to the model's dtype on loading: {'; '.join(cast[:4])}"
                      + (" ..." if len(cast) > 4 else ""), stacklevel=2)
    saved = {k: v.detach().clone() for k, v in own.items() if isinstance(v, torch.Tensor)}
    try:
        model.load_state_dict(full, strict=True)
    except Exception as exc:
        with torch.no_grad():  # own's tensors share storage with the model's: this puts every value back
            for k, v in saved.items():
                own[k].copy_(v)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{label}: {name}.load_state_dict raised {type(exc).__name__}: {first}{_raised_at(exc)}; "
                              "the model's tensors were put back, nothing was loaded") from exc
    readable = all(own[k].device.type != "meta" and own[k].numel() == 1 for k in kept)
    values = {int(own[k].item()) for k in kept} if readable else set()
    return LoadReport(
        how=how,
        total=len(own),
        mapping=[(k, target[k]) for k in state],
        renamed=[(shown[k], target[k]) for k in state if shown[k] != target[k]],
        prefix_stripped=prefix,
        kept_at_model_value=kept,
        kept_value=values.pop() if len(values) == 1 else None,
        cast=cast,
        source=state.describe() if isinstance(state, Checkpoint) else None,
    )


def _first(items: list[str], sep: str) -> str:
    """The first 8 of ``items``, then `` ...`` when there are more."""
    return sep.join(items[:8]) + (" ..." if len(items) > 8 else "")


def _leaf(key: str) -> str:
    return key.rpartition(".")[2]


def _counters(model: nn.Module, own: Mapping[str, object]) -> set[str]:
    """The model's keys that are a BatchNorm-family layer's ``num_batches_tracked``."""
    norms = {n for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, NORMS_WITH_STATS)}
    return {k for k in own if _leaf(k) == _COUNTER and k.rpartition(".")[0] in norms}


def _listed(keys: list[str]) -> str:
    return f"({len(keys)}): {', '.join(map(repr, keys[:8]))}{' ...' if len(keys) > 8 else ''}"


def _check_key_map(renames: dict[str, str], state: Mapping[str, torch.Tensor], own: Mapping[str, object],
                   label: str, name: str, prefix: str | None) -> None:
    """Refuse a key_map naming keys neither side has, or sending several keys to one."""
    problems = []
    absent = [k for k in renames if k not in state]
    if absent:
        hint = (f" (the checkpoint's keys carry the prefix {prefix!r}: key_map names them as stored)"
                if prefix and any(prefix + k in state for k in absent) else "")
        problems.append(f"it names keys the checkpoint does not have {_listed(absent)}{hint}")
    nowhere = [v for v in renames.values() if v not in own]
    if nowhere:
        problems.append(f"it names keys {name} does not have {_listed(nowhere)}")
    sources: dict[str, list[str]] = {}
    for k, v in renames.items():
        sources.setdefault(v, []).append(k)
    shared = {v: ks for v, ks in sources.items() if len(ks) > 1}
    if shared:
        problems.append("it is not one-to-one: " + "; ".join(f"{', '.join(map(repr, ks))} -> {v!r}"
                                                             for v, ks in shared.items()))
    if problems:
        raise CheckpointError(f"{label}: key_map does not fit, nothing was loaded: " + " | ".join(problems))


def _check_one_to_one(target: Mapping[str, str], label: str) -> None:
    """Refuse two checkpoint keys that the renaming sends to one model key."""
    sources: dict[str, list[str]] = {}
    for k, v in target.items():
        sources.setdefault(v, []).append(k)
    shared = {v: ks for v, ks in sources.items() if len(ks) > 1}
    if shared:
        raise CheckpointError(
            f"{label}: key_map does not fit, nothing was loaded: it is not one-to-one: "
            + "; ".join(f"{', '.join(map(repr, ks))} -> {v!r} (renamed, or keeping its name)"
                        for v, ks in shared.items())
        )


def _pair_by_order_and_shape(
    state: Mapping[str, torch.Tensor], target: Mapping[str, str], own: Mapping[str, torch.Tensor], counters: set[str]
) -> tuple[dict[str, str] | None, str]:
    """Checkpoint key -> model key by position, ``num_batches_tracked`` aside; or None and
    where the two orders part (keys as ``target`` names them)."""
    ours = [k for k in state if _leaf(target[k]) != _COUNTER]
    theirs = [k for k in own if k not in counters]
    pairs: dict[str, str] = {}
    for i in range(max(len(ours), len(theirs))):
        at = f"they part at position {i + 1} (counting from 1, {_COUNTER} aside)"
        if i >= len(ours):
            m = theirs[i]
            return None, (f"{at}: the checkpoint has no more tensors ({len(ours)}), "
                          f"the model has {m!r} {tuple(own[m].shape)}")
        c = ours[i]
        if i >= len(theirs):
            return None, (f"{at}: checkpoint {target[c]!r} {tuple(state[c].shape)}, "
                          f"the model has no more tensors ({len(theirs)})")
        m = theirs[i]
        if state[c].shape != own[m].shape:
            return None, f"{at}: checkpoint {target[c]!r} {tuple(state[c].shape)} vs model {m!r} {tuple(own[m].shape)}"
        if target[c] in own and target[c] != m:
            return None, (f"{at}: checkpoint {target[c]!r} would go into {m!r}, "
                          f"but the model has its own {target[c]!r}")
        pairs[c] = m
    by_name = {target[k]: k for k in ours}
    for c in state:
        if c in pairs:
            continue
        mean = by_name.get(target[c][: -len(_COUNTER)] + _RUNNING_MEAN)
        if mean is None or not pairs[mean].endswith(_RUNNING_MEAN):
            return None, f"checkpoint {target[c]!r} has no {_RUNNING_MEAN} beside it to follow into the model"
        m = pairs[mean][: -len(_RUNNING_MEAN)] + _COUNTER
        if m not in counters:
            return None, (f"checkpoint {target[c]!r} follows its {_RUNNING_MEAN} into {pairs[mean]!r}, "
                          f"but the model has no {m!r}")
        pairs[c] = m
    return {c: pairs[c] for c in state}, ""
