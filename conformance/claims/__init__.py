"""The claims catalogue: the tutorial's statements section by section (or the reason one is not
judged), the papers' numbers and torchvision's departures from them, as executable checks with
verdicts on each statement as its source makes it.

    >>> from conformance.claims import evaluate, get_claim
    >>> get_claim("three-3x3-params").evaluate().verdict
    False
    >>> [r.id for r in evaluate() if r.verdict == "conditional"]

Modules: ``claim`` (the record, judges, the agreement rule), ``sections`` (the tutorial's
sections and the statements not judged), ``records`` (cited history), ``exhibits`` (the
tutorial's VGG, Inception and MobileNet, the papers' arithmetic modules, built here outside the
registry), ``tables`` (the tutorial's printed torchsummary tables, ``tutorial_tables/``),
``vggnet`` / ``googlenet`` / ``resnet`` / ``mobilenet`` / ``chapter`` / ``gradients`` (the
tutorial's claims by chapter), ``deviations`` / ``papers`` (torchvision's and the papers'),
``catalogue`` (their order), ``render`` (table, JSON, markdown).
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
