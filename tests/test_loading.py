"""Trusted loading: candidate factories and checkpoints, and every way they can be wrong."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from _shared import RunsCode

from conformance.errors import CheckpointError, UsageError
from conformance.loading import build_candidate, load_checkpoint, load_factory, load_into


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))



def test_untrusted_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": RunsCode(marker)}, fh)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refused.*not executed"):
        load_checkpoint(path)
    assert not marker.exists(), "the pickle's code ran"


def test_torch_save_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil2.pt"
    torch.save({"w": torch.zeros(1), "x": RunsCode(marker)}, path)
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
    ckpt = load_checkpoint(path)
    assert "0.weight" in ckpt and "epoch" not in ckpt
    assert (ckpt.wrapper, ckpt.ignored) == ("state_dict", ("epoch",))
    assert ckpt.describe() == f"{str(path)!r}, key 'state_dict' (ignored: epoch)"


def test_a_plain_state_dict_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(_net().state_dict(), path)
    ckpt = load_checkpoint(path)
    assert (ckpt.wrapper, ckpt.ignored, ckpt.describe()) == (None, (), repr(str(path)))
    assert list(ckpt) == list(_net().state_dict())


def test_a_key_outside_the_wrapper_list_is_read_when_named(tmp_path: Path) -> None:
    path = tmp_path / "ema.pt"
    torch.save({"ema": _net().state_dict(), "epoch": 3}, path)
    with pytest.raises(CheckpointError, match=r"'ema' may hold the state_dict: load_checkpoint\(path, wrapper='ema'\)"):
        load_checkpoint(path)
    assert load_checkpoint(path, wrapper="ema").ignored == ("epoch",)
    with pytest.raises(CheckpointError, match=r"has no key 'x' \(its top-level keys: 'ema', 'epoch'\)"):
        load_checkpoint(path, wrapper="x")
    with pytest.raises(CheckpointError, match=r"\['epoch'\] is not a state_dict .*: it holds an int"):
        load_checkpoint(path, wrapper="epoch")


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


def _random_net(seed: int) -> nn.Module:
    """``_net`` with every float tensor random (running statistics too), so each one shows where it lands."""
    model, gen = _net(), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    return model


def test_missing_counters_keep_the_models_value() -> None:
    # nn.BatchNorm2d's num_batches_tracked, absent from what torch before 0.4.1 saved
    model = _net()
    model.state_dict()["1.num_batches_tracked"].fill_(5)
    source = _random_net(seed=0).state_dict()
    state = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    report = load_into(model, state)
    assert (report.how, report.kept_at_model_value, report.kept_value) == ("names", ["1.num_batches_tracked"], 5)
    loaded = model.state_dict()
    assert loaded["1.num_batches_tracked"].item() == 5
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert report.describe() == "8 of 9 tensors by names; 1 num_batches_tracked kept at 5 (the model's value)"


def test_a_key_map_counter_follows_its_running_mean() -> None:
    source = _random_net(seed=1).state_dict()
    source["1.num_batches_tracked"].fill_(7)
    state = {"norm." + k.removeprefix("1.") if k.startswith("1.") else k: v for k, v in source.items()}
    key_map = {f"norm.{t}": f"1.{t}" for t in ("weight", "bias", "running_mean", "running_var")}
    model = _net()
    report = load_into(model, state, key_map=key_map)
    assert report.how == "key_map" and ("norm.num_batches_tracked", "1.num_batches_tracked") in report.renamed
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.items())  # the counter's 7 included


class _TwoLinears(nn.Module):
    def __init__(self, first: str, second: str) -> None:
        super().__init__()
        self.add_module(first, nn.Linear(4, 4))
        self.add_module(second, nn.Linear(4, 4))


def test_order_and_shape_never_send_a_key_into_another_one_the_model_has() -> None:
    # stored order b, a against the model's a, c: position 3 would load a.weight into c.weight
    model = _TwoLinears("a", "c")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_into(model, _TwoLinears("b", "a").state_dict(), label="x.pt")
    assert str(info.value).endswith(
        "by order and shape: they part at position 3 (counting from 1, num_batches_tracked aside): "
        "checkpoint 'a.weight' would go into 'c.weight', but the model has its own 'a.weight'"
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_order_and_shape_of_unequal_length_name_the_first_unpaired_tensor() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    state = {"body.weight": torch.zeros(4, 4), "body.bias": torch.zeros(4), "head.weight": torch.zeros(2, 4)}
    with pytest.raises(CheckpointError) as info:
        load_into(model, state, label="x.pt")
    assert str(info.value).endswith(
        "they part at position 4 (counting from 1, num_batches_tracked aside): the checkpoint has no more "
        "tensors (3), the model has '1.bias' (2,)"
    )


class _RefusesToLoad(nn.Module):
    """A module whose own loading hook raises, after the modules before it have loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("this module cannot be loaded")


def test_a_load_that_fails_halfway_puts_the_model_back() -> None:
    model = nn.Sequential(nn.Linear(2, 2), _RefusesToLoad())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {k: v + 1 for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_into(model, state, label="x.pt")
    assert str(info.value).startswith(
        "x.pt: Sequential.load_state_dict raised RuntimeError: this module cannot be loaded"
    )
    assert str(info.value).endswith("the model's tensors were put back, nothing was loaded")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_state_with_something_else_than_tensors_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"^x is not a state_dict .*nothing was loaded: 'epoch' is an int$"):
        load_into(_net(), {**_net().state_dict(), "epoch": 3}, label="x")  # type: ignore[dict-item]


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


def test_candidate_file_given_by_relative_path(
    tmp_path: Path, isolated_imports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
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
