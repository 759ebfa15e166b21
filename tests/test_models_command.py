"""``cnn-conformance models``: a broken spec, a broken plugin and a glob that matches nothing.

A spec whose builder raises gets an error row naming it and the exception, and the listing
goes on (exit 1); a third-party entry point that failed to load is printed on stderr (exit 2);
``--arch`` matching no registered name is a usage error (exit 2), never an empty listing.

Throwaway specs are registered for one test and unregistered afterwards (each xdist worker
has its own registry). The broken plugin is a real entry point in a throwaway site directory
(tests/_site.py), seen only by a subprocess. Oracles: 39 parameters of ``Linear(12, 3)`` by
hand (12 * 3 + 3); the error texts are the ones the test's own builders and plugin raise.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch.nn as nn
from _shared import tiny_spec
from _site import PYTHON, add_distribution, env_with

from cnn_models import ArchSpec, Expected
from cnn_models._registry import register_model, unregister_model
from conformance.cli import main

PREFIX = "zz_models_cmd_"


def _raises(*, num_classes: int = 3) -> nn.Module:
    raise RuntimeError("boom in models builder")


@pytest.fixture
def registered() -> Iterator[Callable[[ArchSpec], None]]:
    """Register throwaway specs for one test; unregistered afterwards, whatever happens."""
    names: list[str] = []

    def add(spec: ArchSpec) -> None:
        register_model(spec)
        names.append(spec.name)

    yield add
    for name in names:
        unregister_model(name)


def _rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(PREFIX)}


def test_a_builder_that_raises_is_an_error_row_and_the_rest_is_listed(
    registered: Callable[[ArchSpec], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # a_broken sorts first: the listing must go on after it
    registered(tiny_spec(f"{PREFIX}a_broken", builder=_raises))
    registered(tiny_spec(f"{PREFIX}b_fine"))
    wrong = {"params": Expected(40, "planted wrong: 12 * 3 + 3 is 39")}
    registered(tiny_spec(f"{PREFIX}c_wrong_count", expected=wrong))
    assert main(["models", "--arch", f"{PREFIX}*"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    broken = next(line for line in out.splitlines() if line.startswith(f"{PREFIX}a_broken"))
    assert f"ERROR spec '{PREFIX}a_broken'" in broken
    assert "RuntimeError: boom in models builder" in broken
    rows = _rows(out)
    assert rows[f"{PREFIX}b_fine"][1:4] == ["39", "39", "ok"]
    assert rows[f"{PREFIX}c_wrong_count"][1:4] == ["39", "40", "FAIL"]
    assert out.splitlines()[-1] == "1/3 match their oracle"


def test_all_matching_exits_0(registered: Callable[[ArchSpec], None], capsys: pytest.CaptureFixture[str]) -> None:
    registered(tiny_spec(f"{PREFIX}only"))
    assert main(["models", "--arch", f"{PREFIX}only"]) == 0
    out = capsys.readouterr().out
    assert _rows(out)[f"{PREFIX}only"][1:4] == ["39", "39", "ok"]
    assert out.splitlines()[-1] == "1/1 match their oracle"


@pytest.mark.parametrize("glob", ["nomatch*", "resnet5"])
def test_a_glob_that_matches_nothing_is_a_usage_error(glob: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--arch", glob]) == 2
    out, err = capsys.readouterr()
    assert "match their oracle" not in out
    assert err.startswith(f"cnn-conformance models: error: --arch {glob!r} matches no registered architecture")
    assert len(err.strip().splitlines()) == 1


def test_close_matches_are_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--arch", "resnet5"]) == 2
    assert "close matches: resnet50" in capsys.readouterr().err


@pytest.mark.integration
def test_a_plugin_that_failed_to_load_is_printed_and_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "models_cmd_broken_plugin.py").write_text("raise ImportError('needs torch>=99')\n")
    add_distribution(tmp_path, "models-cmd-broken",
                     {"cnn_conformance.architectures": {"models_cmd_broken": "models_cmd_broken_plugin:specs"}})
    proc = subprocess.run(
        [PYTHON, "-m", "conformance", "models", "--arch", "cifar_resnet20"],
        env=env_with(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "'models_cmd_broken'" in line]
    assert errors, proc.stderr
    assert all("ImportError: needs torch>=99" in line for line in errors), errors
    assert any("architecture plugin not loaded" in line for line in errors), errors
    # the built-in architectures are still listed
    assert any(line.split()[:1] == ["cifar_resnet20"] and "ok" in line.split()
               for line in proc.stdout.splitlines()), proc.stdout
