"""``cnn-conformance claims``: the tutorial's and the papers' numbers, measured, with verdicts.

    cnn-conformance claims
    cnn-conformance claims --json claims.json
    cnn-conformance claims --id three-3x3-params --id mobilenet-table2
    cnn-conformance claims --markdown docs/claims.md

Each claim is measured by instantiating modules and by closed forms (they must agree) and
judged: holds, does not hold, or holds only under a stated condition. The table lists every
claim and then why each non-holding one fails. ``--json PATH`` (``-`` for stdout) writes a
list of objects with keys id, source, statement, claimed, measured, verdict (true, false or
"conditional"), explanation, and for each claim the tutorial section it comes from (section),
whether the tutorial states or only implies it (basis), what would make a failing statement
true (correction), the citation of a value read from a paper (evidence) and its group. Exit codes:
0 evaluated (whatever the verdicts), 2 usage error or a claim whose two measurements disagree (a
bug, named in the message).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-' for stdout, then no table)")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the results as a markdown table (docs/claims.md)")
    parser.add_argument("--id", action="append", metavar="ID", dest="ids", help="only this claim (repeatable)")


def _write(path: str, text: str, option: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    from ..claims import evaluate, render_json, render_markdown, render_table

    try:
        results = evaluate(args.ids)
    except KeyError as exc:
        raise UsageError(f"--id: {exc.args[0]}") from None
    if args.json == "-":
        sys.stdout.write(render_json(results))
    else:
        sys.stdout.write(render_table(results))
        if args.json:
            _write(args.json, render_json(results), "--json")
    if args.markdown:
        _write(args.markdown, render_markdown(results), "--markdown")
    return 0
