"""Every bad input the registry and the gate can receive, and the exact message it gets.

Each message must say what is wrong and where (the spec's name and field, the architecture,
the file, the module, the layer). Covered here, by kind:

* registry: not a spec, malformed spec, several problems at once, duplicate name, unknown name;
* the gate on a registered architecture: a builder that raises, returns a non-module, ignores
  ``num_classes`` (wrong class count), produces NaN, reads a tensor's value while building; a
  family without a closed form, a formula that cannot read the spec's config, a config that is
  not a mapping, an unknown torchvision name; a gate that raises (the run goes on);
* the API: a module instance instead of a factory, a spec by an unknown name;
* the command line: a candidate factory that raises or returns a non-module; a --json path
  that cannot be written;
* checkpoints: untrusted pickle (no code runs), corrupted, truncated, empty, disguised as
  safetensors, not a state_dict, keys or shapes that do not fit (nothing loaded);
* the library reads checkpoints only through ``conformance.loading.load_checkpoint``.

Elsewhere: a third-party entry point that raises at import, returns junk, or registers a
malformed or duplicate spec (tests/test_third_party.py, tests/test_plugin.py); bad candidate
references (tests/test_cli.py); bad factory targets (tests/test_loading.py).
"""

from __future__ import annotations

import ast
import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from _shared import RunsCode

import cnn_models
from cnn_models import ArchSpec, Expected, InitScheme, SpecError
from cnn_models._registry import register_model, unregister_model
from conformance.check import check_builtin
from conformance.cli import main
from conformance.errors import CheckpointError
from conformance.formulas import plan_for
from conformance.loading import load_checkpoint, load_into
from conformance.pytest_plugin import assert_conformant

ROOT = Path(__file__).resolve().parents[1]
INIT = InitScheme(
    conv="torch_default", linear="torch_default", conv_bias="torch_default", linear_bias="torch_default",
    source="PyTorch defaults",
)


class _Tiny(nn.Module):
    def __init__(self, num_classes: int = 3, nan: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(12, num_classes)
        self.nan = nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 2, 2)
        out = self.fc(torch.flatten(x, 1))  # (N, num_classes)
        return out * float("nan") if self.nan else out


def _nan_net(*, num_classes: int = 3) -> nn.Module:
    """Outputs NaN."""
    return _Tiny(num_classes, nan=True)


def _raising(*, num_classes: int = 3) -> nn.Module:
    """Raises."""
    raise RuntimeError("boom in builder")


def _junk(*, num_classes: int = 3) -> nn.Module:
    """Returns a string."""
    return "not a module"  # type: ignore[return-value]


def _five_classes(*, num_classes: int = 3) -> nn.Module:
    """Ignores num_classes."""
    return _Tiny(5)


TINY = ArchSpec(
    name="tiny_bad_input",
    family="none",  # no closed form: the gate reports that too
    builder=_nan_net,
    paper="none",
    torchvision=None,
    input_size=(3, 2, 2),
    init=INIT,
    expected={"params": Expected(39, "closed form 12*3+3")},
    config={},
    num_classes=3,
)


@pytest.fixture
def registered() -> Iterator[Callable[[str, Callable[..., nn.Module]], str]]:
    """Register throwaway specs for one test; unregistered afterwards, whatever happens."""
    names: list[str] = []

    def add(name: str, builder: Callable[..., nn.Module]) -> str:
        register_model(TINY.replace(name=name, builder=builder))
        names.append(name)
        return name

    yield add
    for name in names:
        unregister_model(name)


# --- registry ----------------------------------------------------------------------------------


def _spec_error(spec: object) -> str:
    with pytest.raises(SpecError) as info:
        register_model(spec)  # type: ignore[arg-type]
    return str(info.value)


def test_not_a_spec() -> None:
    assert _spec_error("resnet50") == "register_model expects an ArchSpec, got str"


def test_malformed_spec_names_the_spec_and_field() -> None:
    assert _spec_error(TINY.replace(input_size=(3, 224))) == (
        "spec 'tiny_bad_input' is incomplete: field 'input_size': (3, 224) is not a (C, H, W) tuple of positive ints"
    )


def test_every_problem_of_a_spec_is_reported_at_once() -> None:
    bad = TINY.replace(num_classes=0, expected={"params": Expected(39, "")}, builder=3)
    assert _spec_error(bad) == (
        "spec 'tiny_bad_input' is incomplete: field 'builder': 3 is not callable; "
        "field 'expected['params']': has no source; field 'num_classes': 0 is not a positive int"
    )
    assert "tiny_bad_input" not in cnn_models.list_models()


def test_duplicate_name_names_the_first_registrant() -> None:
    assert _spec_error(TINY.replace(name="resnet50")) == (
        "duplicate architecture name 'resnet50': already registered by cnn_models.resnet.resnet50"
    )


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(KeyError) as info:
        cnn_models.get_spec("resnet5")
    n = len(cnn_models.list_models())
    assert str(info.value).startswith("unknown architecture 'resnet5'; close matches: resnet50")
    assert str(info.value).endswith(f" (cnn_models.list_models() lists all {n})")


# --- the gate on a registered architecture --------------------------------------------------------


def test_builder_that_raises_stops_the_gate_with_its_error(registered: Callable[..., str]) -> None:
    name = registered("tiny_raising", _raising)
    report = check_builtin(name)
    # where: the line of the raise in this file, found by reading it (not from the message)
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
                if text.strip() == 'raise RuntimeError("boom in builder")')
    message = f"tiny_raising: factory raised RuntimeError: boom in builder (at {__file__}:{line}, in _raising)"
    assert report.error == message
    assert not report.passed
    with pytest.raises(pytest.fail.Exception) as info:  # the plugin's message for the same report
        assert_conformant(report)
    assert str(info.value).splitlines() == [
        "conformance gate: tiny_raising is not conformant (an error stopped the checks)",
        "tiny_raising vs spec tiny_raising: NOT CONFORMANT",
        f"  error: {message}",
    ]


def test_builder_that_returns_a_non_module(registered: Callable[..., str]) -> None:
    report = check_builtin(registered("tiny_junk", _junk))
    assert report.error == "tiny_junk: factory returned str, not a torch.nn.Module"


def test_wrong_class_count(registered: Callable[..., str]) -> None:
    report = check_builtin(registered("tiny_five", _five_classes))
    assert "output_shape: output: expected shape (N, 3) (spec num_classes), got (N, 5)" in report.failures
    assert "params: parameters: expected 39 (spec (closed form 12*3+3)), got 65 (+26)" in report.failures


def test_nan_output_and_gradients_are_named(registered: Callable[..., str]) -> None:
    report = check_builtin(registered("tiny_nan", _nan_net))
    nan = [f for f in report.failures if f.startswith("finite_grads")]
    assert nan == [
        "finite_grads: output[0]: 6 non-finite values (NaN/inf) in the forward pass",  # 2 samples x 3 classes
        "finite_grads: fc.weight: gradient has non-finite values",
        "finite_grads: fc.bias: gradient has non-finite values",
    ]


def test_family_without_a_closed_form(registered: Callable[..., str]) -> None:
    report = check_builtin(registered("tiny_no_formula", _nan_net))
    assert ("closed_form: no closed-form formula for family 'none' (conformance/formulas/none.py not found)"
            in report.failures)


def test_third_party_family_that_is_missing_or_has_no_plan() -> None:
    with pytest.raises(LookupError) as info:
        plan_for("no_such_pkg_xyz.formula", {}, (3, 8, 8))
    assert str(info.value) == ("no closed-form formula for family 'no_such_pkg_xyz.formula' "
                               "(module no_such_pkg_xyz.formula not found)")
    with pytest.raises(LookupError) as info:
        plan_for("conformance.gate_report", {}, (3, 8, 8))
    assert str(info.value) == ("no closed-form formula for family 'conformance.gate_report': "
                               "module conformance.gate_report has no plan(config, input_size)")


def test_formula_module_with_a_missing_dependency_is_not_disguised(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the formula exists but cannot import what it needs: that error surfaces as it is
    (tmp_path / "pkg_needs_xyz").mkdir()
    (tmp_path / "pkg_needs_xyz" / "__init__.py").write_text("")
    (tmp_path / "pkg_needs_xyz" / "formula.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        plan_for("pkg_needs_xyz.formula", {}, (3, 8, 8))
    assert info.value.name == "no_such_dependency_xyz"


@pytest.fixture
def registered_spec() -> Iterator[Callable[..., str]]:
    """Register a throwaway variant of TINY with any fields replaced; unregistered afterwards."""
    names: list[str] = []

    def add(name: str, **fields: object) -> str:
        register_model(TINY.replace(name=name, **fields))
        names.append(name)
        return name

    yield add
    for name in names:
        unregister_model(name)


BAD_FORMULA = """
def plan(config, input_size):
    return int(config["width"])  # a formula that reads its config
"""


@pytest.fixture
def bad_formula_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "pkg_reads_width").mkdir()
    (tmp_path / "pkg_reads_width" / "__init__.py").write_text("")
    (tmp_path / "pkg_reads_width" / "formula.py").write_text(BAD_FORMULA)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "pkg_reads_width.formula"


def test_a_formula_that_cannot_read_the_config_fails_closed_form_and_the_gate_goes_on(
    registered_spec: Callable[..., str], bad_formula_family: str
) -> None:
    report = check_builtin(registered_spec("tiny_cfg_type", family=bad_formula_family, config={"width": "eight"}))
    assert report.error is None
    assert ("closed_form: pkg_reads_width.formula on spec tiny_cfg_type's config {'width': 'eight'} raised ValueError: "
            "invalid literal for int() with base 10: 'eight'") in report.failures
    assert {"params", "output_shape", "finite_grads"} <= {c.name for c in report.checks}  # the other checks ran

    report = check_builtin(registered_spec("tiny_cfg_key", family=bad_formula_family, config={"depth": 3}))
    assert ("closed_form: pkg_reads_width.formula on spec tiny_cfg_key's config: the formula reads key 'width', "
            "which is neither in the config (keys: ['depth']) nor, where the formula looked, in a mapping inside it"
            ) in report.failures


def test_a_missing_nested_key_is_not_blamed_on_the_config_alone(
    registered_spec: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkg_reads_nested").mkdir()
    (tmp_path / "pkg_reads_nested" / "__init__.py").write_text("")
    (tmp_path / "pkg_reads_nested" / "formula.py").write_text(
        "def plan(config, input_size):\n    return config['aux']['after']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = check_builtin(registered_spec("tiny_nested", family="pkg_reads_nested.formula", config={"aux": {}}))
    assert ("closed_form: pkg_reads_nested.formula on spec tiny_nested's config: the formula reads key 'after', "
            "which is neither in the config (keys: ['aux']) nor, where the formula looked, in a mapping inside it"
            ) in report.failures


def test_a_family_that_is_no_name_is_refused_at_registration() -> None:
    assert _spec_error(TINY.replace(name="tiny_family_none", family=None)) == (
        "spec 'tiny_family_none' is incomplete: field 'family': None is not a family name (the closed form's module)")


def test_a_config_that_is_not_a_mapping_is_refused_at_registration() -> None:
    assert _spec_error(TINY.replace(name="tiny_cfg_none", config=None)) == (
        "spec 'tiny_cfg_none' is incomplete: field 'config': None is not a mapping of str keys "
        "(the closed form's inputs)")


def test_an_unknown_torchvision_name_is_that_spec_s_error_and_the_run_goes_on(
    registered_spec: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = registered_spec("tiny_tv_unknown", torchvision="no_such_net_xyz")
    report = check_builtin(bad)
    assert report.error == (
        f"spec tiny_tv_unknown ({_nan_net.__module__}): its torchvision='no_such_net_xyz' "
        "(with torchvision_kwargs={}) "
        "does not resolve: torchvision has no model 'no_such_net_xyz'")
    nan = registered_spec("tiny_nan_too")
    out_json = tmp_path / "r.json"
    assert main(["check", bad, nan, "--jobs", "1", "--json", str(out_json)]) == 2
    out, err = capsys.readouterr()
    assert "[1/2] tiny_tv_unknown ... ERROR" in err and "[2/2] tiny_nan_too ... FAIL" in err
    written = json.loads(out_json.read_text())
    assert [r["candidate"] for r in written] == ["tiny_tv_unknown", "tiny_nan_too"]
    assert written[0]["error"] == report.error and written[1]["error"] is None


def test_whatever_a_gate_raises_is_that_architecture_s_error(
    registered_spec: Callable[..., str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import conformance.check

    def broken(name: str, numerics: bool = True) -> object:
        if name == "tiny_gate_raises":
            raise ZeroDivisionError("an engine bug")
        return real(name, numerics)

    real = conformance.check.check_builtin
    monkeypatch.setattr(conformance.check, "check_builtin", broken)
    a, b = registered_spec("tiny_gate_raises"), registered_spec("tiny_gate_fine")
    assert main(["check", a, b, "--jobs", "1"]) == 2
    out, err = capsys.readouterr()
    assert "tiny_gate_raises: the gate raised ZeroDivisionError: an engine bug (at " in out
    assert "test_bad_inputs.py:" in out.split("an engine bug (at ")[1]
    assert "[2/2] tiny_gate_fine ... FAIL" in err  # checked all the same (it outputs NaN)


def test_an_unwritable_json_path_is_refused_before_any_check(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_dir" / "r.json"
    assert main(["check", "cifar_resnet20", "--json", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == (f"cnn-conformance check: error: --json {str(missing)!r}: "
                           f"folder {str(missing.parent)!r} does not exist")
    assert "[1/1]" not in err  # nothing was checked


def test_a_module_instance_or_a_spec_name_given_to_the_api() -> None:
    from conformance.check import check_candidate
    from conformance.errors import UsageError

    with pytest.raises(UsageError) as info:
        check_candidate(_Tiny(), "instance", spec=TINY)  # type: ignore[arg-type]
    assert str(info.value).startswith("the candidate is an nn.Module instance; pass a zero-argument factory")
    with pytest.raises(UsageError) as info:
        check_candidate(_Tiny, "by name", spec="no_such_spec_xyz")
    assert str(info.value).startswith("spec='no_such_spec_xyz': unknown architecture 'no_such_spec_xyz'")


def _reads_a_value(*, num_classes: int = 3) -> nn.Module:
    """Reads a tensor's value while building (a drop-path schedule)."""
    rates = [r.item() for r in torch.linspace(0, 0.1, 3)]
    model = _Tiny(num_classes)
    model.rates = rates  # type: ignore[assignment]
    return model


def test_a_builder_that_reads_tensor_values_is_told_why_meta_fails(registered_spec: Callable[..., str]) -> None:
    report = check_builtin(registered_spec("tiny_item", builder=_reads_a_value))
    assert report.error is not None
    assert report.error.startswith(
        "tiny_item: factory raised RuntimeError: Tensor.item() cannot be called on meta tensors")
    assert report.error.endswith("from Python numbers instead of .item() / .tolist() of a tensor")


def test_checks_that_do_not_apply_are_shown_as_n_a_with_the_reason() -> None:
    from conformance.check import check

    def tiny() -> nn.Module:
        torch.manual_seed(0)
        return _Tiny()

    report = check(tiny, reference=tiny, input_size=(3, 2, 2))  # no spec; no BatchNorm anywhere
    status = {c.name: (c.status, c.evidence) for c in report.checks}
    # no spec: the reference's own fresh initialisation is the oracle, tensor by aligned tensor
    assert status["init"][0] == "pass" and "the reference's own fresh initialisation" in status["init"][1]
    assert status["bn_running_stats"] == ("n/a", "the model has no BatchNorm layer (no running statistics)")
    assert status["eval_output"][0] == "pass" and report.passed

    alone = check(tiny, spec=TINY)  # a spec without a torchvision counterpart: nothing to compare outputs with
    status = {c.name: c.status for c in alone.checks}
    assert status["numerics"] == "n/a" and "finite_grads" in status and "eval_output" not in status
    assert "  n/a  numerics" in alone.format()


# --- the command line ------------------------------------------------------------------------------

CANDIDATES = """
def raises():
    raise RuntimeError("boom in factory")

def not_a_module():
    return "resnet"
"""


@pytest.mark.parametrize(
    ("factory", "message"),
    [("raises", "factory raised RuntimeError: boom in factory (at {path}:3, in raises)"),
     ("not_a_module", "factory returned str, not a torch.nn.Module")],
)
def test_cli_candidate_factory_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], factory: str,
                                            message: str) -> None:
    path = tmp_path / "cands.py"
    path.write_text(CANDIDATES)
    message = message.format(path=path)  # line 3 of CANDIDATES: the raise
    target = f"{path}:{factory}"
    assert main(["check", "--candidate", target, "--reference", "torchvision:resnet18"]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == f"cnn-conformance: error: {target}: {message}"
    assert f"  error: {target}: {message}" in out.splitlines()


# --- checkpoints ----------------------------------------------------------------------------------



def _checkpoint_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    return str(info.value)


def test_untrusted_pickle_names_the_refused_global_and_runs_nothing(tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": RunsCode(marker)}, path)
    msg = _checkpoint_error(path)
    assert msg.startswith(f"checkpoint {str(path)!r} refused: it is a pickle that needs code outside "
                          "torch's weights-only allow-list to load (")
    assert "Unsupported global: GLOBAL getattr was not an allowed global by default" in msg  # what it would have called
    assert msg.endswith("); it was not executed")
    assert "weights_only` set to `False`" not in msg  # torch's advice to disable the guard is not passed on
    assert not marker.exists(), "the pickle's code ran"


def test_pickle_disguised_as_safetensors_runs_nothing(tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "weights.safetensors"
    with open(path, "wb") as fh:
        pickle.dump({"w": RunsCode(marker)}, fh)
    assert _checkpoint_error(path).startswith(f"checkpoint {str(path)!r} is not a valid safetensors file: ")
    assert not marker.exists(), "the pickle's code ran"


def test_corrupted_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"garbage" * 3)
    assert _checkpoint_error(path).startswith(f"checkpoint {str(path)!r} is not a valid safetensors file: ")


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "trunc.pt"
    torch.save({"w": torch.zeros(64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _checkpoint_error(path).startswith(
        f"checkpoint {str(path)!r} cannot be read: RuntimeError: PytorchStreamReader failed reading zip archive"
    )


def test_empty_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert _checkpoint_error(path) == f"checkpoint {str(path)!r} is empty (0 bytes)"


@pytest.mark.parametrize(
    ("content", "what"),
    [([torch.zeros(1)], "it holds a list"), ({"w": torch.zeros(1), "epoch": 3}, "'epoch' is an int"),
     ({"weights": {"w": torch.zeros(1)}, "epoch": 3},
      "'weights' is a dict (and 1 more); 'weights' may hold the state_dict: load_checkpoint(path, "
      "wrapper='weights') reads it (the keys read without being named: state_dict, model, model_state_dict, "
      "net, state_dict_ema, model_ema)")],
)
def test_not_a_state_dict_says_what_is_in_it(tmp_path: Path, content: object, what: str) -> None:
    path = tmp_path / "x.pt"
    torch.save(content, path)
    assert _checkpoint_error(path) == (f"checkpoint {str(path)!r} is not a state_dict "
                                       f"(a mapping of names to tensors): {what}")


def test_mismatched_checkpoint_loads_nothing(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(2, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_into(model, {"0.weight": torch.zeros(4, 2)}, label="ck.pt")
    assert str(info.value) == (
        "ck.pt does not fit Sequential, nothing was loaded: missing keys (1): 0.bias | "
        "shape mismatches (1): 0.weight: expected (3, 2), got (4, 2)"
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_another_dtype_loads_with_a_warning_naming_the_cast() -> None:
    model = nn.Linear(2, 1)
    half = {k: v.half() for k, v in nn.Linear(2, 1).state_dict().items()}
    with pytest.warns(UserWarning) as record:
        load_into(model, half, label="half.pt")
    assert str(record[0].message) == ("half.pt: 2 tensor(s) cast to the model's dtype on loading: "
                                      "bias: float16 -> float32; weight: float16 -> float32")
    assert model.weight.dtype == torch.float32 and torch.equal(model.weight, half["weight"].float())


def test_library_reads_checkpoints_only_through_load_checkpoint() -> None:
    # every torch.load in the library sits in conformance/loading.py with weights_only=True
    calls: list[str] = []
    for path in sorted([*(ROOT / "cnn_models").rglob("*.py"), *(ROOT / "conformance").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}{'' if safe else ' (without weights_only=True)'}")
    assert [c.split(":")[0] for c in calls] == ["conformance/loading.py"], calls
    assert "without" not in calls[0], calls
