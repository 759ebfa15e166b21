"""Results: sections of tables and targets, printed as text and written as JSON and markdown.

A comparison module returns one ``Section``: a title, column names, rows (dicts keyed by
column; numbers stay numbers in the JSON and are formatted only when printed), notes, and
``Target`` verdicts (evaluated and reported, never asserted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Section", "Target", "fmt", "fmt_cell", "load_sections", "merge_sections", "render_markdown", "render_text"]


@dataclass
class Target:
    name: str  # "summary VGG16: >= 20x faster than the fastest CPU peer"
    measured: str  # "31.2x (torchinfo)"
    holds: bool | None  # None: not measured in this run
    detail: str = ""  # what the profile showed, when it misses


@dataclass
class Section:
    key: str  # "summary", "flops", ...
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # every repetition, for the JSON only
    measured: str = ""  # when the section finished, and the load average then


def fmt(value: Any) -> str:
    """A cell: ints with thousands separators, floats with 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        mag = abs(value)
        if mag >= 1000:
            return f"{value:,.0f}"
        if mag >= 100:
            return f"{value:.0f}"
        if mag >= 10:
            return f"{value:.1f}"
        if mag >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


def fmt_ratio(value: Any) -> str:
    """A ratio below 1 as ``1/x`` (``1/161`` reads better than ``6.2e-03``)."""
    if not isinstance(value, float) or value <= 0 or value >= 1:
        return fmt(value)
    inv = 1.0 / value
    return f"1/{inv:,.0f}" if inv >= 100 else f"1/{inv:.3g}"


def fmt_mb(value: Any) -> str:
    if not isinstance(value, float):
        return fmt(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def fmt_cell(column: str, value: Any) -> str:
    """Column-aware: ratios (``ours/theirs``, ``x / y``) as 1/x, memory in MB with one decimal."""
    if "/" in column and not column.endswith(" s"):
        return fmt_ratio(value)
    if column.endswith("MB"):
        return fmt_mb(value)
    return fmt(value)


def _table(columns: list[str], rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[fmt_cell(c, r.get(c)) for c in columns] for r in rows]


def render_text(sections: list[Section], machine: dict[str, Any]) -> str:
    out = [_stamp(machine), ""]
    for s in sections:
        out += [s.title, "=" * len(s.title)]
        if s.measured:
            out.append(f"measured {s.measured}")
        cells = _table(s.columns, s.rows)
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(s.columns)]

        def line(vals: list[str], w: list[int] = widths) -> str:
            return "  ".join(v.ljust(n) if i == 0 else v.rjust(n) for i, (v, n) in enumerate(zip(vals, w, strict=True)))

        out += [line(s.columns), line(["-" * n for n in widths]), *[line(r) for r in cells]]
        out += [f"  note: {n}" for n in s.notes]
        for t in s.targets:
            out.append(f"  target {_verdict(t)}: {t.name}: {t.measured}" + (f" -- {t.detail}" if t.detail else ""))
        out.append("")
    return "\n".join(out)


def _verdict(t: Target) -> str:
    return "not measured" if t.holds is None else ("HOLDS" if t.holds else "MISSED")


def _stamp(machine: dict[str, Any]) -> str:
    pk = machine.get("packages", {})
    return (
        f"{machine.get('date')} on {machine.get('nproc')} CPUs ({machine.get('cpu_model')}), "
        f"{machine.get('ram_gib')} GiB RAM, Python {machine.get('python')}, torch {pk.get('torch')}, "
        f"torchvision {pk.get('torchvision')}; load average at start {machine.get('load_average_at_start')}"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(sections: list[Section], machine: dict[str, Any], command: str,
                    figures: dict[str, str] | None = None) -> str:
    """``figures``: section key -> the PNG drawn for it (shown under the first section that has
    it, linked from the others) or ``"error: ..."`` (said in place of the figure)."""
    figures = figures or {}
    shown: set[str] = set()
    out = [
        f"Measured {_stamp(machine)}.",
        f"Command: `{command}`. Medians over the repetitions; ours / theirs below 1 means ours is cheaper; "
        "speedup = theirs / ours.",
        "",
        "Targets (evaluated, not asserted):",
        "",
        *[f"- **{_verdict(t)}**: {t.name}: {t.measured}" for s in sections for t in s.targets],
        "",
    ]
    for s in sections:
        out += [f"#### {s.title}", ""]
        if s.measured:
            out += [f"_Measured {s.measured}._", ""]
        out.append("| " + " | ".join(s.columns) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(s.columns))) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in _table(s.columns, s.rows)]
        out.append("")
        out += [f"- {_md_cell(n)}" for n in s.notes]
        for t in s.targets:
            out.append(f"- Target **{_verdict(t)}**: {t.name}: {t.measured}" + (f". {t.detail}" if t.detail else ""))
        out.append("")
        figure = figures.get(s.key)
        if figure and figure.startswith("error: "):
            out += [f"_Figure not drawn: {_md_cell(figure.removeprefix('error: '))}_", ""]
        elif figure and figure in shown:
            out += [f"Figure: [{figure}]({figure}), shown above.", ""]
        elif figure:
            shown.add(figure)
            out += [f"![{s.title}]({figure})", ""]
    return "\n".join(out)


def load_sections(path: Path) -> list[Section]:
    """The sections of an earlier ``latest.json`` (for ``--merge``); [] when there is none."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    started = data.get("machine", {})
    out = []
    for d in data.get("sections", []):
        targets = [Target(**t) for t in d.pop("targets", [])]
        section = Section(**d, targets=targets)
        if not section.measured:  # written before sections carried their own stamp: the run's
            section.measured = (f"in the run started {started.get('date')}, "
                                f"load average {started.get('load_average_at_start')}")
        out.append(section)
    return out


def merge_sections(old: list[Section], new: list[Section], order: tuple[str, ...]) -> list[Section]:
    """``old`` with every section of the same key replaced by ``new``'s, in ``order``."""
    by_key = {s.key: s for s in old} | {s.key: s for s in new}
    rank = {k: i for i, k in enumerate(order)}
    return sorted(by_key.values(), key=lambda s: rank.get(s.key, len(rank)))
