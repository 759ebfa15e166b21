"""Tables and targets shared by the comparisons: timing rows with ratios, speed and memory targets.

The targets of the summary and FLOP-counting paths (``speed_targets``), evaluated and
reported, never asserted:

* a meta-device path (any model): at most ``META_OVER_BUILD`` = 1.5x the time of the model's
  own meta build, first call (the build timed inside that same call). Building
  the model is the floor of any path that must build it, so this is what a meta path can
  promise on every model; on VGG16, whose CPU build is expensive, it must also be at least
  20x faster end to end than the fastest CPU peer, with at least 20x less added peak memory
  (first call);
* a closed-form path (registered architectures, nothing built): at least 10x faster end to
  end than the fastest CPU peer on every model, cold and warm.
"""

from __future__ import annotations

from typing import Any

from ._harness import Tally
from ._stats import median, ratio, speedup
from .results import Target

__all__ = ["TIME_COLUMNS", "WARM_NOTE", "import_note", "per_rep_speedups", "speed_targets", "timing_rows"]

WARM_NOTE = (
    "cold = the first call in a process whose imports are done; warm = later calls in that process "
    "(lazy imports done, caches filled), as in a gate or test run over many models: after a gc.collect(), "
    "as many calls as fit in 0.2 s (1 to 5), their median time, and the first one's added peak memory (above the "
    "RSS the first call left, which may already hold what a later call needs: the memory target is judged on the "
    "first call)."
)

TARGET_SPEEDUP = {"vgg16": 20.0}  # a meta path's peer target: only these models
DEFAULT_SPEEDUP = 10.0  # a closed-form path's peer target, every model
TARGET_MEMORY = {"vgg16": 20.0}
META_OVER_BUILD = 1.5  # a meta path's time over its own meta build's, first call

TIME_COLUMNS = ["call s", "e2e s", "e2e warm s", "added MB", "added warm MB",
                "time ours/theirs", "warm time ours/theirs", "mem ours/theirs"]


def timing_rows(tally: Tally, models: tuple[str, ...], ours: str, tools: tuple[str, ...],
                extra: dict[str, str] | None = None, not_compared: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per (model, tool): medians, and ours/theirs ratios (end to end, added memory).

    ``ours`` and the tools in ``not_compared`` (a bound, another of our paths) get no ratios."""
    rows = []
    for model in models:
        def med(tool: str, field_name: str, model: str = model) -> float | None:
            return tally.med(tool, model, field_name)

        for tool in tools:
            peer = tool != ours and tool not in not_compared
            row: dict[str, Any] = {
                "model": model, "tool": tool,
                "call s": med(tool, "op_s"),
                "e2e s": med(tool, "total_s"),
                "e2e warm s": med(tool, "warm_total_s"),
                "added MB": med(tool, "added_mb"),
                "added warm MB": med(tool, "warm_added_mb"),
                "time ours/theirs": ratio(med(ours, "total_s"), med(tool, "total_s")) if peer else None,
                "warm time ours/theirs": ratio(med(ours, "warm_total_s"), med(tool, "warm_total_s")) if peer else None,
                "mem ours/theirs": ratio(med(ours, "added_mb"), med(tool, "added_mb")) if peer else None,
                "error": tally.error(tool, model),
            }
            for col, field_name in (extra or {}).items():
                row[col] = tally.first(tool, model, field_name)
            rows.append(row)
    return rows


MEM_FLOOR_MB = 1.0  # below this an RSS difference is page-granularity noise


def _best_peer(tally: Tally, model: str, peers: tuple[str, ...], field_name: str) -> tuple[str, float] | None:
    vals = {p: v for p in peers if (v := tally.med(p, model, field_name)) is not None}
    if not vals:
        return None
    best = min(vals, key=lambda p: vals[p])
    return best, vals[best]


def per_rep_speedups(tally: Tally, model: str, ours: str, peers: tuple[str, ...], field_name: str) -> list[float]:
    """In each repetition, the fastest peer's time over ours (tools take turns within one)."""
    mine = tally.by_rep(ours, model, field_name)
    theirs = [tally.by_rep(p, model, field_name) for p in peers]
    out = []
    for rep, o in sorted(mine.items()):
        times = [t[rep] for t in theirs if rep in t]
        if len(times) == len(peers) and (s := speedup(o, min(times))) is not None:
            out.append(s)
    return out


def speed_targets(tally: Tally, models: tuple[str, ...], ours: str, peers: tuple[str, ...],
                  what: str, memory: bool, bound: str | None = None) -> list[Target]:
    """The targets of one of our paths (module docstring). ``bound`` names the meta build
    alone, the part of a meta-device path that any path building the model pays: with it,
    ``ours`` is a meta path (judged against its build, and against peers on ``TARGET_SPEEDUP``'s
    models); without it, a closed-form path (judged against peers on every model).

    Peer targets are end to end, cold and warm. A target is "not measured" when ours or any
    peer is missing a repetition (unavailable, failed): the fastest peer must be chosen among
    all of them. Each speed verdict is the median over repetitions of that repetition's
    speedup (its fastest peer's time over ours: the tools take turns within a repetition), with
    their range and how many reached the target; the medians of the times are shown beside it.

    Memory is judged on the first call only. A later call's added peak is measured from the RSS
    the first call left, which already holds what ours needs (ours then reads 0 MB, and a
    ratio against it would only restate the peer's figure), so it is reported, not judged."""
    targets = []
    for model in models:
        problems = [f"{t}: {p}" for t in (ours, *peers) if (p := tally.problem(t, model))]
        not_measured = "not measured" + (f": {'; '.join(problems)}" if problems else "")
        if bound is not None:
            targets.append(_build_target(tally, model, ours, what))
        need = TARGET_SPEEDUP.get(model) if bound is not None else DEFAULT_SPEEDUP
        if need is not None:
            targets += _peer_targets(tally, model, ours, peers, what, need, problems, not_measured)
        if memory and model in TARGET_MEMORY:
            targets.append(_memory_target(tally, model, ours, peers, what, problems, not_measured))
    return targets


def _build_target(tally: Tally, model: str, ours: str, what: str) -> Target:
    """A meta path's first call over its own meta build: ours records the time of the build
    inside its call (``build_s``), so each repetition gives the ratio within one process (same
    heap, same cold state); the median over repetitions."""
    name = f"{what} {model} (first call): at most {META_OVER_BUILD:g}x the time of its own meta build"
    if problem := tally.problem(ours, model):
        return Target(name, f"not measured: {problem}", None)
    totals, builds = tally.by_rep(ours, model, "total_s"), tally.by_rep(ours, model, "build_s")
    reps = [totals[r] / builds[r] for r in sorted(totals) if builds.get(r)]
    if not reps:
        return Target(name, "not measured: ours recorded no time for its own build", None)
    r = median(reps)
    assert r is not None
    text = (f"{r:.2f}x, the median over {len(reps)} repetition(s) of the call's time over its own build's "
            f"({min(reps):.2f}-{max(reps):.2f}x, {sum(x <= META_OVER_BUILD for x in reps)} of {len(reps)} at "
            f"{META_OVER_BUILD:g}x or less); medians: call {tally.med(ours, model, 'total_s'):.4f} s, "
            f"build {tally.med(ours, model, 'build_s'):.4f} s")
    return Target(name, text, r <= META_OVER_BUILD)


def _peer_targets(tally: Tally, model: str, ours: str, peers: tuple[str, ...], what: str, need: float,
                  problems: list[str], not_measured: str) -> list[Target]:
    targets = []
    for phase, field_name in (("cold", "total_s"), ("warm", "warm_total_s")):
        name = f"{what} {model} ({phase}): >= {need:.0f}x faster end to end than the fastest CPU peer"
        o = tally.med(ours, model, field_name)
        best = _best_peer(tally, model, peers, field_name)
        reps = per_rep_speedups(tally, model, ours, peers, field_name)
        if problems or o is None or best is None or not reps:
            why = not_measured if problems else ("not measured: no repetition in which ours and every peer took "
                                                 "a measurable time")
            targets.append(Target(name, why, None))
            continue
        # judged within each repetition (the tools take turns on the model, so a burst of load
        # falls on all of them), then the median over repetitions
        s = median(reps)
        assert s is not None
        text = (f"{s:.1f}x, the median over {len(reps)} repetition(s) of the fastest peer's time over ours "
                f"({min(reps):.1f}-{max(reps):.1f}x, {sum(r >= need for r in reps)} of {len(reps)} at "
                f"{need:.0f}x or more); medians: ours {o:.3f} s, {best[0]} {best[1]:.3f} s")
        targets.append(Target(name, text, s >= need))
    return targets


def _memory_target(tally: Tally, model: str, ours: str, peers: tuple[str, ...], what: str,
                   problems: list[str], not_measured: str) -> Target:
    need_m = TARGET_MEMORY[model]
    name = f"{what} {model} (first call): >= {need_m:.0f}x less added peak memory than the leanest CPU peer"
    o = tally.med(ours, model, "added_mb")
    best = _best_peer(tally, model, peers, "added_mb")
    if problems or o is None or best is None:
        return Target(name, not_measured, None)
    f = speedup(max(o, MEM_FLOOR_MB), best[1])
    floor_note = f" (ours under {MEM_FLOOR_MB:.0f} MB, counted as {MEM_FLOOR_MB:.0f})" if o < MEM_FLOOR_MB else ""
    return Target(name, f"{f:.1f}x vs {best[0]} ({o:.1f} MB vs {best[1]:.0f} MB){floor_note}",
                  f is not None and f >= need_m)


def import_note(tally: Tally) -> str:
    parts = []
    for tool, info in tally.imports.items():
        if "error" in info:
            parts.append(f"{tool}: unavailable ({info['error']})")
        else:
            parts.append(f"{tool} {info['import_s']:.2f} s / {info['import_rss_mb']:.0f} MB")
    return ("imports (excluded from every time and memory above; one worker per tool, measured once): "
            + "; ".join(parts))


