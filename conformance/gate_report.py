"""The gate's result types: named checks with evidence, collected into one report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CheckResult", "Report"]


@dataclass
class CheckResult:
    """One named check. ``status`` is "pass", "fail", "n/a" (with the reason in evidence) or
    "advisory": a departure from a convention the authority behind the check does not fix,
    shown with its findings but not failing the verdict."""

    name: str
    status: str
    evidence: str = ""
    failures: list[str] = field(default_factory=list)  # each names a module and shows expected vs got
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    @classmethod
    def from_failures(cls, name: str, failures: list[str], evidence: str,
                      data: dict[str, Any] | None = None) -> CheckResult:
        return cls(name, "fail" if failures else "pass", evidence, failures, data or {})


@dataclass
class Report:
    candidate: str
    reference: str
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None  # a load/usage error that stopped the checks
    # seconds per stage of the pipeline ("build", "trace", "align") and per check, in run order
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {f}" for c in self.checks if not c.passed for f in (c.failures or [c.evidence])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "reference": self.reference,
            "conformant": self.passed,
            "error": self.error,
            "checks": [asdict(c) for c in self.checks],
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def format(self, verbose: bool = False, limit: int = 5) -> str:
        """Human-readable report; each check lists at most ``limit`` findings unless verbose
        (the JSON report always has all of them)."""
        lines = [f"{self.candidate} vs {self.reference}: {'CONFORMANT' if self.passed else 'NOT CONFORMANT'}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        width = max((len(c.name) for c in self.checks), default=10)
        for c in self.checks:
            mark = {"pass": "ok  ", "fail": "FAIL", "n/a": "n/a ", "advisory": "adv "}.get(c.status, c.status)
            lines.append(f"  {mark} {c.name:<{width}}  {c.evidence}")
            if not c.passed or c.status == "advisory" or verbose:
                shown = c.failures if verbose else c.failures[:limit]
                lines.extend(f"       - {f}" for f in shown)
                if len(c.failures) > len(shown):
                    lines.append(f"       ... and {len(c.failures) - len(shown)} more (-v or --json for all)")
        return "\n".join(lines)
