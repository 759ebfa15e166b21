"""Figures drawn from the results: speedups against their targets, gradient-flow cost against size.

Both are computed from the sections (their rows, and the repetitions kept in their raw data), so
a ``--merge`` run redraws them from the merged results. They go to ``results/`` as PNGs (matplotlib's Agg backend)
and the markdown shows each under its section's table.

* ``speedups.png`` (sections ``summary`` and ``flops``): for every model, each of our paths'
  end-to-end speedup over the fastest CPU peer, as the targets judge it (the median over
  repetitions of each repetition's speedup; cold as a bar, warm as a dot, on a log axis), the
  meta build alone as the ceiling of any meta-device path, and the target.
* ``gradflow_scaling.png`` (section ``gradflow``): time per setting against depth and against
  width, log-log, with the least-squares power law of each net type.

A row's tool is a peer unless its name starts with ``ours`` or ``bound:``, the convention that
``compare_summary.py`` and ``compare_macs.py`` name their tools by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._harness import Tally
from ._stats import loglog_exponent, median
from ._tables import DEFAULT_SPEEDUP, TARGET_SPEEDUP, per_rep_speedups
from .results import Section

__all__ = ["FIGURES", "SpeedupPoint", "gradflow_series", "is_peer", "speedup_points", "write_figures"]

SPEEDUP_FIGURE = "speedups.png"
GRADFLOW_FIGURE = "gradflow_scaling.png"
FIGURES = {"summary": SPEEDUP_FIGURE, "flops": SPEEDUP_FIGURE, "gradflow": GRADFLOW_FIGURE}
SPEEDUP_TITLES = {"summary": "Per-layer summary at 224", "flops": "FLOP counting at 224"}
PHASES = ("total_s", "warm_total_s")  # first call, later calls


def is_peer(tool: str) -> bool:
    return not tool.startswith(("ours", "bound:"))


@dataclass(frozen=True)
class SpeedupPoint:
    """One of our paths (or the bound) on one model: fastest CPU peer's time / ours, per phase."""

    model: str
    tool: str
    cold: float | None
    warm: float | None
    target: float


def speedup_points(section: Section) -> list[SpeedupPoint]:
    """What the targets are judged on, per model and path (rows' order): the median over
    repetitions of each repetition's fastest peer time over the path's (``per_rep_speedups``,
    from the repetitions in ``section.raw``). ``None`` where a tool is missing a repetition:
    a target that is not measured gets no bar, as it gets no verdict."""
    tally = Tally.from_json(section.raw)
    models: dict[str, list[str]] = {}
    for row in section.rows:
        if row.get("model") is not None and isinstance(row.get("tool"), str):
            models.setdefault(row["model"], []).append(row["tool"])
    points = []
    for model, tools in models.items():
        peers = tuple(t for t in tools if is_peer(t))
        for tool in tools:
            if is_peer(tool):
                continue
            if not peers or any(tally.problem(t, model) for t in (tool, *peers)):
                cold = warm = None
            else:
                cold, warm = (median(per_rep_speedups(tally, model, tool, peers, field)) for field in PHASES)
            points.append(SpeedupPoint(model, tool, cold, warm, TARGET_SPEEDUP.get(model, DEFAULT_SPEEDUP)))
    return points


def gradflow_series(section: Section) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """``(axis, net) -> [(depth or width, median s), ...]`` from the gradflow section's sweep rows."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in section.rows:
        axis = row.get("sweep")
        if axis not in ("depth", "width") or not row.get("s"):
            continue
        series.setdefault((axis, row["net"]), []).append((float(row[axis]), float(row["s"])))
    return {k: sorted(v) for k, v in series.items()}


def _tool_rank(tool: str) -> int:
    return 2 if "closed form" in tool else (1 if tool.startswith("bound:") else 0)


def _tool_colour(tool: str) -> str:
    return ("tab:blue", "0.75", "tab:green")[_tool_rank(tool)]


def _times(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


def _draw_speedups(ax: Any, section: Section) -> None:
    points = speedup_points(section)
    if not any(v is not None for p in points for v in (p.cold, p.warm)):
        raise ValueError(f"section {section.key!r} has no row of ours with a measured peer to compare with")
    # the meta path, its ceiling right under it, the closed form last: the same order and colour
    # in both panels
    tools = sorted(dict.fromkeys(p.tool for p in points), key=_tool_rank)
    models = list(dict.fromkeys(p.model for p in points))
    height = 0.8 / len(tools)
    labelled: set[str] = set()

    def label(name: str) -> str | None:  # each legend entry once, from wherever it first appears
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for i, model in enumerate(models):
        for j, tool in enumerate(tools):
            p = next((q for q in points if q.model == model and q.tool == tool), None)
            if p is None:
                continue
            y = i + (j - (len(tools) - 1) / 2) * height
            bound = tool.startswith("bound:")
            if p.cold is not None:
                ax.barh(y, p.cold, height=height * 0.9, color=_tool_colour(tool), hatch="//" if bound else None,
                        label=label(f"{tool} (the meta path's ceiling)" if bound else tool))
            if p.warm is not None:
                ax.plot(p.warm, y, "k.", markersize=5, label=label("warm (later call)"))
            ends = [v for v in (p.cold, p.warm) if v is not None]
            if ends:
                text = " / ".join(_times(v) for v in (p.cold, p.warm) if v is not None)
                ax.text(max(ends) * 1.12, y, text, va="center", fontsize=7)
        target = TARGET_SPEEDUP.get(model, DEFAULT_SPEEDUP)
        ax.plot([target, target], [i - 0.45, i + 0.45], color="tab:red", linewidth=2, label=label("target"))
    ax.set_xscale("log")
    ax.set_yticks(range(len(models)), models)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over the fastest CPU peer, end to end\n(bar: first call, dot: warm; log scale)")
    ax.set_title(SPEEDUP_TITLES.get(section.key, section.title), fontsize=10)
    biggest = max((v for p in points for v in (p.cold, p.warm) if v is not None), default=10.0)
    ax.set_xlim(right=biggest * 12)  # room for the labels
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax.grid(axis="x", which="both", alpha=0.3)


def _draw_gradflow(axes: Sequence[Any], section: Section) -> None:
    series = gradflow_series(section)
    if not series:
        raise ValueError("section 'gradflow' has no sweep rows with a time")
    for ax, axis in zip(axes, ("depth", "width"), strict=True):
        for (a, net), pts in series.items():
            if a != axis:
                continue
            xs, ys = [x for x, _ in pts], [y for _, y in pts]
            line = ax.plot(xs, ys, "o-", label=net)[0]
            if len(xs) >= 2:
                b, r2 = loglog_exponent(xs, ys)
                # the fitted power law passes through the points' geometric centre
                lx = sum(math.log(x) for x in xs) / len(xs)
                ly = sum(math.log(y) for y in ys) / len(ys)
                fit = [math.exp(ly + b * (math.log(x) - lx)) for x in xs]
                ax.plot(xs, fit, "--", color=line.get_color(), alpha=0.6,
                        label=f"{net}: time ~ {axis}^{b:.2f} (R^2 {r2:.3f})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("seconds per setting (median)")
        ax.set_title(f"gradflow cost against {axis}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(which="both", alpha=0.3)


def write_figures(out_dir: Path, sections: Sequence[Section]) -> dict[str, str]:
    """Draw the figures that the sections have data for; ``{section key: file name or 'error: ...'}``.

    A figure that cannot be drawn is reported by its sections (the markdown says why); the
    tables and the other figures are written all the same."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {s.key: s for s in sections}
    done: dict[str, str] = {}
    speed = [by_key[k] for k in ("summary", "flops") if k in by_key]
    if speed:
        fig, axes = plt.subplots(1, len(speed), figsize=(6.5 * len(speed), 5.6), squeeze=False)
        try:
            for ax, s in zip(axes[0], speed, strict=True):
                _draw_speedups(ax, s)
            fig.tight_layout()
            fig.savefig(out_dir / SPEEDUP_FIGURE, dpi=110)
            done.update({s.key: SPEEDUP_FIGURE for s in speed})
        except Exception as exc:  # noqa: BLE001 - the tables are written whatever a figure does
            done.update({s.key: f"error: {type(exc).__name__}: {exc}" for s in speed})
            (out_dir / SPEEDUP_FIGURE).unlink(missing_ok=True)  # an earlier run's, no longer these results
        finally:
            plt.close(fig)
    if "gradflow" in by_key:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
        try:
            _draw_gradflow(axes[0], by_key["gradflow"])
            fig.tight_layout()
            fig.savefig(out_dir / GRADFLOW_FIGURE, dpi=110)
            done["gradflow"] = GRADFLOW_FIGURE
        except Exception as exc:  # noqa: BLE001
            done["gradflow"] = f"error: {type(exc).__name__}: {exc}"
            (out_dir / GRADFLOW_FIGURE).unlink(missing_ok=True)
        finally:
            plt.close(fig)
    return done
