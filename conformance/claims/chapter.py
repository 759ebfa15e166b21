"""Claims about the whole chapter: the years its headings give the four models (from the papers'
arXiv identifiers) and its closing remark that CNNs developed while cutting parameters (one model
per paper of the chapter, in the order of the papers, as the papers define them: registered specs,
on meta and by closed form; for ResNet the smallest the tutorial prints, ResNet-18).
"""

from __future__ import annotations

from .claim import CONDITIONAL, TUTORIAL, Claim, Judgement, exact, fmt
from .mobilenet import chapter_params
from .records import RECORDS, record
from .sections import CLOSING, INTRODUCTION

__all__ = ["CLAIMS", "YEARS"]

GROUP = "tutorial: the chapter"
YEARS = {"VGG16": 2014, "GoogLeNet": 2014, "ResNet-18": 2015, "MobileNet": 2017}


def _years() -> dict[str, int]:
    return {model: 2000 + int(arxiv[:2]) for model, arxiv in record("arxiv-ids").items()}


def _course() -> dict[str, int]:
    params = chapter_params()
    return {f"{name} ({YEARS[name]})": params[name] for name in sorted(YEARS, key=YEARS.__getitem__)}


def _course_judge(claimed: str, measured: dict[str, int]) -> Judgement:
    values = list(measured.values())
    if claimed == "falling":
        step = all(b <= a for a, b in zip(values, values[1:], strict=False))
        overall = values[-1] < values[0]
    elif claimed == "rising":
        step = all(b >= a for a, b in zip(values, values[1:], strict=False))
        overall = values[-1] > values[0]
    else:
        raise ValueError(f"claimed must be 'falling' or 'rising', got {claimed!r}")
    if step:
        return Judgement(True)
    names = list(measured)
    ups = [f"{names[i + 1]} {fmt(values[i + 1])} after {names[i]} {fmt(values[i])}"
           for i in range(len(values) - 1) if (values[i + 1] > values[i]) == (claimed == "falling")]
    if not overall:
        return Judgement(False, f"parameters along the chapter: {fmt(measured)}", "not " + claimed)
    return Judgement(
        CONDITIONAL,
        f"from {names[0]} to {names[-1]} the parameters fall {values[0] / values[-1]:.0f}x, but not step by step: "
        + "; ".join(ups),
        f"from the first model to the last ({fmt(values[0])} to {fmt(values[-1])}), not at every step",
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "model-years", GROUP, TUTORIAL,
        "Its headings date the four models: VGGNet 2014, GoogLeNet / Inception 2014, ResNet 2015, MobileNet 2017.",
        {"VGGNet": 2014, "GoogLeNet": 2014, "ResNet": 2015, "MobileNet": 2017}, _years, exact(),
        section=INTRODUCTION, evidence=RECORDS["arxiv-ids"].citation,
    ),
    Claim(
        "parameters-fall-along-chapter", GROUP, TUTORIAL,
        "Along this course, CNNs developed while cutting their parameters (one model per paper of the chapter, "
        "by year; ResNet-18 for ResNet).",
        "falling", _course, _course_judge, section=CLOSING,
    ),
)
