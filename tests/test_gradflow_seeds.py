"""``gradflow --seeds``: fewer than 2 seeds is a usage error, 2 is a real run.

The verdicts compare each measured slope with theory within t * standard error over seeds;
one seed has no standard error, so ``--seeds 1`` would make every setting "disagree". It is
refused like ``--seeds 0``: one line on stderr naming the option, exit code 2, nothing
written. Oracle for the 2-seed run: He (fan-in) init keeps the forward second moment of a
plain ReLU net constant with depth (He et al. 2015, eq. 10), so that setting agrees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _shared import run_gradflow

from conformance.cli import main

SMALL = ["--depths", "4", "--inits", "he_fan_in", "--residual", "off", "--bn", "off", "--width", "16",
         "--batch", "8", "--sweep-depths", "none", "--no-cifar", "--no-progress"]



@pytest.mark.parametrize("seeds", ["1", " 1 ", "0", "-2"])
def test_fewer_than_two_seeds_is_a_usage_error(seeds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_gradflow([*SMALL, "--seeds", seeds, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cnn-conformance gradflow: error: --seeds: "), lines[0]
    assert captured.out == ""
    assert not out.exists()  # nothing ran, nothing was written


def test_one_seed_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradflow", *SMALL, "--seeds", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--seeds: 1" in err and "at least 2" in err and "standard error" in err


def test_two_seeds_run_and_agree_with_theory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_gradflow([*SMALL, "--seeds", "2", "--out", str(tmp_path)]) == 0, capsys.readouterr()
    (row,) = json.loads((tmp_path / "summary.json").read_text())
    assert (row["init"], row["residual"], row["bn"], row["depth"]) == ("he_fan_in", "off", False, 4)
    assert row["verdict"] == "agrees"
