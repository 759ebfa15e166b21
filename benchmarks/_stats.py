"""Small statistics: medians over repetitions, ratios, and a log-log least-squares exponent."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

__all__ = ["loglog_exponent", "median", "ratio", "speedup"]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs`` (below 1: ours is cheaper); None when either is missing or 0."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def speedup(ours: float | None, theirs: float | None) -> float | None:
    """``theirs / ours``: how many times cheaper ours is (the targets are stated this way)."""
    if ours is None or theirs is None or ours <= 0:
        return None
    return theirs / ours


def loglog_exponent(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope ``b`` of ``log y = a + b log x``, and its R^2.

    ``b`` is the exponent of a power law ``y ~ x**b``: 1 for linear growth, 2 for quadratic.
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need at least two (x, y) pairs, got {len(xs)} x and {len(ys)} y")
    if any(v <= 0 for v in (*xs, *ys)):
        raise ValueError("x and y must be positive for a log-log fit")
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    if sxx == 0:
        raise ValueError("x values must not all be equal")
    sxy = sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ly)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(lx, ly, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return slope, r2
