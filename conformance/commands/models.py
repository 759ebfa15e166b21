"""``cnn-conformance models``: every registered architecture with its parameter oracle.

Builds each model on the ``meta`` device (no weights allocated) and prints its parameter
count next to the spec's expected value and the source of that value.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="*", metavar="GLOB", help="only names matching this glob")


def run(args: argparse.Namespace) -> int:
    import fnmatch

    import cnn_models

    from ..inspect import build_on_meta

    names = [n for n in cnn_models.list_models() if fnmatch.fnmatch(n, args.arch)]
    width = max((len(n) for n in names), default=12)
    print(f"{'architecture':<{width}}  {'params':>13}  {'expected':>13}  {'':4}  source")
    bad = 0
    for name in names:
        spec = cnn_models.get_spec(name)
        got = sum(p.numel() for p in build_on_meta(spec.build).parameters())
        exp = spec.expected["params"]
        ok = exp.holds_for(got)
        bad += not ok
        tol = f" +-{exp.abs_tol:,.0f}" if exp.abs_tol else ""
        print(f"{name:<{width}}  {got:>13,}  {exp.value:>13,.0f}  {'ok' if ok else 'FAIL':4}  {exp.source}{tol}")
    print(f"{len(names) - bad}/{len(names)} match their oracle")
    return 0 if bad == 0 else 1
