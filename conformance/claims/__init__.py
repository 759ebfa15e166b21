"""The claims catalogue: the tutorial's arithmetic and models, the papers' numbers and
torchvision's departures from them, as executable checks with verdicts.

    >>> from conformance.claims import evaluate, get_claim
    >>> get_claim("three-3x3-params").evaluate().verdict
    False
    >>> [r.id for r in evaluate() if r.verdict == "conditional"]

Modules: ``claim`` (the record, judges, the agreement rule), ``exhibits`` (the tutorial's
Inception and MobileNet, the papers' arithmetic modules, built here outside the registry),
``arithmetic`` / ``tutorial`` / ``deviations`` / ``papers`` / ``gradients`` (the claims by
group), ``catalogue`` (their order), ``render`` (table, JSON, markdown).
"""

from __future__ import annotations

from .catalogue import CLAIMS, evaluate, get_claim
from .claim import CONDITIONAL, Claim, ClaimError, Result, Verdict
from .render import render_json, render_markdown, render_table

__all__ = [
    "CLAIMS",
    "CONDITIONAL",
    "Claim",
    "ClaimError",
    "Result",
    "Verdict",
    "evaluate",
    "get_claim",
    "render_json",
    "render_markdown",
    "render_table",
]
