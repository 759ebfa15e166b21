"""``cnn-conformance check``: the gate on the command line.

    cnn-conformance check resnet50 vgg16          # built-in architectures
    cnn-conformance check --all                   # every registered architecture
    cnn-conformance check --candidate my.py:build --reference torchvision:resnet50
    cnn-conformance check --candidate pkg.mod:build --spec resnet50 --json report.json

Exit codes: 0 every candidate conformant, 1 a check failed, 2 usage or load error (with
``--all``, also a third-party architecture entry point that failed to load: see
``cnn_models.plugin_errors()``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..errors import UsageError
from ..gate_report import CheckResult, Report

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="registered architectures to check")
    parser.add_argument("--all", action="store_true", help="check every registered architecture")
    parser.add_argument("--candidate", metavar="MODULE_OR_FILE.py:FACTORY",
                        help="a zero-argument factory returning an nn.Module")
    parser.add_argument("--reference", metavar="torchvision:NAME",
                        help="torchvision builder to compare with (weights=None)")
    parser.add_argument("--spec", metavar="NAME", help="registered spec whose oracles and init scheme apply")
    parser.add_argument("--json", metavar="PATH", help="write the full report(s) as JSON")
    parser.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                        help="input size for the structural checks (default: the spec's, else 3 224 224)")
    parser.add_argument("--key-map", metavar="FILE",
                        help="write the alignment's pairing (candidate state_dict key -> reference key) as JSON, "
                             "to convert checkpoints")
    parser.add_argument("--require-keys", action="store_true",
                        help="make state_dict key compatibility binding (the reference's weights must load by name)")
    parser.add_argument("--strict", action="store_true",
                        help="make conventions binding (choices the spec's source leaves open, e.g. an init it "
                             "does not state)")
    parser.add_argument("--weights", metavar="FILE",
                        help="also load this checkpoint into the model (a registered NAME or the candidate): "
                             "wrappers, 'module.' prefixes and other names are matched and the mapping reported")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every finding, also for passing checks")
    parser.add_argument(
        "-j", "--jobs", type=int, default=0, metavar="N",
        help="architectures checked in parallel, one process and one torch thread each (default: one per core)",
    )


def _reports(args: argparse.Namespace) -> list[Report]:
    import cnn_models

    from ..check import check_candidate
    from ..loading import load_factory

    if args.candidate:
        if args.names or args.all:
            raise UsageError("give either NAME.../--all or --candidate, not both")
        factory = load_factory(args.candidate)
        spec = None
        if args.spec:
            try:
                spec = cnn_models.get_spec(args.spec)
            except KeyError as exc:
                raise UsageError(f"--spec: {exc}") from None
        if not args.reference and spec is None:
            raise UsageError("--candidate needs --reference torchvision:NAME and/or --spec NAME")
        print(f"checking {args.candidate} ...", file=sys.stderr, flush=True)
        size = tuple(args.input_size) if args.input_size else None
        report = check_candidate(factory, args.candidate, reference=args.reference, spec=spec, input_size=size,
                                 strict=args.strict, require_keys=args.require_keys)
        if args.weights:
            report.checks.append(_weights(factory, args.weights))
        return [report]

    if args.reference or args.spec or args.input_size or args.strict or args.require_keys:
        raise UsageError("--reference, --spec, --input-size, --strict and --require-keys apply to --candidate; "
                         "built-in NAMEs use their own spec")
    names = cnn_models.list_models() if args.all else list(args.names)
    if not names:
        raise UsageError("nothing to check: give NAME..., --all, or --candidate")
    for name in names:
        try:
            cnn_models.get_spec(name)
        except KeyError as exc:
            raise UsageError(str(exc)) from None
    # a third-party entry point that failed to load: with --all its architectures would be
    # missing from the run, so that is a load error (exit 2) once the others are checked
    kind = "error" if args.all else "warning"
    for err in cnn_models.plugin_errors():
        print(f"cnn-conformance check: {kind}: architecture plugin not loaded: {err}", file=sys.stderr)
    if args.jobs < 0:
        raise UsageError(f"--jobs must be 0 (one per core) or a positive number, got {args.jobs}")
    if args.weights:
        if len(names) != 1:
            raise UsageError("--weights loads one checkpoint into one architecture: give one NAME")
        report, _ = _check_one(names[0])
        spec = cnn_models.get_spec(names[0])
        report.checks.append(_weights(spec.build, args.weights, spec))
        return [report]
    jobs = min(args.jobs or os.cpu_count() or 1, len(names))
    if jobs == 1:
        reports = []
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} ...", end="", file=sys.stderr, flush=True)
            rep, seconds = _check_one(name)
            print(f" {_status(rep)} ({seconds:.1f} s)", file=sys.stderr, flush=True)
            reports.append(rep)
        return reports
    return _check_parallel(names, jobs)


def _weights(factory: object, path: str, spec: object = None) -> CheckResult:
    """Load a checkpoint into a fresh model; the line says how each tensor was matched.

    Where the spec admits several builds with one state_dict (``ArchSpec.readings``), the
    checkpoint cannot say which its model computed: the line names them, so that it is loaded
    into the build of its source."""
    from ..errors import CheckpointError
    from ..loading import load_checkpoint, load_into

    try:
        model = factory()  # type: ignore[operator]
        loaded = load_into(model, load_checkpoint(path), label=path)
    except CheckpointError as exc:
        return CheckResult("weights", "fail", f"{path}: nothing was loaded", [str(exc)])
    evidence = loaded.describe()
    readings = [r for r in getattr(spec, "readings", ()) if r.kwargs]
    if readings:
        builds = "; ".join(f"{r.name} ({', '.join(f'{k}={v!r}' for k, v in r.kwargs.items())}: {r.source})"
                           for r in readings)
        evidence += (f"; loaded into the default build, but the spec admits readings with this same state_dict, "
                     f"which the checkpoint does not record: load it into the build its source trained: {builds}")
    return CheckResult("weights", "pass", evidence, [f"{a} -> {b}" for a, b in loaded.renamed])


def _write_key_map(path: str, reports: list[Report]) -> None:
    """The alignment's pairs (candidate key -> reference key) of the one report, as JSON."""
    checks = {c.name: c for c in reports[0].checks} if len(reports) == 1 else {}
    if "alignment" not in checks or not checks["alignment"].data.get("pairs"):
        raise UsageError("--key-map: no alignment to write (it needs one candidate and a reference model)")
    with open(path, "w") as fh:
        json.dump(checks["alignment"].data["pairs"], fh, indent=2)


def _status(rep: Report) -> str:
    return "ERROR" if rep.error else ("ok" if rep.passed else "FAIL")


def _check_one(name: str) -> tuple[Report, float]:
    """One architecture's gate; whatever it raises becomes that report's error, naming where
    it was raised, so that a run over many architectures reports all the others."""
    import traceback

    from ..check import check_builtin

    start = time.perf_counter()
    try:
        rep = check_builtin(name)
    except Exception as exc:  # noqa: BLE001 - reported below, with the frame that raised it
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        first = (str(exc).strip().splitlines() or [""])[0]
        rep = Report(name, f"spec {name}")
        rep.error = f"{name}: the gate raised {type(exc).__name__}: {first} (at {frame.filename}:{frame.lineno})"
    return rep, time.perf_counter() - start


def _expected_cost(name: str) -> float:
    """How long ``name``'s gate will take, relatively: its expected parameter count (from its
    spec's oracle), since the numerics run in float64 over every weight; 0 without one."""
    import cnn_models

    expected = cnn_models.get_spec(name).expected.get("params")
    return float(expected.value) if expected is not None else 0.0


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: more threads would only contend


def _check_parallel(names: list[str], jobs: int) -> list[Report]:
    """Check architectures in ``jobs`` processes; progress lines as each one finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from .. import heap

    done: dict[str, Report] = {}
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
        # the processes start with large freed blocks kept in their heap (conformance/heap.py);
        # glibc reads that at start-up, and with spawn the first submit starts them all
        with heap.worker_environment(jobs) as said:
            print(f"checking {len(names)} architectures in {jobs} processes (heap: {said})",
                  file=sys.stderr, flush=True)
            # largest first, so the last gates to start are short ones and no process is left
            # alone with a 15 s VGG at the end (the report keeps the order asked for)
            futures = {pool.submit(_check_one, name): name for name in sorted(names, key=_expected_cost, reverse=True)}
        for future in as_completed(futures):
            name = futures[future]
            try:
                rep, seconds = future.result()
            except Exception as exc:  # noqa: BLE001 - the process itself failed (killed, unpicklable result)
                from concurrent.futures.process import BrokenProcessPool

                rep, seconds = Report(name, f"spec {name}"), float("nan")
                rep.error = f"{name}: its check process failed: {type(exc).__name__}: {exc}"
                if isinstance(exc, BrokenProcessPool):  # one killed process breaks every pending check
                    rep.error += (f"; a process of the pool was killed (out of memory?), which stops every check "
                                  f"still pending, so {name} may be fine: run `cnn-conformance check {name}` alone")
            done[name] = rep
            print(f"[{len(done)}/{len(names)}] {name} ... {_status(rep)} ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)
    return [done[name] for name in names]


def _plugin_errors() -> list[str]:
    import cnn_models

    return cnn_models.plugin_errors()


def _writable(path: str) -> None:
    """Refuse a --json path that cannot be written before any check runs (minutes, with --all)."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UsageError(f"--json {path!r} is a directory; give a file path")
    if not os.path.isdir(parent):
        raise UsageError(f"--json {path!r}: folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--json {path!r}: folder {parent!r} is not writable")


def run(args: argparse.Namespace) -> int:
    for path in (args.json, args.key_map):
        if path:
            _writable(path)
    reports = _reports(args)
    if len(reports) > 1:
        width = max(len(r.candidate) for r in reports)
        print(f"{'architecture':<{width}}  verdict         checks  failures")
        for r in reports:
            n_fail = sum(not c.passed for c in r.checks)
            print(f"{r.candidate:<{width}}  {'conformant' if r.passed else 'NOT CONFORMANT':<14}  "
                  f"{len(r.checks):>6}  {n_fail:>8}")
        print()
    for r in reports:
        if len(reports) == 1 or not r.passed or args.verbose:
            print(r.format(verbose=args.verbose))
    n_bad = sum(not r.passed for r in reports)
    print(f"{len(reports) - n_bad}/{len(reports)} conformant")
    if args.key_map:
        _write_key_map(args.key_map, reports)
    json_failed = False
    if args.json:
        try:
            with open(args.json, "w") as fh:
                json.dump([r.to_dict() for r in reports], fh, indent=2, default=str)
        except OSError as exc:
            print(f"cnn-conformance check: error: could not write --json {args.json!r}: {exc}", file=sys.stderr)
            json_failed = True
    if any(r.error for r in reports):
        print(f"cnn-conformance: error: {next(r.error for r in reports if r.error)}", file=sys.stderr)
        return 2
    if json_failed:
        return 2
    if args.all and (errors := _plugin_errors()):
        print(f"cnn-conformance check: error: {len(errors)} architecture plugin(s) failed to load, so --all "
              f"did not check their architectures: {errors[0]}", file=sys.stderr)
        return 2
    return 0 if n_bad == 0 else 1
