"""A claim, its verdict, and the rule that its two measurements must agree.

A ``Claim`` records where a statement comes from (``source``; for the tutorial also its
``section``), whether the source says it in words or numbers (``basis="stated"``) or only
implies it through its code or printed tables (``"implied"``), the statement as the source
makes it, with the conditions it states, and the value it claims. It is data plus two functions:

* ``measure()`` computes the measured value by instantiating modules *and* by closed forms;
  it passes both through ``agree``, which raises ``ClaimError`` when they differ (a bug in an
  exhibit or a formula, never a finding). A history claim reads its value from a cited record
  instead (``records``; ``evidence`` names it). It is cached: each claim is measured once per
  process.
* ``judge(claimed, measured)`` returns the verdict on the statement *as made* -- ``True``
  (holds), ``False`` (does not hold) or ``"conditional"`` (holds only under the condition the
  explanation states) --, a one-sentence explanation and, where the verdict is not ``True``,
  the correction: the number or condition that would make the statement true. Judging is
  separate from measuring so a test can re-judge the same measurement against a mutated
  claimed value and see the verdict flip.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal, NamedTuple

from ..errors import ConformanceError

__all__ = [
    "BASES",
    "CONDITIONAL",
    "TUTORIAL",
    "Basis",
    "Claim",
    "ClaimError",
    "Judged",
    "Judgement",
    "Result",
    "Verdict",
    "agree",
    "exact",
    "fmt",
    "rounded",
    "verdict_label",
    "within",
]

Verdict = bool | Literal["conditional"]
CONDITIONAL: Literal["conditional"] = "conditional"
Basis = Literal["stated", "implied"]
BASES: tuple[Basis, ...] = ("stated", "implied")
TUTORIAL = "tutorial"  # the source of every claim with a section


class Judgement(NamedTuple):
    """What a judge returns: the verdict, why (required unless it holds), and the correction
    (the number or condition that would make the statement true; required unless it holds,
    empty when it does)."""

    verdict: Verdict
    explanation: str = ""
    correction: str = ""


# a judge's return: Judgement, or a plain (verdict, explanation[, correction]) tuple
Judged = Judgement | tuple[Verdict, str] | tuple[Verdict, str, str]
Judge = Callable[[Any, Any], Judged]

_UNSET: Any = object()


class ClaimError(ConformanceError):
    """A claim's two measurements (instantiated modules, closed form) disagree."""


def agree(where: str, instantiated: Any, closed_form: Any, *, rel: float = 0.0) -> Any:
    """Return ``instantiated`` if it equals ``closed_form`` (numbers: within ``rel``), else raise."""
    if not _same(instantiated, closed_form, rel):
        raise ClaimError(
            f"{where}: instantiated modules give {fmt(instantiated)}, the closed form gives "
            f"{fmt(closed_form)} (tolerance rel {rel:g}); an exhibit or a formula is wrong"
        )
    return instantiated


def _same(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel) for k in a)
    if isinstance(a, Sequence) and isinstance(b, Sequence) and not isinstance(a, str) and not isinstance(b, str):
        return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=0.0) if rel else a == b
    return bool(a == b)


@dataclass(frozen=True)
class Result:
    """One evaluated claim: what the CLI prints and ``--json`` writes."""

    id: str
    source: str
    statement: str
    claimed: Any
    measured: Any
    verdict: Verdict
    explanation: str
    section: str | None = None
    basis: Basis = "stated"
    correction: str = ""
    evidence: str = ""
    group: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "statement": self.statement,
            "claimed": _jsonable(self.claimed),
            "measured": _jsonable(self.measured),
            "verdict": self.verdict,
            "explanation": self.explanation,
            "section": self.section,
            "basis": self.basis,
            "correction": self.correction,
            "evidence": self.evidence,
            "group": self.group,
        }


@dataclass(frozen=True)
class Claim:
    """One statement, as its source makes it.

    ``source`` is ``"tutorial"`` exactly when ``section`` names one of the tutorial's sections
    (``conformance.claims.sections.SECTIONS``); a paper's or torchvision's statement names its
    own source and has no section. ``evidence`` cites the record a measured value is read
    from when it is not measured on modules (a history claim).
    """

    id: str
    group: str
    source: str
    statement: str
    claimed: Any
    measure: Callable[[], Any]
    judge: Judge
    _: KW_ONLY
    section: str | None = None
    basis: Basis = "stated"
    evidence: str = ""

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"claim {self.id}: basis must be one of {BASES}, got {self.basis!r}")
        if (self.source == TUTORIAL) != (self.section is not None):
            raise ValueError(
                f"claim {self.id}: source {self.source!r} with section {self.section!r}; a tutorial claim "
                f"names its section and has source {TUTORIAL!r}, any other claim names its own source and no section"
            )
        object.__setattr__(self, "measure", functools.cache(self.measure))

    def evaluate(self, claimed: Any = _UNSET) -> Result:
        """Measure (cached) and judge; ``claimed`` overrides the catalogue's value (for tests)."""
        value = self.claimed if claimed is _UNSET else claimed
        measured = self.measure()
        verdict, why, correction = Judgement(*self.judge(value, measured))
        if verdict not in (True, False, CONDITIONAL):
            raise ClaimError(f"{self.id}: judge returned verdict {verdict!r}")
        if verdict is not True and not (why and correction):
            raise ClaimError(f"{self.id}: a verdict other than 'holds' needs an explanation and a correction")
        if verdict is True and correction:
            raise ClaimError(f"{self.id}: a statement that holds needs no correction, got {correction!r}")
        return Result(
            self.id, self.source, self.statement, value, measured, verdict, why,
            section=self.section, basis=self.basis, correction=correction, evidence=self.evidence, group=self.group,
        )


# --- judges --------------------------------------------------------------------------------


def exact(
    why_not: str = "measured {measured}, not {claimed}", holds: str = "", correction: str = "{measured}"
) -> Judge:
    """Holds when claimed == measured; ``why_not`` and ``correction`` are formatted with both
    (``fmt``-ed); the default correction is the measured value."""

    def judge(claimed: Any, measured: Any) -> Judgement:
        if _same(_jsonable(claimed), _jsonable(measured), 0.0):
            return Judgement(True, holds)
        values = {"claimed": fmt(claimed), "measured": fmt(measured)}
        return Judgement(False, why_not.format(**values), correction.format(**values))

    return judge


def within(
    abs_tol: float,
    why_not: str = "measured {measured}, not {claimed} +- {tol}",
    holds: str = "",
    correction: str = "{measured}",
) -> Judge:
    """Holds when |claimed - measured| <= abs_tol (a paper's rounding)."""

    def judge(claimed: float, measured: float) -> Judgement:
        if abs(float(measured) - float(claimed)) <= abs_tol:
            return Judgement(True, holds)
        values = {"claimed": fmt(claimed), "measured": fmt(measured), "tol": fmt(abs_tol)}
        return Judgement(False, why_not.format(**values), correction.format(**values))

    return judge


def rounded(value: float, digits: int = 3) -> float:
    """``value`` to ``digits`` significant digits (stable figures for Monte Carlo results)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


# --- formatting ----------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """Human form: ints (and integral floats) with thousands separators from five digits on (a
    year stays 2014), other floats as stored."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "none"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return fmt(int(value))
        return f"{value:,}"  # shortest round-trip form: measured floats are rounded where measured
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def verdict_label(verdict: Verdict) -> str:
    return {True: "holds", False: "does not hold", CONDITIONAL: "conditional"}[verdict]
