"""conformance/heap.py: when worker processes start with large freed blocks kept in the heap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conformance import heap
from conformance.heap import MIN_GIB_PER_WORKER, SETTINGS, decide


def test_an_xdist_run_with_enough_ram_sets_both_variables() -> None:
    env: dict[str, str] = {}
    said = decide(2, env, ram=2 * MIN_GIB_PER_WORKER, platform="linux")
    assert env == SETTINGS
    assert said == ", ".join(f"{k}={v}" for k, v in SETTINGS.items())


def test_values_already_in_the_environment_win() -> None:
    env = {"MALLOC_MMAP_THRESHOLD_": "65536"}
    decide(2, env, ram=64.0, platform="linux")
    assert env["MALLOC_MMAP_THRESHOLD_"] == "65536"
    assert env["MALLOC_TRIM_THRESHOLD_"] == SETTINGS["MALLOC_TRIM_THRESHOLD_"]


@pytest.mark.parametrize(
    ("workers", "env", "ram", "platform", "reason"),
    [
        (0, {}, 64.0, "linux", "serial run"),
        (2, {"CNN_CONFORMANCE_HEAP": "default"}, 64.0, "linux", "CNN_CONFORMANCE_HEAP=default"),
        (2, {}, 64.0, "darwin", "not Linux"),
        (4, {}, 4 * MIN_GIB_PER_WORKER - 0.5, "linux", "5.9 GiB of RAM per worker"),
        (2, {}, None, "linux", "unknown RAM"),
    ],
)
def test_left_alone_and_says_why(workers: int, env: dict[str, str], ram: float | None, platform: str,
                                 reason: str) -> None:
    before = dict(env)
    said = decide(workers, env, ram, platform)
    assert env == before
    assert reason in said


def test_a_process_started_inside_worker_environment_has_the_setting_and_the_parent_gets_its_own_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [*SETTINGS, "CNN_CONFORMANCE_HEAP"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(heap, "ram_gib", lambda: 4 * MIN_GIB_PER_WORKER)
    before = dict(os.environ)
    read = [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"]
    with heap.worker_environment(2) as said:
        seen = subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip()
    assert seen == SETTINGS["MALLOC_MMAP_THRESHOLD_"]
    assert said.startswith("MALLOC_MMAP_THRESHOLD_=")
    assert dict(os.environ) == before
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "None"
