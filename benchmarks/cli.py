"""The entry point: parse options, run the selected comparisons, print and write the results.

    python -m benchmarks                     # summary, flops, params, gradflow (3 repetitions)
    python -m benchmarks --quick             # 1 repetition, 2-4 models, short sweeps
    python -m benchmarks --only summary,flops --reps 5
    python -m benchmarks --gate --suite      # also the gate (check each, check --all) and the suite

Exit code 0 when every comparison ran (whatever the targets say: they are reported, not
asserted), 1 when a comparison could not run at all, 2 on bad options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from . import COMPARISONS, DEFAULT, MODULES
from ._harness import Options
from ._proc import REPO, cpu_steal_s, machine
from .results import Section, Target, load_sections, merge_sections, render_text
from .write import RESULTS, write_results

DEFAULT_OUT = REPO / "benchmarks"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="1 repetition, 2-4 models per comparison, short sweeps: to validate the harness")
    p.add_argument("--only", metavar="NAME[,NAME]",
                   help=f"comma list from {', '.join(COMPARISONS)} (default: summary, flops, params, gradflow; "
                        "gate and suite with --gate / --suite)")
    p.add_argument("--reps", type=int, default=None, metavar="N",
                   help="repetitions of each measurement (default 3; 1 with --quick)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"where README.md and {RESULTS}/ (latest.json, figures) go "
                        f"(default {DEFAULT_OUT.relative_to(REPO)})")
    p.add_argument("--gate", action="store_true",
                   help="also time `cnn-conformance check NAME` for every architecture and `check --all` (long)")
    p.add_argument("--suite", action="store_true",
                   help="also run the test suite under `pytest -n auto` and serially (long)")
    p.add_argument("--timeout", type=int, default=900, metavar="S", help="per measurement (default 900)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other sections of an earlier latest.json in DIR, replacing only those run now")
    p.add_argument("--render", action="store_true",
                   help="measure nothing: rewrite README.md and the figures from DIR's latest.json")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        p.error(f"--reps: expected a positive integer, got {args.reps}")
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in COMPARISONS]
        if unknown or not names:
            p.error(f"--only: unknown comparison {', '.join(unknown) or repr(args.only)}; "
                    f"expected names from {', '.join(COMPARISONS)}")
    else:
        wanted = set(DEFAULT) | ({"gate"} if args.gate else set()) | ({"suite"} if args.suite else set())
        names = [n for n in COMPARISONS if n in wanted]
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    opts = Options(reps=reps, quick=args.quick, gate=args.gate, suite=args.suite, timeout=args.timeout,
                   verbose=not args.quiet)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    info = machine()
    options = {"reps": reps, "quick": args.quick, "only": args.names, "gate": args.gate, "suite": args.suite}
    if args.render:
        data = args.out / RESULTS / "latest.json"
        if not data.exists():
            print(f"python -m benchmarks: error: --render: no results at {data}", file=sys.stderr)
            return 2
        saved = json.loads(data.read_text())
        paths = write_results(args.out, load_sections(data), saved.get("machine", {}), saved.get("command", ""),
                              saved.get("options", {}))
        print(f"results: {paths['md']} rewritten from {data}")
        return 0
    earlier = load_sections(args.out / RESULTS / "latest.json") if args.merge else []
    if args.merge:
        command += " (merged into the earlier results)"
    sections: list[Section] = []
    failed = 0
    paths: dict[str, Path] = {}
    for name in args.names:
        start, steal_start = time.perf_counter(), cpu_steal_s()
        opts.log(f"== {name}")
        try:
            module = importlib.import_module(f"{__package__}.{MODULES[name]}")
            section = module.run(opts)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other comparisons
            failed += 1
            traceback.print_exc()
            section = Section(name, f"{name}: could not run", ["error"], [{"error": f"{type(exc).__name__}: {exc}"}],
                              targets=[Target(f"{name} comparison ran", "no", False)])
        section.raw["wall_s"] = time.perf_counter() - start
        now, steal_end = machine(), cpu_steal_s()
        section.measured = f"{now['date']}, load average {now['load_average_at_start']}"
        if steal_start is not None and steal_end is not None:
            cpu_s = section.raw["wall_s"] * (os.cpu_count() or 1)
            section.raw["cpu_steal_s"] = steal_end - steal_start
            section.measured += (f", CPU steal (ready, but the hypervisor ran something else) "
                                 f"{steal_end - steal_start:.1f} s of {cpu_s:.0f} CPU-s")
        sections.append(section)
        opts.log(f"== {name} done in {section.raw['wall_s']:.0f} s")
        # written after every comparison, so a long run that stops early keeps what it measured
        paths = write_results(args.out, merge_sections(earlier, sections, COMPARISONS), info, command.strip(), options)
    print(render_text(sections, info))
    figures = [str(p) for k, p in paths.items() if k not in ("json", "md")]
    print(f"results: {paths['json']} and {paths['md']}" + (f"; figures: {', '.join(figures)}" if figures else ""))
    return 1 if failed else 0
