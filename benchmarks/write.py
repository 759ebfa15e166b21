"""Write a run's results: ``README.md`` (what was measured, in words and tables) beside a
``results/`` folder with ``latest.json`` (every number, for ``--merge`` and ``--render``) and
the figures (``benchmarks.plots``)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .plots import write_figures
from .results import Section, render_markdown

__all__ = ["INTRO", "RESULTS", "write_results"]

RESULTS = "results"  # the folder under the output directory that holds latest.json and the figures

INTRO = """# Benchmarks

Speed and memory of this project's oracles and gate, side by side with the tools a user
would pick instead (torchsummary, torchinfo, fvcore, ptflops, thop, `FlopCounterMode` on CPU
tensors). This file is written by the run itself:

```bash
pip install -c constraints.txt -e '.[test,bench]'
python -m benchmarks                      # summary, flops, params, gradflow (about 10 minutes)
python -m benchmarks --gate --suite       # also every gate, check --all and the test suite
python -m benchmarks --only gate --merge  # one comparison, the others kept from the last run
python -m benchmarks --render             # rewrite this file from results/latest.json
```

How it measures: one worker process per (comparison, tool) imports that tool once (import
time and RSS are reported apart), then runs each measurement in a fresh fork, so every
number is a cold first call with its own peak RSS; "warm" is the median of later calls.
Tools take turns on the same model in each repetition; a speed verdict is the median over
repetitions of that repetition's speedup. The targets are judged end to end, from the model
factory to the answer: a CPU peer pays for building its model, ours for its meta build, whose
time alone is shown as the row "bound: meta build alone" (the ceiling of any meta-device
path). Command-line runs (the gate, the suite, gradflow) are whole processes, imports
included. Targets are evaluated and reported, never asserted: timings are facts of one
machine on one day, stamped below with its load and CPU steal time.
"""


def write_results(out_dir: Path, sections: list[Section], machine: dict[str, Any], command: str,
                  options: dict[str, Any]) -> dict[str, Path]:
    """Write ``results/latest.json``, the figures and ``README.md`` under ``out_dir``; return their
    paths (keys ``json``, ``md`` and each figure's file name)."""
    results = out_dir / RESULTS
    results.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": 1,
        "command": command,
        "options": options,
        "machine": machine,
        "sections": [asdict(s) for s in sections],
    }
    paths = {"json": results / "latest.json", "md": out_dir / "README.md"}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n")
    figures = write_figures(results, sections)
    for key, figure in figures.items():
        if not figure.startswith("error: "):
            paths[figure] = results / figure
        else:
            print(f"benchmarks: the figure of section {key!r} was not drawn: {figure.removeprefix('error: ')}",
                  file=sys.stderr)
    linked = {k: f if f.startswith("error: ") else f"{RESULTS}/{f}" for k, f in figures.items()}
    paths["md"].write_text(INTRO + "\n" + render_markdown(sections, machine, command, linked) + "\n")
    return paths
