"""``cnn-conformance gradflow`` through its ``add_arguments`` / ``run`` contract.

Bad input: one line on stderr naming the option, exit code 2, no traceback. A small real run
writes measurements.csv (one row per setting, seed and probed layer), summary.json (the keys
the issue lists), the figures and report.md.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
import torch

from conformance.gradflow.cli import add_arguments, run


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnn-conformance gradflow")
    add_arguments(parser)
    return run(parser.parse_args(argv))


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
    assert _run([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert _run(["--device", "cuda", "--out", str(tmp_path)]) == 2
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
    assert _run(argv) == 0, capsys.readouterr()
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
    assert "Naive N(0,1) init" in report and "f'(x)+1" in report
