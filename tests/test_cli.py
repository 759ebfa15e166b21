"""The command line: exit codes 0/1/2, one-line errors, JSON reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conformance.cli import main

CANDIDATES = '''
import torch
import torch.nn as nn
import torchvision

def good():
    return torchvision.models.resnet18()

def wrong_classes():
    return torchvision.models.resnet18(num_classes=10)

def raises():
    raise RuntimeError("boom in factory")

def not_a_module():
    return "resnet"

def needs_args(depth):
    return torchvision.models.resnet18()

class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        return self.fc(x.mean((2, 3))) * float("nan")

def nan_net():
    return NaNNet()
'''


@pytest.fixture
def cands(tmp_path: Path) -> Path:
    path = tmp_path / "cands.py"
    path.write_text(CANDIDATES)
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    assert "Traceback" not in "\n".join(err)
    assert all(n in err[-1] for n in needles), err[-1]


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("{d}/nope.py:good", "does not exist"),
        ("{f}:raises", "factory raised RuntimeError: boom in factory"),
        ("{f}:not_a_module", "returned str, not a torch.nn.Module"),
        ("{f}:needs_args", "needs arguments (depth)"),
        ("{f}:absent", "has no attribute 'absent'"),
    ],
)
def test_load_errors_exit_2_with_one_line(cands: Path, capsys: pytest.CaptureFixture[str], target: str,
                                          needle: str) -> None:
    arg = target.format(d=cands.parent, f=cands)
    assert main(["check", "--candidate", arg, "--reference", "torchvision:resnet18"]) == 2
    _one_line_error(capsys, needle)


def test_unknown_reference_and_name_exit_2(cands: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--candidate", f"{cands}:good", "--reference", "torchvision:resnet181"]) == 2
    _one_line_error(capsys, "torchvision has no model 'resnet181'", "resnet18")
    assert main(["check", "resnet5"]) == 2
    _one_line_error(capsys, "unknown architecture 'resnet5'")
    assert main(["check", "--candidate", f"{cands}:good"]) == 2
    _one_line_error(capsys, "needs --reference")


def test_usage_error_from_argparse_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--no-such-flag"])
    assert info.value.code == 2


def test_wrong_class_count_fails_with_named_layer(cands: Path, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(["check", "--candidate", f"{cands}:wrong_classes", "--reference", "torchvision:resnet18",
                 "--json", str(out)])
    assert code == 1
    text = capsys.readouterr().out
    assert "expected shape (N, 1000)" in text and "got (N, 10)" in text
    assert "fc.weight: expected shape (1000, 512), got (10, 512)" in text
    report = json.loads(out.read_text())
    assert report[0]["conformant"] is False
    assert {c["name"] for c in report[0]["checks"]} >= {"params", "state_dict", "output_shape"}


def test_nan_forward_is_a_failed_check(cands: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--candidate", f"{cands}:nan_net", "--reference", "torchvision:resnet18"])
    assert code == 1
    assert "non-finite" in capsys.readouterr().out


def test_faithful_candidate_passes(cands: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "ok.json"
    assert main(["check", "--candidate", f"{cands}:good", "--reference", "torchvision:resnet18", "--spec", "resnet18",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())[0]
    assert report["conformant"] is True
    names = {c["name"] for c in report["checks"]}
    assert {"params", "state_dict", "alignment", "closed_form_layers", "macs", "init", "eval_output", "train_output",
            "input_grad", "param_grads", "bn_running_stats", "finite_grads"} <= names


def test_builtin_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "cifar_resnet20", "mobilenet_v2", "--jobs", "1"]) == 0
    assert "2/2 conformant" in capsys.readouterr().out


@pytest.mark.integration
def test_parallel_check_keeps_order_reports_progress_and_sets_the_heap_only_while_starting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance import heap

    for key in heap.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("CNN_CONFORMANCE_HEAP", raising=False)
    monkeypatch.setattr(heap, "ram_gib", lambda: 4 * heap.MIN_GIB_PER_WORKER)
    before = dict(os.environ)
    assert main(["check", "cifar_plain20", "cifar_resnet20", "--jobs", "2"]) == 0
    captured = capsys.readouterr()
    assert "in 2 processes" in captured.err
    assert sorted(line.split()[1] for line in captured.err.splitlines()
                  if line.startswith("[")) == ["cifar_plain20", "cifar_resnet20"]
    rows = [line.split()[0] for line in captured.out.splitlines() if line.startswith("cifar_")]
    assert rows == ["cifar_plain20", "cifar_resnet20"]  # the table keeps the order asked for
    # the processes start with the heap setting (tests/test_heap.py), which is then removed again
    assert f"heap: {', '.join(f'{k}={v}' for k, v in heap.SETTINGS.items())}" in captured.err
    assert dict(os.environ) == before


def test_parallel_check_starts_the_largest_gates_first() -> None:
    from conformance.commands.check import _expected_cost

    # VGG16 138M, ResNet18 11.7M (torchvision meta), CIFAR ResNet-20 0.27M (He et al. 2016, Table 6)
    names = ["cifar_resnet20", "vgg16", "resnet18"]
    assert sorted(names, key=_expected_cost, reverse=True) == ["vgg16", "resnet18", "cifar_resnet20"]


def test_negative_jobs_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "cifar_plain20", "--jobs", "-1"]) == 2
    _one_line_error(capsys, "--jobs")
