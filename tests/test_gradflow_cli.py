"""``cnn-conformance gradflow`` through its ``add_arguments`` / ``run`` contract.

Bad input: one line on stderr naming the option, exit code 2, no traceback. A small real run
writes measurements.csv (one row per setting, seed and probed layer), summary.json (the keys
its docstring documents), the figures and report.md.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from _shared import run_gradflow

BAD = [
    (["--depths", "0"], "--depths"),
    (["--depths", "4,x"], "--depths"),
    (["--depths", "4,,8"], "--depths"),
    (["--width", "-3"], "--width"),
    (["--width", "1.5"], "--width"),
    (["--seeds", "0"], "--seeds"),
    (["--inits", "he_fan_in,lecun"], "--inits"),
    (["--residual", "maybe"], "--residual"),
    (["--bn", "yes"], "--bn"),
    (["--dtype", "float16"], "--dtype"),
    (["--padding", "reflect"], "--padding"),
    (["--device", "nonsense"], "--device"),
]


@pytest.mark.parametrize("argv,option", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_gives_one_line_and_exit_2(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_gradflow([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_gradflow(["--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--device" in err and "cuda" in err


SUMMARY_KEYS = {
    "depth", "width", "init", "residual", "bn", "measured_slope_forward",
    "predicted_slope_forward", "measured_slope_backward", "predicted_slope_backward",
    "first_to_last_grad_ratio", "verdict",
}


def test_small_run_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--depths", "3", "--inits", "he_fan_in,naive", "--residual", "off,on", "--bn", "off,on",
        "--width", "32", "--seeds", "5", "--batch", "8", "--sweep-depths", "4,8",
        "--sweep-width", "8", "--no-cifar", "--no-progress", "--out", str(tmp_path),
    ]
    assert run_gradflow(argv) == 0, capsys.readouterr()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary) == 8  # 2 inits x 2 residual x 2 bn
    for row in summary:
        assert SUMMARY_KEYS <= row.keys()
        assert row["verdict"] == "agrees"
    with (tmp_path / "measurements.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # plain: 3 probed conv outputs; residual: x_0 .. x_3; 4 settings each, 5 seeds
    assert len(rows) == (4 * 3 + 4 * 4) * 5
    sweep = json.loads((tmp_path / "depth_sweep.json").read_text())
    assert len(sweep["experiment_nets"]) == 4 * 2  # 4 net types x 2 depths
    for png in ("profiles.png", "he_vs_naive.png", "plain_vs_residual.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "![He vs naive](he_vs_naive.png)" in report
    assert "![Plain vs residual](plain_vs_residual.png)" in report
    assert "### 1. How far does the init's scale carry through a deep net? (He et al. 2015)" in report
    assert "### 2. Does an identity shortcut keep the gradient from vanishing? (He et al. 2016)" in report
    assert "Naive N(0,1) init makes deep nets" not in report  # the tutorial never says it


# --- --model / --candidate / --train ------------------------------------------------------------

RAISES = '''
import torch.nn as nn


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        raise RuntimeError("the forward of Broken is not written yet")


def build():
    return Broken()
'''

NO_CONV = '''
import torch.nn as nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
'''


def _candidate(tmp_path: Path, source: str) -> str:
    path = tmp_path / "cand.py"
    path.write_text(source)
    return f"{path}:build"


BAD_MODEL_INPUT = [
    (lambda t: ["--candidate", _candidate(t, RAISES)], ["forward", "not written yet"]),
    (lambda t: ["--candidate", _candidate(t, NO_CONV)], ["no Conv2d"]),
    (lambda t: ["--train", "--model", "resnet18"], ["--train", "resnet18", "CIFAR family"]),
    (lambda t: ["--train", "--candidate", _candidate(t, NO_CONV)], ["--train", "candidate"]),
    (lambda t: ["--model", "cifar_resnet20", "--zero-init-residual"], ["--zero-init-residual", "cifar_resnet20"]),
    (lambda t: ["--model", "resnet18", "--no-shortcuts"], ["--no-shortcuts", "plain twin"]),
    (lambda t: ["--model", "resnet18", "--inits", "own,lecun"], ["--inits", "lecun"]),
    (lambda t: ["--model", "resnet_18"], ["--model", "resnet_18"]),
    (lambda t: ["--model", "resnet18", "--input-size", "3", "0", "32"], ["--input-size"]),
    (lambda t: ["--zero-init-residual"], ["--zero-init-residual", "--model"]),
    (lambda t: ["--train", "--lr", "-0.1"], ["--lr"]),
    (lambda t: ["--train", "--size", "2"], ["--size"]),
]


@pytest.mark.parametrize("make,words", BAD_MODEL_INPUT, ids=[" ".join(w) for _, w in BAD_MODEL_INPUT])
def test_bad_model_or_train_input_gives_one_line_and_exit_2(
    make: object, words: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = make(tmp_path)  # type: ignore[operator]
    assert run_gradflow([*argv, "--no-progress", "--seeds", "2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("cnn-conformance gradflow: error: ") and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_model_run_writes_profiles_plot_and_sentences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model", "cifar_resnet20", "--no-shortcuts", "--inits", "own,naive", "--input-size", "3", "16", "16",
            "--seeds", "2", "--batch", "4", "--no-progress", "--out", str(tmp_path)]
    assert run_gradflow(argv) == 0, capsys.readouterr()
    data = json.loads((tmp_path / "model_profiles.json").read_text())
    labels = [m["model"] for m in data["models"]]
    assert labels == ["cifar_resnet20", "cifar_resnet20 [init naive]",
                      "cifar_plain20 (cifar_resnet20 with shortcuts removed)"]
    for m in data["models"]:
        assert len(m["layers"]) == 20 and m["sentence"].startswith(f"**{m['model']}**")
    with (tmp_path / "model_profiles.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 3 * 2 * 20  # variants x seeds x layers
    assert (tmp_path / "profile_cifar_resnet20.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "![cifar_resnet20](profile_cifar_resnet20.png)" in report and "shortcuts removed" in report


def test_train_run_writes_losses_norms_and_the_ordering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--train", "--model", "cifar_plain20,cifar_resnet20", "--steps", "3", "--seeds", "2", "--batch", "8",
            "--examples", "16", "--no-progress", "--out", str(tmp_path)]
    assert run_gradflow(argv) == 0, capsys.readouterr()
    with (tmp_path / "training.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 2 * 3  # models x seeds x steps
    with (tmp_path / "grad_norms.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 2 * 3 * 20  # ... x (19 convs + fc)
    data = json.loads((tmp_path / "training.json").read_text())
    assert data["config"]["momentum"] == 0.9 and data["config"]["weight_decay"] == 1e-4  # He et al. 2016, 4.2
    assert set(data["final_loss"]) == {"cifar_plain20", "cifar_resnet20"} and data["comparisons"] == []
    for png in ("loss_vs_step.png", "grad_norms.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Result" in (tmp_path / "report.md").read_text()
