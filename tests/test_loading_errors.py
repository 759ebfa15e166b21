"""Checkpoints ``load_checkpoint`` will not read, and what it says about each.

Two kinds must never be confused: a pickle refused because loading it would run code outside
torch's weights-only allow-list (the message names the globals it needs and says nothing was
run), and a file that is no torch checkpoint at all (random bytes, a plain ``pickle.dump``
file, a corrupt pickle or archive). No message may pass on torch's advice to retry with
``weights_only=False``. Every code-carrying file here would create a marker file if its code
ran; each test asserts the marker is absent.

Oracles: the globals named are those of the objects pickled (``os.system`` lives in module
``posix`` on POSIX systems, ``eval`` in ``builtins``); the file kinds are what the test wrote.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from conformance.errors import CheckpointError
from conformance.loading import load_checkpoint

SYSTEM = f"{os.system.__module__}.{os.system.__name__}"  # posix.system (nt.system on Windows)
REFUSED = "refused: it is a pickle that needs code outside torch's weights-only allow-list"


class _Shell:
    """Unpickling this runs ``touch marker`` through ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _Eval:
    """Unpickling this creates ``marker`` through ``eval``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def _error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert msg.startswith(f"checkpoint {str(path)!r} "), msg  # names the file
    assert "weights_only" not in msg and "will likely succeed" not in msg, msg  # no advice to lower the guard
    return msg


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """The file a payload would create; asserted absent after the test."""
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "the checkpoint's code ran"


# --- refused: loading would run code ----------------------------------------------------------


def test_torch_save_calling_os_system_names_the_blocked_global(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": _Shell(marker)}, path)
    msg = _error(path)
    assert msg.startswith(f"checkpoint {str(path)!r} {REFUSED}"), msg
    assert f"GLOBAL {SYSTEM} " in msg, msg
    assert msg.endswith("it was not executed"), msg


def test_every_global_outside_the_allow_list_is_named(tmp_path: Path, marker: Path) -> None:
    # torch stops at the first global; the message names the second one too
    path = tmp_path / "two.pt"
    torch.save({"t": torch.zeros(2), "a": _Shell(marker), "b": _Eval(marker)}, path)
    msg = _error(path)
    assert REFUSED in msg, msg
    assert SYSTEM in msg and "builtins.eval" in msg, msg


@pytest.mark.parametrize("protocol", [0, 2, 4, pickle.HIGHEST_PROTOCOL])
def test_plain_pickle_with_code_is_refused_by_name(tmp_path: Path, marker: Path, protocol: int) -> None:
    path = tmp_path / f"plain{protocol}.pkl"
    path.write_bytes(pickle.dumps({"w": _Shell(marker), "e": _Eval(marker)}, protocol=protocol))
    msg = _error(path)
    assert REFUSED in msg, msg
    assert SYSTEM in msg, msg
    assert msg.endswith("it was not executed"), msg


# --- not a torch checkpoint: nothing to refuse -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [b"not a checkpoint, just some notes\n" * 4, b"hello world\n" * 4, b'{"w": [1, 2]}',
     b"conv1.weight,0.1\nconv1.bias,0.2\n"],  # the last starts with "c", the pickle GLOBAL opcode
    ids=["notes", "hello", "json", "csv-starting-with-c"],
)
def test_text_file_is_not_a_checkpoint(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(text)
    msg = _error(path)
    assert "refused" not in msg and "allow-list" not in msg, msg
    assert "is not a torch checkpoint" in msg and "nor a pickle" in msg, msg


@pytest.mark.parametrize("content", [b"\x80", b"\x80\x04"], ids=["proto-byte-only", "proto-4-then-nothing"])
def test_a_pickle_cut_after_its_first_bytes_is_corrupt_not_a_crash(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "short.pt"
    path.write_bytes(content)
    msg = _error(path)
    assert "starts like a pickle" in msg and "but is corrupt" in msg and "nothing in it was run" in msg, msg


def test_plain_pickle_of_data_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0], "b": (3, 4)}, protocol=4))
    msg = _error(path)
    assert "refused" not in msg and "allow-list" not in msg, msg
    assert "is not a torch checkpoint: it is a plain pickle (protocol 4)" in msg, msg
    assert "nothing in it was run" in msg, msg


def test_plain_pickle_of_tensors_is_refused(tmp_path: Path) -> None:
    # pickle.dumps of a tensor stores it through torch.storage._load_from_bytes, which itself
    # calls torch.load without the weights-only guard: that is code outside the allow-list
    path = tmp_path / "tensors.pkl"
    path.write_bytes(pickle.dumps({"w": torch.zeros(2)}, protocol=4))
    msg = _error(path)
    assert REFUSED in msg and "torch.storage._load_from_bytes" in msg, msg


def test_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x80\x04not a pickle at all")
    msg = _error(path)
    assert "refused" not in msg, msg
    assert "cannot be read: it starts like a pickle (protocol 4) but is corrupt" in msg, msg


def test_truncated_legacy_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(64)}, path, _use_new_zipfile_serialization=False)
    assert set(load_checkpoint(path)) == {"w"}  # whole, it loads
    path.write_bytes(path.read_bytes()[:-100])
    msg = _error(path)
    assert "refused" not in msg, msg
    assert "cannot be read: it is a pre-1.6 torch.save file that is truncated or corrupt" in msg, msg


def test_truncated_archive(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(64)}, path)
    path.write_bytes(path.read_bytes()[:-60])
    msg = _error(path)
    assert "refused" not in msg, msg
    assert msg.startswith(f"checkpoint {str(path)!r} cannot be read: "), msg


# torch's wording of a refusal, as torch.load raises it: its advice first, then the unpickler's
# sentence (the "not an allowed global" form; other torch versions use it for os.system too)
TORCH_WRAPPED = (
    "Weights only load failed. This file can still be loaded, to do so you have two options, do those steps "
    "only if you trust the source of the checkpoint. \n\t(1) In PyTorch 2.6, we changed the default value of "
    "the `weights_only` argument in `torch.load` from `False` to `True`. Re-running `torch.load` with "
    "`weights_only` set to `False` will likely succeed, but it can result in arbitrary code execution. Do it "
    "only if you got the file from a trusted source.\n\t(2) Alternatively, to load with `weights_only=True` "
    "please check the recommended steps in the following error message.\n\tWeightsUnpickler error: "
    "Unsupported global: GLOBAL {g} was not an allowed global by default. Please use "
    "`torch.serialization.add_safe_globals([{g}])` or the `torch.serialization.safe_globals([{g}])` context "
    "manager to allowlist this global if you trust this class/function.\n\nCheck the documentation of "
    "torch.load to learn more about types accepted by default with weights_only "
    "https://pytorch.org/docs/stable/generated/torch.load.html."
)


def test_refusal_worded_as_not_allowed_names_the_global_without_torchs_advice(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": _Shell(marker)}, path)

    def load(*args: object, **kwargs: object) -> object:
        raise pickle.UnpicklingError(TORCH_WRAPPED.format(g=SYSTEM)) from None  # the wrapped text only

    monkeypatch.setattr(torch, "load", load)
    msg = _error(path)
    assert msg.startswith(f"checkpoint {str(path)!r} {REFUSED}"), msg
    assert f"GLOBAL {SYSTEM} was not an allowed global" in msg, msg
    assert "add_safe_globals" not in msg and "trust" not in msg, msg
    assert msg.count(SYSTEM) == 1, msg  # named once, not again as "also needs"
    assert msg.endswith("it was not executed"), msg


def test_a_wrapper_beside_an_object_outside_the_allow_list_stays_refused(tmp_path: Path) -> None:
    # torchvision's references/classification/train.py saves its argparse.Namespace as 'args'
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3, "args": argparse.Namespace(lr=0.1)}, path)
    msg = _error(path)
    assert msg.startswith(f"checkpoint {str(path)!r} {REFUSED}"), msg
    assert "argparse.Namespace" in msg and msg.endswith("it was not executed"), msg
    with torch.serialization.safe_globals([argparse.Namespace]):  # the user's own allow-listing
        ckpt = load_checkpoint(path)
    assert (ckpt.wrapper, ckpt.ignored, list(ckpt)) == ("model", ("epoch", "args"), ["w"])
