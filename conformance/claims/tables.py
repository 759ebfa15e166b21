"""The four torchsummary tables the tutorial prints, and the claims that its models print them.

The tables are stored as the tutorial publishes them (``tutorial_tables/*.txt``: one line each,
whitespace runs collapsed to one space). Each is parsed into its rows (label, output shape,
``Param #``), its three parameter totals and its four MB lines; those are the claimed values.
The measured values are what the exhibit prints: ``conformance.summary_table.summarize``
(torchsummary 1.5.1's table computed on meta, held equal to torchsummary itself by
tests/test_summary_table.py) for the tutorial's VGG and MobileNet classes
(``exhibits.TutorialVGG``, ``exhibits.TutorialMobileNet``) and torchvision's ResNet-18/50 (the
listing the tutorial reproduces, as it says).

Second route: the closed form (``conformance.formulas``) fixes every parametric row (Conv2d,
BatchNorm2d, Linear: kind, parameters, output shape), the parameter totals and the params MB
line; the non-parametric rows (ReLU, pools, Block / BasicBlock / Bottleneck) and the
forward/backward line come from the instantiated route only, which the tests hold to
torchsummary's own output.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

import cnn_models

from ..formulas import spec_plan
from ..formulas.layers import Plan
from ..summary_table import BYTES_PER_NUMBER, MB, Summary, summarize
from ._measure import torchvision_factory
from .claim import TUTORIAL, Claim, ClaimError, Judgement, agree, fmt
from .exhibits import TutorialMobileNet, TutorialVGG, tutorial_mobilenet_plan
from .sections import MOBILENET_COMPARISON, RESNET_VARIANTS, VGG

__all__ = ["CLAIMS", "TABLES", "PrintedTable", "TutorialTable", "collapse", "parse", "printed", "row_parts", "table"]

GROUP = "the tutorial's printed tables"
SIZE = (3, 224, 224)
TABLE_DIR = Path(__file__).with_name("tutorial_tables")

TOTALS = ("Total params", "Trainable params", "Non-trainable params")
MB_LINES = ("Input size (MB)", "Forward/backward pass size (MB)", "Params size (MB)", "Estimated Total Size (MB)")
_ROW = re.compile(r"(\w+-\d+) (\[[-\d, ]*\]) ([\d,]+)")
PARAMETRIC = ("Conv2d", "BatchNorm2d", "Linear")


def collapse(text: str) -> str:
    """``text`` with every run of whitespace made one space, as the tutorial's text prints a table."""
    return " ".join(text.split())


@dataclass(frozen=True)
class PrintedTable:
    rows: tuple[str, ...]  # "Conv2d-1 [-1, 64, 224, 224] 1,792"
    totals: dict[str, int]
    mb: dict[str, float]


def parse(text: str) -> PrintedTable:
    """Rows, totals and MB lines of a torchsummary table (collapsed or not); ValueError naming
    what is missing."""
    flat = collapse(text)
    body = flat.split(" Total params:")[0]
    rows = tuple(" ".join(m.groups()) for m in _ROW.finditer(body))
    if not rows:
        raise ValueError(f"no 'Label-N [shape] count' row in the table text: {flat[:120]!r}")
    totals, mb = {}, {}
    for key in TOTALS:
        m = re.search(rf"(?<![\w-]){re.escape(key)}: ([\d,]+)", flat)
        if m is None:
            raise ValueError(f"no '{key}:' line in the table text")
        totals[key] = int(m.group(1).replace(",", ""))
    for key in MB_LINES:
        m = re.search(rf"{re.escape(key)}: ([\d.]+)", flat)
        if m is None:
            raise ValueError(f"no '{key}:' line in the table text")
        mb[key] = float(m.group(1))
    return PrintedTable(rows, totals, mb)


def row_parts(row: str) -> tuple[str, list[int], int]:
    m = _ROW.fullmatch(row)
    if m is None:
        raise ValueError(f"not a table row: {row!r}")
    label, shape, count = m.groups()
    return label.rsplit("-", 1)[0], [int(d) for d in shape[1:-1].split(", ")], int(count.replace(",", ""))


@dataclass(frozen=True)
class TutorialTable:
    name: str  # the file under tutorial_tables/
    model: str  # what the tutorial summarises, in words
    section: str
    factory: Callable[[], nn.Module]
    plan: Callable[[], Plan]  # closed form of the same model


def _spec_plan(name: str) -> Callable[[], Plan]:
    return lambda: spec_plan(cnn_models.get_spec(name), SIZE)


TABLES: tuple[TutorialTable, ...] = (
    TutorialTable("vgg16", "its VGG class (configuration D)", VGG, TutorialVGG, _spec_plan("vgg16")),
    TutorialTable("resnet18", "ResNet(BasicBlock, [2, 2, 2, 2]) of its torchvision listing", RESNET_VARIANTS,
                  torchvision_factory("resnet18"), _spec_plan("resnet18")),
    TutorialTable("resnet50", "ResNet(Bottleneck, [3, 4, 6, 3]) of its torchvision listing", RESNET_VARIANTS,
                  torchvision_factory("resnet50"), _spec_plan("resnet50")),
    TutorialTable("mobilenet", "its MobileNet class", MOBILENET_COMPARISON, TutorialMobileNet, tutorial_mobilenet_plan),
)


def table(name: str) -> TutorialTable:
    for t in TABLES:
        if t.name == name:
            return t
    raise KeyError(f"no tutorial table {name!r}; known: {', '.join(t.name for t in TABLES)}")


def printed(name: str) -> PrintedTable:
    """The table the tutorial prints for ``name``, parsed from ``tutorial_tables/<name>.txt``."""
    path = TABLE_DIR / f"{table(name).name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClaimError(f"the tutorial's {name} table: cannot read {path} ({exc.strerror or exc})") from None
    return parse(text)


@functools.cache
def _summary(name: str) -> Summary:
    """The exhibit's torchsummary table (on meta), checked row by row against the closed form."""
    t = table(name)
    s = summarize(t.factory, SIZE)
    inst = [(r.label.rsplit("-", 1)[0], r.params, list(r.output_shape[1:])) for r in s.rows
            if r.label.rsplit("-", 1)[0] in PARAMETRIC]
    closed = [(r.kind, r.params, list(r.out_shape)) for r in t.plan().layers if r.kind in PARAMETRIC]
    agree(f"{name}: parametric rows of the summary vs the closed form", inst, closed)
    return s


def _rows(name: str) -> list[str]:
    return list(parse(_summary(name).render()).rows)


def _totals(name: str) -> dict[str, int]:
    inst = parse(_summary(name).render()).totals
    params = table(name).plan().params
    closed = {TOTALS[0]: params, TOTALS[1]: params, TOTALS[2]: 0}
    return agree(f"{name}: parameter totals vs the closed form", inst, closed)


def _mb(name: str) -> dict[str, float]:
    inst = parse(_summary(name).render()).mb
    params = table(name).plan().params
    agree(f"{name}: params MB vs the closed form", inst[MB_LINES[2]], round(params * BYTES_PER_NUMBER / MB, 2))
    agree(f"{name}: input MB vs the input size", inst[MB_LINES[0]], round(math.prod(SIZE) * BYTES_PER_NUMBER / MB, 2))
    return inst


def _rows_judge(claimed: list[str], measured: list[str]) -> Judgement:
    if claimed == measured:
        return Judgement(True)
    for i, (want, got) in enumerate(zip(claimed, measured, strict=False)):
        if want != got:
            return Judgement(False, f"row {i + 1} prints {got!r}, the tutorial {want!r}", f"row {i + 1}: {got}")
    return Judgement(
        False, f"{len(measured)} rows printed, the tutorial shows {len(claimed)}", f"{len(measured)} rows"
    )


def _dict_judge(claimed: dict[str, Any], measured: dict[str, Any]) -> Judgement:
    wrong = [f"{k}: {fmt(measured[k])}, not {fmt(v)}" for k, v in claimed.items() if measured.get(k) != v]
    if not wrong and claimed.keys() == measured.keys():
        return Judgement(True)
    why = "; ".join(wrong) or f"lines {sorted(measured)}, not {sorted(claimed)}"
    return Judgement(False, why, fmt(measured))


def _table_claims(t: TutorialTable) -> tuple[Claim, ...]:
    shown = printed(t.name)
    return (
        Claim(
            f"table-{t.name}-rows", GROUP, TUTORIAL,
            f"torchsummary at (3, 224, 224) prints these {len(shown.rows)} rows for {t.model} "
            "(layer, output shape, parameter count).",
            list(shown.rows), lambda: _rows(t.name), _rows_judge, section=t.section,
        ),
        Claim(
            f"table-{t.name}-params", GROUP, TUTORIAL,
            f"Its table for {t.model} totals {shown.totals[TOTALS[0]]:,} parameters, all trainable.",
            shown.totals, lambda: _totals(t.name), _dict_judge, section=t.section,
        ),
        Claim(
            f"table-{t.name}-mb", GROUP, TUTORIAL,
            f"Its table for {t.model} estimates {shown.mb[MB_LINES[3]]} MB in total: input {shown.mb[MB_LINES[0]]}, "
            f"forward/backward pass {shown.mb[MB_LINES[1]]}, params {shown.mb[MB_LINES[2]]}.",
            shown.mb, lambda: _mb(t.name), _dict_judge, section=t.section,
        ),
    )


CLAIMS: tuple[Claim, ...] = tuple(c for t in TABLES for c in _table_claims(t))
