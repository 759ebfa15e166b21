"""Comparison 4a: the gate, ``cnn-conformance check NAME`` per architecture and ``check --all``.

Each command is a whole process (``python -m conformance check ...``), as a user or CI runs
it: wall time and peak RSS include Python's start and every import. Per architecture, the
check's own time (printed by the command, "ok (12.3 s)") is recorded beside the wall time,
so the difference is the process's start-up and imports. Runs once per command (these take
minutes); only with ``--gate`` or ``--only gate``. One torch thread per command
(``CNN_CONFORMANCE_THREADS=1``), as in every other measurement here.

Target: ``check --all`` under 90 s.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._harness import Options
from ._proc import child_env, run_command
from .results import Section, Target

TARGET_ALL_S = 90.0
QUICK_MODELS = ("resnet18", "mobilenet_v2")
COLUMNS = ["command", "exit", "wall s", "check s", "trace s", "align s", "init s", "numerics s", "peak RSS MB",
           "verdict"]
# the pipeline's stages as the report's JSON times them (Report.timings): where a check's time goes
STAGES = {"trace s": "trace", "align s": "align", "init s": "init", "numerics s": "numerics"}
# One torch thread, as everywhere else in these benchmarks. It is also the CLI's own default;
# set here so that a CNN_CONFORMANCE_THREADS in the caller's environment cannot change what is
# measured (on this shared 2-core machine two threads under load made `check mobilenet_v2` take
# 95-155 s in some runs against 6 s with one: OpenMP workers spinning for a core another
# process holds).
ENV = child_env({"CNN_CONFORMANCE_THREADS": "1"})


def _check_times(output: str) -> dict[str, float]:
    """``[3/38] resnet18 ... ok (4.2 s)`` lines -> {name: seconds}."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"\] (\S+) \.\.\. \w+ \(([\d.]+) s\)", output)}


def _verdict(output: str) -> str:
    m = re.search(r"(\d+)/(\d+) conformant", output)
    return f"{m.group(1)}/{m.group(2)} conformant" if m else (output.strip().splitlines() or ["-"])[-1][:80]


def _stages(path: Path) -> dict[str, float | None]:
    """The stage columns from ``check NAME --json``'s report (empty cells when it wrote none)."""
    try:
        timings = json.loads(path.read_text())[0].get("timings_s", {})
    except (OSError, ValueError, IndexError, KeyError, AttributeError):
        timings = {}
    return {column: timings.get(stage) for column, stage in STAGES.items()}


def _models(opts: Options) -> tuple[str, ...]:
    if opts.quick:
        return QUICK_MODELS
    import cnn_models

    return tuple(cnn_models.list_models())


def run(opts: Options) -> Section:
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {"commands": []}
    for name in _models(opts):
        opts.log(f"gate: cnn-conformance check {name}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.json"
            res = run_command([sys.executable, "-m", "conformance", "check", name, "--json", str(out)],
                              timeout=opts.timeout, env=ENV)
            stages = _stages(out)
        rows.append({"command": f"check {name}", "exit": res.returncode, "wall s": res.wall_s,
                     "check s": _check_times(res.output_tail).get(name), **stages, "peak RSS MB": res.maxrss_mb,
                     "verdict": _verdict(res.output_tail)})
        raw["commands"].append({"argv": res.argv, "returncode": res.returncode, "wall_s": res.wall_s,
                                "maxrss_mb": res.maxrss_mb, "tail": res.output_tail[-1500:]})
    targets = []
    all_note: str | None = None
    if not opts.quick:
        opts.log("gate: cnn-conformance check --all")
        res = run_command([sys.executable, "-m", "conformance", "check", "--all"], timeout=max(opts.timeout, 3600),
                          env=ENV)
        times = _check_times(res.output_tail)
        # the checks run in parallel processes: their own times add up to more than the wall time
        rows.append({"command": "check --all", "exit": res.returncode, "wall s": res.wall_s,
                     "check s": None, **dict.fromkeys(STAGES), "peak RSS MB": res.maxrss_mb,
                     "verdict": _verdict(res.output_tail)})
        raw["commands"].append({"argv": res.argv, "returncode": res.returncode, "wall_s": res.wall_s,
                                "maxrss_mb": res.maxrss_mb, "per_arch_s": times, "tail": res.output_tail[-1500:]})
        targets.append(Target(f"check --all under {TARGET_ALL_S:.0f} s, exit 0",
                              f"{res.wall_s:.0f} s, exit {res.returncode}, peak RSS {res.maxrss_mb:.0f} MB",
                              res.wall_s < TARGET_ALL_S and res.returncode == 0))
        if times:
            slow = sorted(times.items(), key=lambda kv: -kv[1])[:5]
            raw["slowest"] = slow
            all_note = (f"check --all: {len(times)} checks in parallel processes, "
                        f"{sum(times.values()):.0f} s of check time "
                        f"in all within {res.wall_s:.0f} s of wall time; slowest "
                        + ", ".join(f"{n} {t:.1f} s" for n, t in slow))
    else:
        targets.append(Target(f"check --all under {TARGET_ALL_S:.0f} s", "not run with --quick", None))
    per = [r for r in rows if r["command"] != "check --all" and r["wall s"] is not None]
    notes = [
        "each command is a whole process: wall time and peak RSS (ru_maxrss) include Python start-up and all imports; "
        "check s = the check's own time as the command prints it; trace / align / init / numerics s = the pipeline's "
        "stages as its JSON report times them (trace: both models on meta; align: pairing the traces). "
        "CNN_CONFORMANCE_THREADS=1 (one torch thread).",
    ]
    if per:
        total = sum(r["wall s"] for r in per)
        worst = max(per, key=lambda r: r["wall s"])
        notes.append(f"one process per architecture: {len(per)} commands, {total:.0f} s in all; "
                     f"slowest {worst['command']} "
                     f"{worst['wall s']:.0f} s; largest peak RSS {max(r['peak RSS MB'] for r in per):.0f} MB")
    if all_note:
        notes.append(all_note)
    return Section("gate", "4a. The gate: cnn-conformance check", COLUMNS, rows, notes, targets, raw=raw)
