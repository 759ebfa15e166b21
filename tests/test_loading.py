"""Trusted loading: candidate factories and checkpoints, and every way they can be wrong."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conformance.errors import CheckpointError, UsageError
from conformance.loading import build_candidate, load_checkpoint, load_factory, load_into


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


class _RunsCode:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_untrusted_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _RunsCode(marker)}, fh)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refused.*not executed"):
        load_checkpoint(path)
    assert not marker.exists(), "the pickle's code ran"


def test_torch_save_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil2.pt"
    torch.save({"w": torch.zeros(1), "x": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_roundtrip_own_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _net()
    path = tmp_path / "ok.pt"
    torch.save(model.state_dict(), path)
    fresh = _net()
    load_into(fresh, load_checkpoint(path))
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_nested_state_dict_is_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": _net().state_dict(), "epoch": 3}, path)
    assert "0.weight" in load_checkpoint(path)


def test_mismatched_checkpoint_names_every_misfit_and_loads_nothing(tmp_path: Path) -> None:
    state = _net().state_dict()
    state["3.weight"] = torch.zeros(5, 4)  # wrong shape
    del state["1.running_mean"]  # missing
    state["extra.weight"] = torch.zeros(1)  # unexpected
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_into(model, state, label="ckpt.pt")
    msg = str(info.value)
    assert "missing keys (1): 1.running_mean" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "3.weight: expected (2, 4), got (5, 4)" in msg
    assert "nothing was loaded" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_corrupted_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError, match=r"broken\.pt"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_checkpoint(path)


def test_safetensors_roundtrip(tmp_path: Path) -> None:
    import safetensors.torch as st
    path = tmp_path / "m.safetensors"
    st.save_file(_net().state_dict(), str(path))
    load_into(_net(), load_checkpoint(path))


# --- candidate factories ------------------------------------------------------------------


CANDIDATES = '''
import torch.nn as nn

def good():
    return nn.Linear(2, 2)

def raises():
    raise RuntimeError("boom in factory")

def not_a_module():
    return 42

def needs_args(depth):
    return nn.Linear(depth, 2)

value = 3
'''


@pytest.fixture
def cand_file(tmp_path: Path) -> Path:
    path = tmp_path / "cands.py"
    path.write_text(CANDIDATES)
    return path


def test_factory_from_file(cand_file: Path) -> None:
    assert isinstance(build_candidate(load_factory(f"{cand_file}:good"), "good"), nn.Linear)


def test_factory_from_module() -> None:
    assert callable(load_factory("torchvision.models:resnet18"))


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("missing", "has no attribute 'missing'"),
        ("value", "is a int, not a callable factory"),
        ("needs_args", r"needs arguments \(depth\)"),
    ],
)
def test_bad_factory_attribute(cand_file: Path, attr: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_factory(f"{cand_file}:{attr}")


def test_factory_that_raises_or_returns_junk(cand_file: Path) -> None:
    with pytest.raises(UsageError, match="factory raised RuntimeError: boom in factory"):
        build_candidate(load_factory(f"{cand_file}:raises"), "x")
    with pytest.raises(UsageError, match="returned int, not a torch.nn.Module"):
        build_candidate(load_factory(f"{cand_file}:not_a_module"), "x")


def test_missing_file_and_bad_syntax(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_factory(f"{tmp_path}/nope.py:f")
    with pytest.raises(UsageError, match="expected MODULE_OR_FILE.py:FACTORY"):
        load_factory("no_colon_here")
    with pytest.raises(UsageError, match="cannot import module"):
        load_factory("no_such_pkg_xyz.mod:f")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(UsageError, match="raised SyntaxError"):
        load_factory(f"{broken}:f")
