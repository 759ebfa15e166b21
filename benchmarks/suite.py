"""Comparison 4b: the test suite, under ``pytest -n auto`` and serially, and its integration tests.

The runs are whole processes from the repository root with the project's own pytest
configuration (and the hypothesis profile of ``CNN_CONFORMANCE_PROFILE``, ``dev`` unless
set): its default selection leaves out the tests marked ``integration`` (they start fresh
interpreters importing torch), which a third run, ``pytest -n auto -m integration``, times
as CI runs them. Memory: ``ru_maxrss`` of pytest (the largest of it and the processes it waited for), and,
sampled every 0.5 s, every descendant's peak (``VmHWM`` where /proc has it, so a peak between
two samples is seen at the next one; one reached after a process's last sample is not): the
worker target is judged on the larger of the two. Runs once each (minutes); only with
``--suite`` or ``--only suite``.

Targets: ``pytest -n auto`` (the default selection) under 3 minutes, with no worker above 4 GB RSS.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from ._harness import Options
from ._proc import run_command
from .results import Section, Target

TARGET_S = 180.0
TARGET_WORKER_MB = 4096.0
COLUMNS = ["run", "exit", "wall s", "result", "pytest peak RSS MB", "largest sampled MB", "largest process MB",
           "descendants sampled"]
QUICK_ARGS = ["tests/test_layer_table.py", "tests/test_summary_table.py"]
QUICK_INTEGRATION_ARGS = ["tests/test_models_command.py"]
DURATIONS = 15  # pytest's slowest-tests list: where the time goes when the target is missed


def _result(output: str) -> str:
    lines = [line.strip("= ").strip() for line in output.strip().splitlines()
             if re.search(r"\d+ (passed|failed|error)", line)]
    return lines[-1] if lines else (output.strip().splitlines() or ["-"])[-1][:100]


def _durations(output: str) -> list[str]:
    """pytest's ``--durations`` lines: ``12.34s call tests/test_x.py::test_y``."""
    return [line.strip() for line in output.splitlines() if re.match(r"\s*\d+\.\d+s (call|setup|teardown) ", line)]


def _run(label: str, args: list[str], opts: Options) -> tuple[dict[str, Any], dict[str, Any]]:
    opts.log(f"suite: pytest {' '.join(args)}")
    res = run_command([sys.executable, "-m", "pytest", *args], timeout=max(opts.timeout, 7200))
    workers = {k: v for k, v in res.tree_peak_mb.items() if not k.startswith("root ")}
    sampled = max(workers.values()) if workers else None
    # ru_maxrss covers every process pytest waited for, its workers included, so a worker's
    # peak reached after its last sample (just before it exits) still counts
    peaks = [v for v in (sampled, res.maxrss_mb) if v]
    largest = max(peaks) if peaks else None
    row = {"run": label, "exit": res.returncode, "wall s": res.wall_s, "result": _result(res.output_tail),
           "pytest peak RSS MB": res.maxrss_mb, "largest sampled MB": sampled, "largest process MB": largest,
           "descendants sampled": len(workers)}
    raw = {"argv": res.argv, "returncode": res.returncode, "wall_s": res.wall_s, "maxrss_mb": res.maxrss_mb,
           "peaks_mb": res.tree_peak_mb, "slowest": _durations(res.output_tail), "tail": res.output_tail[-2500:]}
    return row, raw


def run(opts: Options) -> Section:
    extra = QUICK_ARGS if opts.quick else []
    base = ["-q", "-p", "no:cacheprovider", f"--durations={DURATIONS}"]
    common = [*base, *extra]
    profile = os.environ.get("CNN_CONFORMANCE_PROFILE") or "dev"
    par_row, par_raw = _run(f"pytest -n auto (hypothesis profile {profile})", ["-n", "auto", *common], opts)
    ser_row, ser_raw = _run(f"pytest serial (hypothesis profile {profile})", ["-n", "0", *common], opts)
    ser_row["descendants sampled"] = None
    integration = QUICK_INTEGRATION_ARGS if opts.quick else []
    int_row, int_raw = _run(f"pytest -n auto -m integration (hypothesis profile {profile})",
                            ["-n", "auto", "-m", "integration", *base, *integration], opts)
    scope = f" ({' '.join(extra)} only: --quick)" if extra else ""
    targets = [
        Target(f"suite under pytest -n auto under {TARGET_S / 60:.0f} min{scope}",
               f"{par_row['wall s']:.0f} s ({par_row['result']}); serial {ser_row['wall s']:.0f} s",
               par_row["wall s"] < TARGET_S and par_row["exit"] == 0),
        Target(f"no xdist worker above {TARGET_WORKER_MB / 1024:.0f} GB RSS{scope}",
               (f"largest process of the run {par_row['largest process MB']:.0f} MiB (largest sampled descendant "
                f"{par_row['largest sampled MB'] or 0:.0f} MiB)")
               if par_row["largest process MB"] else "no process measured",
               None if par_row["largest process MB"] is None else par_row["largest process MB"] <= TARGET_WORKER_MB),
    ]
    notes = ["whole processes from the repository root; peak RSS per descendant (xdist workers and the subprocesses "
             "that tests start) from /proc VmHWM, sampled every 0.5 s; largest process = the larger of that "
             "and pytest's ru_maxrss, which covers every process it waited for "
             "(a worker's peak after its last sample included); "
             "the worker target is judged on it. MB here are MiB; the 4 GB target is 4096 MiB. "
             "The serial run is `pytest -n 0` (xdist off, one process). Both leave out the tests marked "
             "integration (pyproject's addopts); the third run is those alone, as CI runs them after the rest, "
             "and is not part of the 3-minute target.",
             "heap: under -n auto, tests/conftest.py (conformance/heap.py) starts the xdist workers with glibc "
             "keeping freed large blocks in the heap "
             "(when the machine has 6 GiB of RAM per worker; CNN_CONFORMANCE_HEAP=default turns it off); "
             "the serial run keeps glibc's defaults, so the two times differ by that as well as by the parallelism."]
    for label, raw in (("-n auto", par_raw), ("serial", ser_raw), ("-m integration", int_raw)):
        if raw["slowest"]:
            notes.append(f"slowest under {label} (pytest --durations): " + "; ".join(raw["slowest"][:6]))
    return Section("suite", "4b. The test suite" + scope, COLUMNS, [par_row, ser_row, int_row], notes, targets,
                   raw={"parallel": par_raw, "serial": ser_raw, "integration": int_raw})
