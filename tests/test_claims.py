"""The claims catalogue (conformance/claims): every claim's measured value recomputed here
independently of the catalogue's code and of the claimed value, its verdict, and the verdict
flipping when the claimed value is mutated; the agreement rule; the renderers, docs/claims.md
and the CLI module.

Independent sources: closed forms written out in this file (conv ``k²·C_in·C_out``, output
size ``(H + 2p - k) // s + 1``, receptive field ``1 + Σ(k - 1)``), torchvision's weights meta
(``num_params``, ``_ops``) read live, the papers' tables and text (each value names its place),
He et al. 2015's variance law, and the tutorial's printed tables (tutorial_tables/*.txt) parsed
here with this file's own patterns.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision
from hypothesis import given
from hypothesis import strategies as st

from cnn_models.googlenet import INCEPTION_WIDTHS
from conformance.claims import (
    CLAIMS,
    CONDITIONAL,
    Claim,
    ClaimError,
    evaluate,
    get_claim,
    render_json,
    render_markdown,
    render_table,
)
from conformance.claims.claim import agree, exact
from conformance.claims.exhibits import (
    ConvMobileNet,
    TutorialInception,
    TutorialMobileNet,
    conv_mobilenet_plan,
    conv_stack,
    separable_pair,
    tutorial_inception_plan,
    tutorial_mobilenet_plan,
)
from conformance.commands import claims as claims_command
from conformance.errors import UsageError
from conformance.layer_table import build_on_meta, layer_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "claims.md"
TABLES = ROOT / "conformance" / "claims" / "tutorial_tables"  # the tutorial's printed tables

# MobileNet v1 body, Howard et al. 2017 Table 1: (pointwise out, depthwise stride) after a 32-channel stem.
TABLE1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def tv_params(name: str) -> int:
    return int(torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"])


def tv_macs(name: str) -> float:
    return float(torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]) * 1e9


def out_size(h: int, k: int, s: int = 1, p: int = 0) -> int:
    return (h + 2 * p - k) // s + 1


def mobilenet_by_hand(*, stem_stride: int, stem_pad: int, head: str) -> tuple[int, int, list[int]]:
    """(params, mult-adds, map sizes) of a MobileNet v1 body with BN, written out layer by layer."""
    h = out_size(224, 3, stem_stride, stem_pad)
    params, macs, maps = 27 * 32 + 2 * 32, 27 * 32 * h * h, [h]
    c = 32
    for out, s in TABLE1_BLOCKS:
        h = out_size(h, 3, s, 1)
        params += 9 * c + 2 * c + c * out + 2 * out
        macs += (9 * c + c * out) * h * h
        if h != maps[-1]:
            maps.append(h)
        c = out
    if head == "tutorial":  # AvgPool2d(2) then Linear(7*7*1024, 1000)
        h //= 2
        maps.append(h)
        params += h * h * c * 1000 + 1000
        macs += h * h * c * 1000
    else:  # global average pool then Linear(1024, 1000)
        params += c * 1000 + 1000
        macs += c * 1000
    return params, macs, maps


def conv_mobilenet_by_hand() -> tuple[int, int, int]:
    """(params, mult-adds, FC mult-adds) of Table 4's Conv MobileNet (full 3x3 convs + BN)."""
    h, c = 112, 32
    params, macs = 27 * 32 + 64, 27 * 32 * h * h
    for out, s in TABLE1_BLOCKS:
        h = out_size(h, 3, s, 1)
        params += 9 * c * out + 2 * out
        macs += 9 * c * out * h * h
        c = out
    return params + 1024 * 1000 + 1000, macs + 1024 * 1000, 1024 * 1000


def vgg16_rows_by_hand() -> int:
    """Sum of torchsummary's printed output sizes for torchvision's VGG16 at 224 (per sample)."""
    total, h, c = 0, 224, 3
    for entry in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if entry == "M":
            h //= 2
            total += c * h * h  # MaxPool2d row
        else:
            c = entry
            total += 2 * c * h * h  # Conv2d and ReLU rows
    total += 512 * 7 * 7  # AdaptiveAvgPool2d row
    total += 6 * 4096 + 1000  # Linear, ReLU, Dropout (x2), Linear
    return total


def close_log(got: float, want: float, factor: float) -> bool:
    return abs(math.log(got) - math.log(want)) <= math.log(factor)


# --- one case per claim ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    expected: Any  # the measured value, computed here; or a callable asserting on it
    verdict: Any
    mutated: Any  # a claimed value that must flip the verdict
    mutated_verdict: Any


def _he_law(measured: dict[str, Any]) -> None:
    # torchvision resnet18: 20 convs (stem, 16 in blocks, 3 downsample 1x1); C_in != C_out at the
    # stem and at each of layer2..4's first conv1 and downsample: 7.
    assert measured == {"law": "fan_out", "convs": 20, "convs with C_in ≠ C_out": 7}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        w = torchvision.models.resnet18().layer2[0].conv1.weight.detach().double()  # 64 -> 128, 3x3
    ratio = float(w.pow(2).mean()) / (2 / (128 * 9))  # He 2015 Eq. 14 (fan_out); fan_in would be 2/576
    assert abs(ratio - 1) < 0.05, ratio


def _resnet50_macs(measured: dict[str, int]) -> None:
    v1, v15 = measured.values()
    assert abs(v15 - tv_macs("resnet50")) <= 0.0005e9  # torchvision publishes v1.5's MACs
    # v1 runs each downsampling block's first 1x1 on the strided map: a quarter of its MACs
    first_1x1 = 256 * 128 * 56 * 56 + 512 * 256 * 28 * 28 + 1024 * 512 * 14 * 14
    assert abs(v1 - (tv_macs("resnet50") - 3 * first_1x1 // 4)) <= 0.0005e9


def _vgg_pool(measured: dict[str, Any]) -> None:
    assert measured == {
        "layer before the classifier": "AdaptiveAvgPool2d((7, 7))",
        "maps reaching it at 224x224": [224 // 32, 224 // 32],
        "identity there": True,
        "output at 64x64": [1000],
        "features at 64x64 without it": 512 * (64 // 32) ** 2,
    }


def _savings(measured: dict[str, Any]) -> None:
    # standard / separable 3x3 mult-adds = 9·C_in·C_out / (9·C_in + C_in·C_out) = 9·C_out / (9 + C_out)
    want = [9 * co / (9 + co) for co, _ in TABLE1_BLOCKS]
    assert measured["per block"] == pytest.approx(want, abs=0.005)
    conv_macs = conv_mobilenet_by_hand()[1]
    assert measured["whole network"] == pytest.approx(
        conv_macs / mobilenet_by_hand(stem_stride=2, stem_pad=1, head="global")[1], abs=0.005)


def _table2(measured: dict[str, list[float]]) -> None:
    macs = mobilenet_by_hand(stem_stride=2, stem_pad=1, head="global")[1]
    dw_macs = pw_macs = dw_w = pw_w = 0
    h, c = 112, 32
    for out, s in TABLE1_BLOCKS:
        h = out_size(h, 3, s, 1)
        dw_macs, pw_macs = dw_macs + 9 * c * h * h, pw_macs + c * out * h * h
        dw_w, pw_w = dw_w + 9 * c, pw_w + c * out
        c = out
    stem_w, fc_w = 27 * 32, 1024 * 1000
    stem_macs = stem_w * 112 * 112
    weights = stem_w + dw_w + pw_w + fc_w
    assert macs == stem_macs + dw_macs + pw_macs + fc_w
    want = {
        "Conv 1x1": [pw_macs / macs, pw_w / weights],
        "Conv DW 3x3": [dw_macs / macs, dw_w / weights],
        "Conv 3x3": [stem_macs / macs, stem_w / weights],
        "Fully Connected": [fc_w / macs, fc_w / weights],
    }
    assert measured == {k: [round(100 * v, 2) for v in pair] for k, pair in want.items()}


def _conv(ci: int, co: int, k: int) -> int:
    return k * k * ci * co + co  # a conv with bias


def _vgg_c_params() -> int:
    layers = [(3, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3), (256, 256, 3), (256, 256, 1),
              (256, 512, 3), (512, 512, 3), (512, 512, 1), (512, 512, 3), (512, 512, 3), (512, 512, 1)]  # fmt: skip
    return sum(_conv(*x) for x in layers) + 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000


def _googlenet_paper_params() -> int:
    """Szegedy et al. 2015, Table 1: biased convs, 5x5 in branch 3, no BN, no auxiliary heads."""
    total, ci = _conv(3, 64, 7) + _conv(64, 64, 1) + _conv(64, 192, 3), 192
    for c1, r3, c3, r5, c5, pp in INCEPTION_WIDTHS.values():
        total += (_conv(ci, c1, 1) + _conv(ci, r3, 1) + _conv(r3, c3, 3) + _conv(ci, r5, 1) + _conv(r5, c5, 5)
                  + _conv(ci, pp, 1))
        ci = c1 + c3 + c5 + pp
    return total + 1024 * 1000 + 1000


def _naive_init(measured: dict[str, float]) -> None:
    # He et al. 2015: each ReLU conv layer multiplies E[y²] by ½·k²·C·Var[w]: N(0,1) over He = 4.5·C
    for direction in ("forward", "backward"):
        assert close_log(measured[f"no BN, {direction}"], 4.5 * 32, 1.15), measured
        assert measured[f"BN, {direction}"] == pytest.approx(1.0, abs=0.01), measured  # BN cancels the scale


def _scales(measured: dict[str, float]) -> None:
    # ½·k²·C·Var[w] per layer (C = 32, k = 3): He 1, Xavier (C_in = C_out) ½, N(0, 1) 4.5·C
    want = {"He, N(0, 2/fan_in)": 1.0, "Xavier (Glorot), N(0, 2/(fan_in + fan_out))": 0.5, "N(0, 1)": 4.5 * 32}
    assert measured.keys() == want.keys()
    for key, value in want.items():
        assert close_log(measured[key], value, 1.15), (key, measured[key], value)


def _jacobian(measured: dict[str, float]) -> None:
    pre, post = measured.values()
    assert pre == 1.0
    assert 0 < post < 1
    # independently: a fresh BasicBlock's Jacobian rows vanish where its output is <= 0 (final ReLU)
    from torchvision.models.resnet import BasicBlock

    gen = torch.Generator().manual_seed(3)
    block = BasicBlock(2, 2).double().eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64)
    j = torch.autograd.functional.jacobian(block, x).reshape(18, 18)
    dead = (block(x) <= 0).reshape(-1)
    assert dead.any() and bool((j[dead] == 0).all())


# second-moment factor per conv (ReLU before it): ½·9C·Var[w]; torch default Var = 1/(27C): 1/6
SHORTCUT_WANT = {
    "PyTorch default init, plain, 32 layers": (1 / 6) ** (31 / 2),  # 32 layers: 31 steps, RMS = sqrt
    "PyTorch default init, residual, 16 blocks": (1 + 1 / 36) ** (16 / 2),  # branch of two convs: 1/36
    "He init, plain, 32 layers": 1.0,  # He: 1 per conv
    "He init, residual, 16 blocks": 2.0 ** (16 / 2),  # x + F(x) doubles per block
}


def _shortcut(measured: dict[str, float]) -> None:
    assert measured.keys() == SHORTCUT_WANT.keys()
    for key, value in SHORTCUT_WANT.items():
        assert close_log(measured[key], value, 2.0), (key, measured[key], value)


def _plain(measured: dict[str, float]) -> None:
    assert measured.keys() == {"PyTorch default init", "He init"}
    assert close_log(measured["PyTorch default init"], SHORTCUT_WANT["PyTorch default init, plain, 32 layers"], 2.0)
    assert close_log(measured["He init"], 1.0, 2.0)


def _kaiming(measured: dict[str, float]) -> None:
    # std √(2/fan_in) with fan_in = 128·9, fan_out = 256·9: over √(2/fan_out) that is √2
    assert measured["std / √(2/fan_in)"] == pytest.approx(1.0, abs=0.01)
    assert measured["std / √(2/fan_out)"] == pytest.approx(math.sqrt(2), abs=0.015)


def _printed(name: str) -> dict[str, Any]:
    """The tutorial's table, parsed here (rows, totals, MB lines) with this file's own patterns."""
    text = (TABLES / f"{name}.txt").read_text(encoding="utf-8")
    body, tail = text.split(" Total params: ")
    rows = [" ".join(m) for m in re.findall(r"(\S+-\d+) (\[[^\]]*\]) ([\d,]+)", body)]
    numbers = re.findall(r"[\d,.]+", tail)  # total, trainable, non-trainable, then the four MB lines
    totals = dict(zip(["Total params", "Trainable params", "Non-trainable params"],
                      [int(n.replace(",", "")) for n in numbers[:3]], strict=True))
    mb = dict(zip(["Input size (MB)", "Forward/backward pass size (MB)", "Params size (MB)",
                   "Estimated Total Size (MB)"],
                  [float(n) for n in numbers[3:7]], strict=True))
    return {"rows": rows, "params": totals, "mb": mb}


def _table_cases(name: str, n_rows: int, total: int, mb: dict[str, float]) -> dict[str, Case]:
    shown = _printed(name)
    assert len(shown["rows"]) == n_rows and shown["params"]["Total params"] == total and shown["mb"] == mb
    rows = list(shown["rows"])
    bumped = rows[:-1] + [rows[-1].rsplit(" ", 1)[0] + " 1"]  # the last row's Param # changed
    return {
        f"table-{name}-rows": Case(rows, True, bumped, False),
        f"table-{name}-params": Case(shown["params"], True, {**shown["params"], "Total params": total + 1}, False),
        f"table-{name}-mb": Case(mb, True, {**mb, "Estimated Total Size (MB)": mb["Estimated Total Size (MB)"] + 0.01},
                                 False),
    }


MOBILENET_TUTORIAL = mobilenet_by_hand(stem_stride=1, stem_pad=0, head="tutorial")
MOBILENET_PAPER = mobilenet_by_hand(stem_stride=2, stem_pad=1, head="global")
# the tutorial's MobileNet blocks: separable (9·C + C·C_out) against standard 3x3 (9·C·C_out) weights
_CHANNELS = [32] + [co for co, _ in TABLE1_BLOCKS]
SEPARABLE = sum(9 * c + c * co for c, co in zip(_CHANNELS, _CHANNELS[1:], strict=False))
STANDARD = sum(9 * c * co for c, co in zip(_CHANNELS, _CHANNELS[1:], strict=False))
TUTORIAL_INCEPTION_WEIGHTS = 4 * 192 * 24 + 2 * 9 * 24 * 24  # Inception(192, 24, 24, 24, 24): 1x1s and two 3x3s
REDUCED_INCEPTION = 192 * 24 + (192 * 16 + 9 * 16 * 24) + (192 * 16 + 25 * 16 * 24) + 192 * 24
GOOGLENETS = ("GoogLeNet of the paper (cnn_models)", "torchvision's GoogLeNet")
HE_2015 = "He et al. 2015, 'Delving Deep into Rectifiers' (arXiv:1502.01852)"
BN_2015 = "Ioffe & Szegedy 2015 (arXiv:1502.03167)"

CASES: dict[str, Case] = {
    # VGGNet
    "vgg-ilsvrc2014-placing": Case(2, True, 1, False),  # Simonyan & Zisserman 2015, abstract
    "vgg-3x3-only": Case(  # VGG paper, Table 1: column C has a 1x1 conv in stages 3-5
        {"A": [3], "B": [3], "C": [1, 3], "D (the tutorial's VGG)": [3], "E": [3]}, CONDITIONAL, [5], False,
    ),
    "vgg-stages": Case(
        {"A": {"convs": [1, 1, 2, 2, 2], "widths": [1] * 5}, "B": {"convs": [2] * 5, "widths": [1] * 5},
         "C": {"convs": [2, 2, 3, 3, 3], "widths": [1] * 5}, "D": {"convs": [2, 2, 3, 3, 3], "widths": [1] * 5},
         "E": {"convs": [2, 2, 4, 4, 4], "widths": [1] * 5}},
        CONDITIONAL, {"fewest convs per stage": 1, "widths per stage": 1}, True,
    ),
    "vgg-channels-double": Case([128 / 64, 256 / 128, 512 / 256, 512 / 512], CONDITIONAL, 3.0, False),
    "vgg-code-stage-comments": Case(
        [f"{a}→{b}, {224 >> i}→{224 >> (i + 1)}"
         for i, (a, b) in enumerate(zip((3, 64, 128, 256, 512), (64, 128, 256, 512, 512), strict=True))],
        True, ["3→64, 224→112", "64→128, 112→56", "128→256, 56→28", "256→512, 28→14", "512→1024, 14→7"], False,
    ),
    "3x3-smallest-cross": Case(3, True, 5, False),
    "3x3-stack-same-range": Case({"one 7x7": 1 + 6, "three 3x3": 1 + 3 * 2}, True, {"one 7x7": 7, "three 3x3": 5},
                                 False),
    "conv7x7-shape-trace": Case(
        ["(32, 32, 16)", f"({out_size(32, 7)}, {out_size(32, 7)}, 32)"], True, ["(32, 32, 16)", "(25, 25, 32)"], False,
    ),
    "three-3x3-shape-trace": Case(
        ["(32, 32, 16)"] + [f"({32 - 2 * i}, {32 - 2 * i}, 32)" for i in (1, 2, 3)], True,
        ["(32, 32, 16)", "(30, 30, 16)", "(28, 28, 16)", "(26, 26, 32)"], False,
    ),
    "conv7x7-params": Case(7 * 7 * 16 * 32, True, 13_824, False),
    "three-3x3-params": Case(
        {"16→32→32→32": 9 * 16 * 32 + 2 * 9 * 32 * 32, "per conv": [9 * 16 * 32, 9 * 32 * 32, 9 * 32 * 32]},
        False, 9 * 16 * 32 + 2 * 9 * 32 * 32, True,
    ),
    "three-3x3-about-half": Case(
        {"16→32 (the example)": round((9 * 16 * 32 + 2 * 9 * 32 * 32) / (49 * 16 * 32), 3),
         "C→C (27C² / 49C²)": round(27 / 49, 3)},
        False, 0.9, True,
    ),
    **_table_cases("vgg16", 39, tv_params("vgg16"), {"Input size (MB)": 0.57, "Forward/backward pass size (MB)": 218.78,
                                                     "Params size (MB)": 527.79, "Estimated Total Size (MB)": 747.15}),
    # GoogLeNet / Inception
    "googlenet-ilsvrc2014-winner": Case(1, True, 2, False),  # Szegedy et al. 2015, Table 2
    "googlenet-name": Case("LeNet", True, "AlexNet", False),  # Szegedy et al. 2015, Section 5
    "googlenet-is-inception-v1": Case(
        {"architecture": "Inception", "GoogLeNet": "Inception-v1"}, True,
        {"architecture": "Inception", "GoogLeNet": "Inception-v2"}, False,
    ),
    "googlenet-stacks-modules": Case(dict.fromkeys(GOOGLENETS, 9), True, 10, False),  # Table 1: 3a-b, 4a-e, 5a-b
    "inception-parallel-concat": Case(
        {"conv kernel sizes": [1, 3, 5], "output = branches concatenated": True, "output channels": 64 + 128 + 32 + 32},
        True, {"conv kernel sizes": [1, 3, 5], "output = branches concatenated": True, "output channels": 255}, False,
    ),
    "plain-5x5-params": Case(25 * 192 * 96, True, 25 * 192 * 96 + 96, False),
    "naive-inception-params": Case(192 * 24 * (1 + 9 + 25), True, 192 * 24 * (1 + 9 + 25) + 3 * 24, False),
    "naive-inception-output-96": Case(3 * 24 + 192, False, 3 * 24 + 192, True),
    "naive-vs-plain-5x5": Case(round(192 * 24 * 35 / (25 * 192 * 96), 3), True, 0.3, False),
    "reduced-inception-1x1-first": Case({"branch2": [1, 3], "branch3": [1, 5]}, True,
                                        {"branch2": [1, 3], "branch3": [1, 3]}, False),
    "reduced-inception-params": Case(REDUCED_INCEPTION, True, REDUCED_INCEPTION + 1, False),
    "reduced-inception-output-96": Case(4 * 24, True, 264, False),
    "reduced-vs-naive": Case(round(REDUCED_INCEPTION / (192 * 24 * 35), 3), True, 0.1, False),
    "tutorial-inception-builds-example": Case(
        {"Inception(192, 24, 24, 24, 24): reductions": [24, 24], "branch-3 kernel": 3,
         "weights": TUTORIAL_INCEPTION_WEIGHTS,
         "the paper's module with reductions 16 and a 5x5 conv: weights": REDUCED_INCEPTION},
        False,
        {"Inception(192, 24, 24, 24, 24): reductions": [24, 24], "branch-3 kernel": 3,
         "weights": TUTORIAL_INCEPTION_WEIGHTS},
        True,
    ),
    "tutorial-inception-5x5": Case(1 + (3 - 1), False, 3, True),
    "tutorial-inception-concat": Case([4 * 24, 28, 28], True, [4 * 24 - 1, 28, 28], False),
    "googlenet-gap": Case(dict.fromkeys(GOOGLENETS, [1, 1]), True, dict.fromkeys(GOOGLENETS, [7, 7]), False),
    "gap-replaces-flatten": Case(dict.fromkeys(GOOGLENETS, {"fc inputs": 1024, "with Flatten": 1024 * 7 * 7}), True,
                                 "pixel", False),
    "gap-vs-flatten-op": Case(
        {"AdaptiveAvgPool2d((1, 1)): each map averaged to 1x1": True,
         "Flatten: every pixel, map by map, row by row": True},
        True,
        {"AdaptiveAvgPool2d((1, 1)): each map averaged to 1x1": True,
         "Flatten: every pixel, map by map, row by row": False},
        False,
    ),
    # ResNet
    "deeper-more-accurate": Case(  # He et al. 2016, Table 2, top-1 error (%)
        {"plain-18": 27.94, "plain-34": 28.54, "ResNet-18": 27.88, "ResNet-34": 25.03},
        CONDITIONAL, {"plain": "higher", "residual": "lower"}, True,
    ),
    "residual-proposed-for-vanishing": Case("degradation", False, "degradation", True),  # He et al. 2016, Section 1
    "shortcut-skips-one-conv": Case(  # He et al. 2016, Table 1: two 3x3 per basic block, 1x1-3x3-1x1 per bottleneck
        {"BasicBlock": 2, "Bottleneck": 3, "join": "addition"}, False,
        {"BasicBlock": 2, "Bottleneck": 3, "join": "addition"}, True,
    ),
    "deep-plain-gradients-vanish": Case(_plain, CONDITIONAL, {"PyTorch default init": "vanishes", "He init": "alive"},
                                        True),
    "residual-jacobian": Case(_jacobian, CONDITIONAL, 0.0, False),
    "shortcut-keeps-gradients": Case(_shortcut, CONDITIONAL, {"plain": "alive", "residual": "alive"}, False),
    "bottleneck-fewer-params": Case(
        {"Bottleneck 256→64→64→256": 256 * 64 + 9 * 64 * 64 + 64 * 256, "BasicBlock 256→256→256": 2 * 9 * 256 * 256,
         "BasicBlock 64→64→64 (He et al. Fig. 5, left)": 2 * 9 * 64 * 64},
        True, "not fewer", False,
    ),
    # ResNet-50: 16 blocks; layer1.0 keeps 64 in the middle; the first block of each stage leaves at 4x its middle
    "bottleneck-shape": Case({"blocks": 3 + 4 + 6 + 3, "narrower in the middle": 15,
                              "leaving at the input width": 16 - 4},
                             CONDITIONAL, "not every block", True),
    "he-init-proposed-in-resnet": Case(HE_2015, False, HE_2015, True),
    "weights-used-to-be-n01": Case(  # Krizhevsky et al. 2012, Section 5; VGG paper, Section 3.1 (variance 1e-2)
        {"Krizhevsky et al. 2012": 0.01, "Simonyan & Zisserman 2015": 0.1}, False, 0.01, True,
    ),
    "kaiming-normal-default": Case(_kaiming, True, "fan_out", False),
    "tutorial-resnet-he-init": Case(_he_law, False, "fan_out", True),
    "he-init-best-for-relu": Case(_scales, True, "N(0, 1)", False),
    "bn-proposed-in-resnet": Case(BN_2015, False, BN_2015, True),
    "resnet-up-to-152-layers": Case(
        {"ImageNet (Table 1; torchvision's resnet152)": 1 + 3 * (3 + 8 + 36 + 3) + 1,
         "CIFAR-10 (Section 4.2; 6n + 2, n = 200)": 6 * 200 + 2},
        CONDITIONAL, 1202, True,
    ),
    "resnet-variants": Case(
        {f"resnet{d}": 1 + k * sum(b) + 1
         for d, b, k in ((18, (2, 2, 2, 2), 2), (34, (3, 4, 6, 3), 2), (50, (3, 4, 6, 3), 3),
                         (101, (3, 4, 23, 3), 3), (152, (3, 8, 36, 3), 3))},
        True, {"resnet18": 18, "resnet34": 34, "resnet50": 49, "resnet101": 101, "resnet152": 152}, False,
    ),
    "resnet-listing-is-torchvision": Case(
        {"resnet18": tv_params("resnet18"), "resnet50": tv_params("resnet50")}, True,
        {"resnet18": tv_params("resnet18"), "resnet50": tv_params("resnet50") + 1}, False,
    ),
    "listing-bottleneck-stride": Case(["conv2", "downsample.0"], True, ["conv1", "downsample.0"], False),
    "listing-zero-init-identity": Case({"blocks": 8, "identity at init": 8 - 3}, CONDITIONAL, "not every block", True),
    **_table_cases("resnet18", 68, tv_params("resnet18"),
                   {"Input size (MB)": 0.57, "Forward/backward pass size (MB)": 62.79,
                    "Params size (MB)": 44.59, "Estimated Total Size (MB)": 107.96}),
    **_table_cases("resnet50", 174, tv_params("resnet50"),
                   {"Input size (MB)": 0.57, "Forward/backward pass size (MB)": 286.56,
                    "Params size (MB)": 97.49, "Estimated Total Size (MB)": 384.62}),
    # MobileNet
    "mobilenet-lightweight": Case(
        {"VGG16": tv_params("vgg16"), "GoogLeNet": _googlenet_paper_params(), "ResNet-18": tv_params("resnet18"),
         "ResNet-50": tv_params("resnet50"), "MobileNet": MOBILENET_PAPER[0],
         "the tutorial's MobileNet class": MOBILENET_TUTORIAL[0]},
        True, "GoogLeNet", False,
    ),
    "separable-cuts-params": Case({"separable": SEPARABLE, "standard 3x3": STANDARD,
                                   "ratio": round(SEPARABLE / STANDARD, 3)},
                                  True, 0.1, False),
    "depthwise-per-channel": Case(
        {"filters": 3, "filter shape": [1, 3, 3], "input channels read per output channel": [[0], [1], [2]]}, True,
        {"filters": 3, "filter shape": [3, 3, 3], "input channels read per output channel": [[0, 1, 2]] * 3}, False,
    ),
    "depthwise-output-channels": Case({"blocks": 13, "depthwise output channels = input channels": 13}, True,
                                      "not every block", False),
    "pointwise-channel-mix": Case(
        {"filters": 10, "filter shape": [3, 1, 1], "input channels read per output channel": [[0, 1, 2]] * 10,
         "each output pixel reads only its own pixel": True},
        True,
        {"filters": 10, "filter shape": [3, 1, 1], "input channels read per output channel": [[0, 1, 2]] * 10,
         "each output pixel reads only its own pixel": False},
        False,
    ),
    "standard-conv-3-10": Case(9 * 3 * 10, True, 300, False),
    "separable-conv-3-10": Case({"depthwise 3x3": 27, "pointwise 1x1": 30, "total": 57}, True,
                                {"depthwise 3x3": 27, "pointwise 1x1": 30, "total": 54}, False),
    "tutorial-mobilenet-is-mobilenet": Case(
        {"as written": {"params": MOBILENET_TUTORIAL[0], "mult-adds": MOBILENET_TUTORIAL[1],
                        "fc params": 7 * 7 * 1024 * 1000 + 1000},
         "with a stride-2 padded stem and a global pool": {"params": MOBILENET_PAPER[0],
                                                           "mult-adds": MOBILENET_PAPER[1],
                                                           "fc params": 1024 * 1000 + 1000}},
        False, {"params": 53.4e6, "mult-adds": round(MOBILENET_TUTORIAL[1], -6)}, True,
    ),
    **_table_cases("mobilenet", 69, MOBILENET_TUTORIAL[0],
                   {"Input size (MB)": 0.57, "Forward/backward pass size (MB)": 386.72,
                    "Params size (MB)": 203.64, "Estimated Total Size (MB)": 590.94}),
    # the chapter: arXiv 1409.1556, 1409.4842, 1512.03385, 1704.04861 (YYMM)
    "model-years": Case({"VGGNet": 2014, "GoogLeNet": 2014, "ResNet": 2015, "MobileNet": 2017}, True,
                        {"VGGNet": 2014, "GoogLeNet": 2014, "ResNet": 2016, "MobileNet": 2017}, False),
    "parameters-fall-along-chapter": Case(
        {"VGG16 (2014)": tv_params("vgg16"), "GoogLeNet (2014)": _googlenet_paper_params(),
         "ResNet-18 (2015)": tv_params("resnet18"), "MobileNet (2017)": MOBILENET_PAPER[0]},
        CONDITIONAL, "rising", False,
    ),
    # torchvision against the papers
    "torchvision-googlenet-5x5": Case(
        {"branch-3 kernel": 3, "params": tv_params("googlenet"),
         "params with 5x5": tv_params("googlenet") + (25 - 9) * sum(w[3] * w[4] for w in INCEPTION_WIDTHS.values())},
        False, 3, True,
    ),
    "torchvision-googlenet-bn": Case(3 + 9 * 6, False, 57, True),  # one BN per conv: 3 stem + 6 per module
    "torchvision-resnet-v1.5-stride": Case("conv2 (3x3)", False, "conv2 (3x3)", True),
    "resnet50-gflops": Case(_resnet50_macs, CONDITIONAL, 5e9, False),
    "torchvision-vgg-adaptive-pool": Case(_vgg_pool, CONDITIONAL, "AdaptiveAvgPool2d((7, 7))", True),
    # the papers' own numbers
    "mobilenet-params": Case(MOBILENET_PAPER[0], True, 4.3e6, False),
    "mobilenet-mult-adds": Case(MOBILENET_PAPER[1], True, 570e6, False),
    "mobilenet-8-9x": Case(_savings, CONDITIONAL, [7, 9], True),
    "mobilenet-conv-params": Case(conv_mobilenet_by_hand()[0], True, 29.4e6, False),
    "mobilenet-conv-mult-adds": Case(
        {"with the FC layer": conv_mobilenet_by_hand()[1],
         "without it": conv_mobilenet_by_hand()[1] - conv_mobilenet_by_hand()[2]},
        CONDITIONAL, 4870e6, False,
    ),
    "mobilenet-table2": Case(
        _table2, False,
        {"Conv 1x1": [94.86, 74.59], "Conv DW 3x3": [3.06, 1.06], "Conv 3x3": [1.91, 0.02],
         "Fully Connected": [0.18, 24.33]}, True,
    ),
    "separable-ratio": Case(
        {f"{ci}→{co}, {k}x{k}": "{0.numerator}/{0.denominator}".format(Fraction(k * k * ci + ci * co, k * k * ci * co))
         for ci, co, k in ((3, 10, 3), (32, 64, 3), (32, 64, 5), (512, 512, 3), (8, 1, 7), (1, 1, 1))},
        True, "1/C_in + 1/k²", False,
    ),
    "vgg-27c2-vs-49c2": Case({"three 3x3": 3 * 9, "one 7x7": 49}, True, {"three 3x3": 27, "one 7x7": 27}, False),
    "vgg-table2-params": Case(
        {"A": tv_params("vgg11"), "B": tv_params("vgg13"), "C": _vgg_c_params(), "D": tv_params("vgg16"),
         "E": tv_params("vgg19")},
        True, {"A": 133, "B": 133, "C": 133, "D": 138, "E": 144}, False,
    ),
    "naive-init-explodes": Case(_naive_init, CONDITIONAL, "vanish", False),
}


def test_every_claim_has_an_independent_case() -> None:
    assert sorted(CASES) == sorted(c.id for c in CLAIMS)


@pytest.mark.parametrize("claim_id", sorted(CASES))
def test_claim(claim_id: str) -> None:
    case, claim = CASES[claim_id], get_claim(claim_id)
    result = claim.evaluate()
    if callable(case.expected):
        case.expected(result.measured)
    else:
        assert result.measured == case.expected
    assert result.verdict == case.verdict, result.explanation
    assert (result.verdict is True) or result.explanation  # a non-holding verdict says why
    flipped = claim.evaluate(claimed=case.mutated)
    assert flipped.verdict == case.mutated_verdict != case.verdict, flipped.explanation


# --- the agreement rule and the verdict contract ---------------------------------------------------


def test_agree_raises_naming_both_measurements() -> None:
    with pytest.raises(ClaimError, match=r"widget: instantiated modules give 10,000, the closed form gives 9999"):
        agree("widget", 10_000, 9_999)
    assert agree("widget", {"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-12]}, rel=1e-9) == {"a": [1.0, 2.0]}


def test_a_claim_whose_two_measurements_disagree_raises() -> None:
    broken = Claim("broken", "test", "test", "two routes disagree", 1, lambda: agree("broken count", 2, 3), exact())
    with pytest.raises(ClaimError, match="broken count"):
        broken.evaluate()


def test_a_verdict_without_explanation_is_refused() -> None:
    silent = Claim("silent", "test", "test", "fails silently", 1, lambda: 2, lambda c, m: (False, ""))
    with pytest.raises(ClaimError, match="needs an explanation"):
        silent.evaluate()


def test_a_failing_verdict_needs_a_correction_and_a_holding_one_none() -> None:
    uncorrected = Claim("uncorrected", "test", "test", "fails", 1, lambda: 2, lambda c, m: (False, "two, not one"))
    with pytest.raises(ClaimError, match="and a correction"):
        uncorrected.evaluate()
    corrected = Claim("over", "test", "test", "holds", 1, lambda: 1, lambda c, m: (True, "", "2"))
    with pytest.raises(ClaimError, match="needs no correction"):
        corrected.evaluate()
    result = Claim("fixed", "test", "test", "fails", 1, lambda: 2, exact()).evaluate()
    assert (result.verdict, result.correction) == (False, "2")


def test_only_a_tutorial_claim_has_a_section() -> None:
    with pytest.raises(ValueError, match="names its section"):
        Claim("orphan", "test", "tutorial", "no section", 1, lambda: 1, exact())
    with pytest.raises(ValueError, match="names its section"):
        Claim("credited", "test", "He et al. 2015", "a paper's", 1, lambda: 1, exact(), section="VGGNet (2014)")
    with pytest.raises(ValueError, match="basis must be one of"):
        Claim("basis", "test", "paper", "guessed", 1, lambda: 1, exact(), basis="guessed")  # type: ignore[arg-type]


# --- exhibits: closed forms vs modules, beyond the catalogue's own inputs ----------------------------


def _parametric_rows(factory: Callable[[], nn.Module],
                     size: tuple[int, int, int]) -> list[tuple[str, int, tuple[int, ...]]]:
    return [(r.kind, r.params, r.out_shape) for r in layer_table(factory, size)
            if r.kind in ("Conv2d", "BatchNorm2d", "Linear")]


@given(size=st.integers(min_value=193, max_value=320))
def test_tutorial_mobilenet_plan_matches_the_module_at_any_size(size: int) -> None:
    # the global head accepts any size; the per-layer rows (kind, params, shape) must agree
    plan = tutorial_mobilenet_plan((3, size, size), head="global")
    want = [(r.kind, r.params, r.out_shape) for r in plan.layers if r.kind in ("Conv2d", "BatchNorm2d", "Linear")]
    assert _parametric_rows(lambda: TutorialMobileNet(head="global"), (3, size, size)) == want


def test_tutorial_mobilenet_head_needs_224() -> None:
    with pytest.raises(ValueError, match=r"needs \(1024, 7, 7\)"):
        tutorial_mobilenet_plan((3, 192, 192))


def test_conv_mobilenet_plan_matches_the_module() -> None:
    want = [(r.kind, r.params, r.out_shape) for r in conv_mobilenet_plan().layers
            if r.kind in ("Conv2d", "BatchNorm2d", "Linear")]
    assert _parametric_rows(ConvMobileNet, (3, 224, 224)) == want


@given(
    args=st.tuples(*(st.integers(min_value=1, max_value=48) for _ in range(5))),
    size=st.integers(min_value=1, max_value=12),
)
def test_tutorial_inception_plan_matches_the_module(args: tuple[int, ...], size: int) -> None:
    model = build_on_meta(lambda: TutorialInception(*args))
    plan = tutorial_inception_plan(args, size)
    assert sum(p.numel() for p in model.parameters()) == plan.params
    assert layer_table(lambda: TutorialInception(*args), (args[0], size, size))[-1].out_shape == plan.out_shape
    assert plan.out_shape == (args[1] + args[2] + args[3] + args[4], size, size)  # the appendix's concatenation


@given(c_in=st.integers(1, 64), c_out=st.integers(1, 64), k=st.sampled_from([1, 3, 5, 7]))
def test_separable_ratio_is_one_over_c_out_plus_one_over_k_squared(c_in: int, c_out: int, k: int) -> None:
    """Howard et al. 2017, Eq. 5, over arbitrary channels and kernels (weights, modules on meta)."""
    count = lambda f: sum(p.numel() for p in build_on_meta(f).parameters())  # noqa: E731
    ratio = Fraction(count(lambda: separable_pair(c_in, c_out, k)), count(lambda: conv_stack([c_in, c_out], k)))
    assert ratio == Fraction(1, c_out) + Fraction(1, k * k)


@given(c_in=st.integers(1, 96), c_out=st.integers(1, 96))
def test_three_3x3_beat_one_7x7_iff_9_c_out_below_20_c_in(c_in: int, c_out: int) -> None:
    count = lambda f: sum(p.numel() for p in build_on_meta(f).parameters())  # noqa: E731
    stack = count(lambda: conv_stack([c_in, c_out, c_out, c_out], 3))
    single = count(lambda: conv_stack([c_in, c_out], 7))
    assert (stack < single) == (9 * c_out < 20 * c_in)


# --- renderers, docs/claims.md, CLI --------------------------------------------------------------------


@pytest.fixture(scope="module")
def results() -> list[Any]:
    return evaluate()


def test_json_has_exactly_the_documented_keys(results: list[Any]) -> None:
    data = json.loads(render_json(results))
    assert [d["id"] for d in data] == [c.id for c in CLAIMS]
    for d in data:
        assert list(d) == ["id", "source", "statement", "claimed", "measured", "verdict", "explanation",
                           "section", "basis", "correction", "evidence", "group"]
        assert d["verdict"] in (True, False, "conditional")
        assert d["source"] and d["statement"]


def test_table_lists_every_claim_and_explains_the_rest(results: list[Any]) -> None:
    text = render_table(results)
    for r in results:
        assert r.id in text
        if r.verdict is not True:
            assert r.explanation in text
    assert f"{len(results)} claims:" in text


def test_docs_claims_md_is_current(results: list[Any]) -> None:
    """docs/claims.md is generated; regenerate with `cnn-conformance claims --markdown docs/claims.md`."""
    assert DOCS.read_text(encoding="utf-8") == render_markdown(results)


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    claims_command.add_arguments(parser)
    return claims_command.run(parser.parse_args(list(argv)))


def test_cli_writes_json_and_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "claims.json"
    assert _run_cli("--json", str(path), "--id", "three-3x3-params", "--id", "conv7x7-params") == 0
    out = capsys.readouterr().out
    assert "three-3x3-params" in out and "2 claims: 1 hold, 1 do not hold" in out
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [d["id"] for d in data] == ["conv7x7-params", "three-3x3-params"]  # catalogue order
    assert data[1]["claimed"] == 13_824 and data[1]["verdict"] is False


def test_cli_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli("--json", "-", "--id", "conv7x7-params") == 0
    assert json.loads(capsys.readouterr().out)[0]["measured"] == 25_088


def test_cli_unknown_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--id: no claim 'nope'"):
        _run_cli("--id", "nope")


def test_vgg16_forward_backward_line_by_hand() -> None:
    """torchsummary's rule (|2 · Σ row sizes| · 4 bytes / 1024²) over VGG16's rows written out by
    hand gives the tutorial's printed 218.78 MB."""
    assert round(2 * 4 * vgg16_rows_by_hand() / 2**20, 2) == _printed("vgg16")["mb"]["Forward/backward pass size (MB)"]
