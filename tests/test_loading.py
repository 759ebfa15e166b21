"""Trusted loading: candidate factories and checkpoints, and every way they can be wrong."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
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


# --- a candidate file that imports its neighbours ------------------------------------------------


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """sys.path and the modules a test's candidate files import are put back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _two_files(folder: Path, neighbour: str, net_source: str) -> Path:
    folder.mkdir()
    (folder / f"{neighbour}.py").write_text(
        "import torch.nn as nn\n\ndef block():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
    )
    net = folder / "net.py"
    net.write_text(net_source)
    return net


def test_candidate_file_imports_a_module_beside_it(tmp_path: Path, isolated_imports: None) -> None:
    net = _two_files(tmp_path / "cand", "neighbour_blocks_eager", (
        "from neighbour_blocks_eager import block\n\ndef build():\n    return block()\n"
    ))
    before = list(sys.path)
    model = build_candidate(load_factory(f"{net}:build"), "net")
    assert [type(m).__name__ for m in model] == ["Conv2d", "ReLU"]
    # the folder is not left in front, where it would shadow modules imported later
    assert sys.path[: len(before)] == before
    assert sys.path[len(before):] == [str((tmp_path / "cand").resolve())]


def test_factory_may_import_its_neighbour_when_called(tmp_path: Path, isolated_imports: None) -> None:
    net = _two_files(tmp_path / "lazy", "neighbour_blocks_lazy", (
        "def build():\n    from neighbour_blocks_lazy import block\n    return block()\n"
    ))
    factory = load_factory(f"{net}:build")
    assert isinstance(build_candidate(factory, "net")[0], nn.Conv2d)


def test_candidate_file_given_by_relative_path(tmp_path: Path, isolated_imports: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_files(tmp_path / "rel", "neighbour_blocks_rel", (
        "from neighbour_blocks_rel import block\n\ndef build():\n    return block()\n"
    ))
    monkeypatch.chdir(tmp_path)
    assert isinstance(build_candidate(load_factory("rel/net.py:build"), "net")[0], nn.Conv2d)


def test_missing_neighbour_is_a_usage_error_and_paths_are_restored(tmp_path: Path, isolated_imports: None) -> None:
    net = _two_files(tmp_path / "missing", "unused_neighbour", "from no_such_neighbour_xyz import block\n")
    before = list(sys.path)
    with pytest.raises(UsageError, match="raised ModuleNotFoundError: No module named 'no_such_neighbour_xyz'"):
        load_factory(f"{net}:build")
    assert sys.path[: len(before)] == before and str((tmp_path / "missing").resolve()) not in sys.path[:1]


def test_summary_of_a_candidate_that_imports_its_neighbour(
    tmp_path: Path, isolated_imports: None, capsys: pytest.CaptureFixture[str]
) -> None:
    net = _two_files(tmp_path / "cli", "neighbour_blocks_cli", (
        "from neighbour_blocks_cli import block\n\ndef build():\n    return block()\n"
    ))
    from conformance.cli import main

    assert main(["summary", "--candidate", f"{net}:build", "--input-size", "3", "8", "8"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Conv2d" in out and "ReLU" in out
    assert "Total params: 112" in out  # 4 * 3 * 3 * 3 weights + 4 biases
