"""The claims catalogue: every claim, in the order the CLI and docs/claims.md show them.

Groups (one module each): the tutorial's hand arithmetic (``arithmetic``), its models and
printed numbers (``tutorial``), torchvision's departures from the papers (``deviations``), the
papers' claims about their own models (``papers``), gradients at initialisation
(``gradients``). A claim id is unique and stable: tests and the JSON output refer to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import arithmetic, deviations, gradients, papers, tutorial
from .claim import Claim, Result

__all__ = ["CLAIMS", "evaluate", "get_claim"]

CLAIMS: tuple[Claim, ...] = (
    *arithmetic.CLAIMS,
    *tutorial.CLAIMS,
    *deviations.CLAIMS,
    *papers.CLAIMS,
    *gradients.CLAIMS,
)

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
