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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="*", metavar="GLOB", help="only names matching this glob")


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
