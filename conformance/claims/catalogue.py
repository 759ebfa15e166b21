"""The claims catalogue: every claim, in the order the CLI and docs/claims.md show them.

The tutorial's claims come first, in the order of its sections (``sections.SECTIONS``), from
one module per chapter (``vggnet``, ``googlenet``, ``resnet``, ``mobilenet``, ``chapter``), its
printed tables (``tables``) and the gradient measurements (``gradients``); then torchvision's
departures from the papers (``deviations``) and the papers' claims about their own models
(``papers``, with He et al. 2015's from ``gradients``). A claim id is unique and stable: tests
and the JSON output refer to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import chapter, deviations, googlenet, gradients, mobilenet, papers, resnet, tables, vggnet
from .claim import Claim, Result
from .sections import SECTIONS

__all__ = ["CLAIMS", "evaluate", "get_claim"]

_ALL: tuple[Claim, ...] = (
    *vggnet.CLAIMS, *googlenet.CLAIMS, *resnet.CLAIMS, *mobilenet.CLAIMS, *tables.CLAIMS, *chapter.CLAIMS,
    *deviations.CLAIMS, *papers.CLAIMS, *gradients.CLAIMS,
)
# the tutorial's claims by section (stable within one), then the others in module order
CLAIMS: tuple[Claim, ...] = tuple(sorted(_ALL, key=lambda c: SECTIONS.index(c.section) if c.section else len(SECTIONS)))

_BY_ID = {c.id: c for c in CLAIMS}
if len(_BY_ID) != len(CLAIMS):
    raise RuntimeError("duplicate claim ids in the catalogue")


def get_claim(claim_id: str) -> Claim:
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"no claim {claim_id!r}; known: {', '.join(_BY_ID)}") from None


def evaluate(ids: Iterable[str] | None = None) -> list[Result]:
    """Measure and judge the claims (all, or ``ids`` in catalogue order)."""
    wanted = None if ids is None else {get_claim(i).id for i in ids}
    return [c.evaluate() for c in CLAIMS if wanted is None or c.id in wanted]
