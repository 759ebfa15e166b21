"""``cnn-conformance models``: every registered architecture with its parameter oracle.

Builds each model on the ``meta`` device (no weights allocated) and prints its parameter
count next to the spec's expected value and the source of that value.

A spec whose builder raises gets an ``ERROR`` row naming the exception, and the listing goes
on. A third-party entry point that failed to load is printed on stderr: its architectures
are missing from the listing. Exit code 0: every architecture matches its oracle; 1: at least
one does not, or could not be built; 2: a plugin failed to load, or ``--arch`` matches no
registered architecture.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError

__all__ = ["add_arguments", "run"]

PROG = "cnn-conformance models"
BEGIN, END = "<!-- architectures:begin -->", "<!-- architectures:end -->"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="*", metavar="GLOB", help="only names matching this glob")
    parser.add_argument("--markdown", metavar="FILE", help="write the architectures table (closed-form params and "
                        "MACs, oracle) as markdown instead of checking the counts: to stdout ('-'), between the "
                        f"{BEGIN} and {END} lines of FILE where it has them (README.md does), else as FILE")


def embed(document: str, table: str) -> str | None:
    """``document`` with the lines between its ``BEGIN`` and ``END`` lines replaced by
    ``table``; ``None`` when it has no such pair."""
    start, stop = document.find(BEGIN + "\n"), document.find(END)
    if start < 0 or stop < start:
        return None
    return document[: start + len(BEGIN) + 1] + table + document[stop:]


def markdown_table(names: list[str]) -> str:
    """One row per architecture: parameters and MACs by closed form from the spec's config (no
    model is built), its input size, and the oracle the gate holds it to."""
    import cnn_models

    from ..formulas import spec_plan

    lines = ["| architecture | params | MACs | input | oracle |", "|---|--:|--:|--:|---|"]
    for name in names:
        spec = cnn_models.get_spec(name)
        try:
            plan = spec_plan(spec, spec.input_size)
            params, macs = f"{plan.params:,}", f"{plan.macs / 1e6:,.0f} M"
        except Exception as exc:  # noqa: BLE001 - a closed form that cannot read its config is named, not hidden
            params = macs = f"no closed form ({type(exc).__name__})"
        oracle = "torchvision" if spec.torchvision else spec.paper.split(",")[0]
        lines.append(f"| {name} | {params} | {macs} | {spec.input_size[-1]} | {oracle} |")
    return "\n".join(lines) + "\n"


def _row(name: str) -> tuple[bool, str]:
    """Whether ``name`` matches its parameter oracle, and the columns after its name."""
    import cnn_models

    from ..layer_table import build_on_meta

    spec = cnn_models.get_spec(name)
    try:
        got = sum(p.numel() for p in build_on_meta(spec.build).parameters())
    except Exception as exc:  # noqa: BLE001 - one broken spec must not hide the others
        first = (str(exc).strip().splitlines() or [""])[0]
        return False, f"{'-':>13}  {'-':>13}  ERROR spec {name!r}: building it raised {type(exc).__name__}: {first}"
    exp = spec.expected["params"]
    ok = exp.holds_for(got)
    tol = f" +-{exp.abs_tol:,.0f}" if exp.abs_tol else ""
    return ok, f"{got:>13,}  {exp.value:>13,.0f}  {'ok' if ok else 'FAIL':4}  {exp.source}{tol}"


def run(args: argparse.Namespace) -> int:
    import difflib
    import fnmatch

    import cnn_models

    registered = cnn_models.list_models()
    plugin_errors = cnn_models.plugin_errors()
    for err in plugin_errors:  # before anything else: the listing below is missing their architectures
        print(f"{PROG}: error: architecture plugin not loaded: {err}", file=sys.stderr)
    names = [n for n in registered if fnmatch.fnmatchcase(n, args.arch)]
    if not names:
        close = difflib.get_close_matches(args.arch, registered, n=3, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UsageError(
            f"--arch {args.arch!r} matches no registered architecture{hint} "
            f"({len(registered)} registered; `cnn-conformance models` lists them)"
        )
    if args.markdown:
        from pathlib import Path

        text = markdown_table(names)
        if args.markdown == "-":
            sys.stdout.write(text)
        else:
            path = Path(args.markdown)
            embedded = embed(path.read_text(), text) if path.exists() else None
            path.write_text(embedded if embedded is not None else text)
            print(f"{PROG}: {len(names)} architectures written to {path}"
                  + (f" between its {BEGIN} and {END} lines" if embedded is not None else ""))
        return 2 if plugin_errors else 0
    width = max(len("architecture"), *(len(n) for n in names))
    print(f"{'architecture':<{width}}  {'params':>13}  {'expected':>13}  {'':4}  source")
    bad = 0
    for name in names:
        ok, columns = _row(name)
        bad += not ok
        print(f"{name:<{width}}  {columns}", flush=True)
    print(f"{len(names) - bad}/{len(names)} match their oracle")
    if plugin_errors:
        print(f"{PROG}: error: {len(plugin_errors)} architecture plugin(s) failed to load, so their "
              f"architectures are not listed: {plugin_errors[0]}", file=sys.stderr)
        return 2
    return 0 if bad == 0 else 1
