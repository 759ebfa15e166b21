"""Claims from the tutorial's hand arithmetic: 7x7 vs three 3x3 convs, the naive and reduced
Inception modules, depthwise separable vs standard convs.

Parameter counts here are weights only (the tutorial's and the papers' arithmetic has no
biases), so every exhibit is built with ``bias=False``. Each count is measured on modules
built on meta and by ``conformance.formulas.layers``; ``agree`` raises if they differ.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import torch.nn as nn

from ..formulas.layers import Tracer, conv2d_out, conv2d_params
from ._measure import meta_out_shape, meta_params, meta_spatial_trace, receptive_field_by_gradient
from .claim import CONDITIONAL, Claim, Judged, agree, exact, fmt
from .exhibits import InceptionModule, conv_stack, separable_pair

__all__ = ["CLAIMS", "RATIO_FORMULAS", "RATIO_GRID", "STACK_CASES"]

GROUP = "tutorial arithmetic"
VGG_SECTION = "tutorial, VGGNet (3x3 vs 7x7 arithmetic)"
INCEPTION_SECTION = "tutorial, GoogLeNet (naive vs 1x1-reduced Inception arithmetic)"
MOBILENET_SECTION = "tutorial, MobileNet (depthwise separable convolution arithmetic)"


def _stack_params(channels: list[int], kernel: int) -> int:
    """Weights of a chain of bias-free convs: instantiated, checked against the closed form."""
    inst = meta_params(lambda: conv_stack(channels, kernel))
    closed = sum(conv2d_params(a, b, kernel, bias=False) for a, b in zip(channels, channels[1:], strict=False))
    return int(agree(f"conv stack {channels} {kernel}x{kernel}", inst, closed))


# --- 7x7 vs three 3x3 --------------------------------------------------------------------------


def _conv7x7() -> int:
    return _stack_params([16, 32], 7)


def _three_3x3() -> dict[str, Any]:
    per_conv = [_stack_params([a, b], 3) for a, b in ((16, 32), (32, 32), (32, 32))]
    total = _stack_params([16, 32, 32, 32], 3)
    agree("16->32->32->32 total vs per conv", total, sum(per_conv))
    return {"16→32→32→32": total, "per conv": per_conv}


def _three_3x3_judge(claimed: int, measured: dict[str, Any]) -> Judged:
    total, per_conv = measured["16→32→32→32"], measured["per conv"]
    if claimed == total:
        return True, ""
    return False, (
        f"3·3·16·32·3 counts three 16→32 convs, which cannot be chained (the second and third "
        f"receive 32 channels); the stack 16→32→32→32 has {' + '.join(fmt(p) for p in per_conv)} = {fmt(total)}"
    ), fmt(total)


# (C_in, C_out) cases for "three 3x3 have fewer weights than one 7x7": the first conv changes
# the width (C_in -> C_out -> C_out -> C_out).
STACK_CASES: tuple[tuple[int, int], ...] = ((16, 32), (32, 32), (64, 16), (16, 64))


def _fewer_cases() -> dict[str, list[int]]:
    return {
        f"{ci}→{co}, 3x3 stack vs 7x7": [_stack_params([ci, co, co, co], 3), _stack_params([ci, co], 7)]
        for ci, co in STACK_CASES
    }


def _fewer_judge(claimed: str, measured: dict[str, list[int]]) -> Judged:
    fewer = [case for case, (stack, single) in measured.items() if stack < single]
    more = [case for case in measured if case not in fewer]
    if claimed == "never fewer":
        if not fewer:
            return True, ""
        return False, f"the stack has fewer weights for {', '.join(fewer)}", "fewer where 9·C_out < 20·C_in"
    if claimed != "always fewer":
        raise ValueError(f"claimed must be 'always fewer' or 'never fewer', got {claimed!r}")
    if not more:
        return True, ""
    if not fewer:
        return False, f"the stack has more weights in every case measured ({', '.join(more)})", "never fewer"
    worst = more[0]
    return CONDITIONAL, (
        f"with the first conv changing the width, 9·C_in·C_out + 18·C_out² < 49·C_in·C_out only when "
        f"9·C_out < 20·C_in (C→C: 27C² vs 49C²); for {worst.split(',')[0]} the stack has "
        f"{fmt(measured[worst][0])} weights, the 7x7 {fmt(measured[worst][1])}"
    ), "when 9·C_out < 20·C_in"


def _vgg_coefficients() -> dict[str, int]:
    """Weights per C² of three stacked 3x3 C→C convs and of one 7x7 C→C conv."""
    out: dict[str, int] = {}
    for label, chain, kernel in (("three 3x3", 4, 3), ("one 7x7", 2, 7)):
        coeffs = set()
        for c in (8, 16, 64):
            count = _stack_params([c] * chain, kernel)
            if count % (c * c):
                raise ValueError(f"{label}: {count} weights at C={c} is not a multiple of C²")
            coeffs.add(count // (c * c))
        if len(coeffs) != 1:
            raise ValueError(f"{label}: weights/C² differs across C: {sorted(coeffs)}")
        out[label] = agree(f"{label} per C²", coeffs.pop(), (chain - 1) * kernel * kernel)
    return out


def _receptive_fields() -> dict[str, int]:
    out = {}
    for label, chain, kernel in (("one 7x7", 2, 7), ("three 3x3", 4, 3)):
        inst = receptive_field_by_gradient(conv_stack([1] * chain, kernel), channels=1)
        t = Tracer((1, 21, 21))
        for i in range(chain - 1):
            t.conv(f"conv{i}", 1, kernel, bias=False)
        out[label] = agree(f"receptive field of {label}", inst, t.plan.receptive_field)
    return out


def _shape_traces() -> dict[str, list[int]]:
    out = {}
    for label, chain, kernel in (("three 3x3", 4, 3), ("one 7x7", 2, 7)):
        inst = meta_spatial_trace(functools.partial(conv_stack, [1] * chain, kernel), (1, 7, 7), (nn.Conv2d,))
        closed = [7]
        for _ in range(chain - 1):
            closed.append(conv2d_out(closed[-1], kernel))
        out[label] = agree(f"shape trace of {label}", inst, closed)
    return out


# --- Inception arithmetic ------------------------------------------------------------------------

IN_CHANNELS, WIDTH, REDUCE = 192, 24, 16  # the tutorial's example: 192 in, 24 per branch, 16 in the reductions


def _inception_plan(reduce: int | None) -> Tracer:
    t = Tracer((IN_CHANNELS, 28, 28))
    branches = []
    for kernel in (1, 3, 5):
        b = t.fork()
        if reduce is not None and kernel > 1:
            b.conv("reduce", reduce, 1, bias=False)
        branches.append(b.conv("conv", WIDTH, kernel, padding=kernel // 2, bias=False))
    pool = t.fork().maxpool("pool", 3, 1, 1)
    branches.append(pool.conv("proj", WIDTH, 1, bias=False) if reduce is not None else pool)
    return t.join_concat(branches)


def _inception_params(reduce: int | None) -> int:
    inst = meta_params(lambda: InceptionModule(IN_CHANNELS, WIDTH, reduce))
    return int(agree(f"Inception module (reduce={reduce}) weights", inst, _inception_plan(reduce).plan.params))


def _inception_channels(reduce: int | None) -> int:
    inst = meta_out_shape(lambda: InceptionModule(IN_CHANNELS, WIDTH, reduce), (IN_CHANNELS, 28, 28))[0]
    return int(agree(f"Inception module (reduce={reduce}) output channels", inst, _inception_plan(reduce).shape[0]))


def _plain_5x5() -> int:
    return _stack_params([IN_CHANNELS, 4 * WIDTH], 5)


# --- depthwise separable ----------------------------------------------------------------------------


def _standard_3_10() -> int:
    return _stack_params([3, 10], 3)


def _separable_3_10() -> dict[str, int]:
    inst = meta_params(lambda: separable_pair(3, 10, 3))
    dw, pw = conv2d_params(3, 3, 3, groups=3, bias=False), conv2d_params(3, 10, 1, bias=False)
    agree("separable 3->10 weights", inst, dw + pw)
    return {"depthwise 3x3": dw, "pointwise 1x1": pw, "total": dw + pw}


# (C_in, C_out, k) at which the ratio separable / standard is measured.
RATIO_GRID: tuple[tuple[int, int, int], ...] = ((3, 10, 3), (32, 64, 3), (32, 64, 5), (512, 512, 3), (8, 1, 7), (1, 1, 1))

# Candidate closed forms a claim may state for the ratio (Howard et al. 2017, Eq. 5: 1/N + 1/D_K²).
RATIO_FORMULAS = {
    "1/C_out + 1/k²": lambda ci, co, k: Fraction(1, co) + Fraction(1, k * k),
    "1/C_in + 1/k²": lambda ci, co, k: Fraction(1, ci) + Fraction(1, k * k),
    "1/k²": lambda ci, co, k: Fraction(1, k * k),
}


def _ratios() -> dict[str, str]:
    out = {}
    for ci, co, k in RATIO_GRID:
        sep = meta_params(functools.partial(separable_pair, ci, co, k))
        std = _stack_params([ci, co], k)
        closed = conv2d_params(ci, ci, k, groups=ci, bias=False) + conv2d_params(ci, co, 1, bias=False)
        agree(f"separable {ci}->{co} {k}x{k} weights", sep, closed)
        ratio = Fraction(sep, std)
        out[f"{ci}→{co}, {k}x{k}"] = f"{ratio.numerator}/{ratio.denominator}"
    return out


def _ratio_judge(claimed: str, measured: dict[str, str]) -> Judged:
    formula = RATIO_FORMULAS[claimed]
    wrong = [
        f"{label}: {value}, not {formula(*cfg)}"
        for cfg, (label, value) in zip(RATIO_GRID, measured.items(), strict=True)
        if Fraction(value) != formula(*cfg)
    ]
    if not wrong:
        return True, ""
    return False, f"{len(wrong)} of {len(RATIO_GRID)} configurations differ ({wrong[0]})", "1/C_out + 1/k²"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "conv7x7-params", GROUP, VGG_SECTION,
        "A 7x7 conv from 16 to 32 channels has 7·7·16·32 = 25,088 weights.",
        25_088, _conv7x7, exact(),
    ),
    Claim(
        "three-3x3-params", GROUP, VGG_SECTION,
        "Three 3x3 convs replacing that 7x7 conv (16 to 32 channels) have 3·3·16·32·3 = 13,824 weights.",
        13_824, _three_3x3, _three_3x3_judge,
    ),
    Claim(
        "three-3x3-fewer-weights", GROUP, VGG_SECTION,
        "A stack of three 3x3 convs has fewer weights than one 7x7 conv with the same input and output channels.",
        "always fewer", _fewer_cases, _fewer_judge,
    ),
    Claim(
        "vgg-27c2-vs-49c2", GROUP, "Simonyan & Zisserman 2015 (VGG), Section 2.3",
        "Three stacked 3x3 conv layers of C channels have 3(3²C²) = 27C² weights, a single 7x7 layer 7²C² = 49C².",
        {"three 3x3": 27, "one 7x7": 49}, _vgg_coefficients, exact(),
    ),
    Claim(
        "receptive-field-7", GROUP, f"{VGG_SECTION}; Simonyan & Zisserman 2015, Section 2.3",
        "Three stacked 3x3 convs (stride 1) see the same 7x7 input window as one 7x7 conv.",
        {"one 7x7": 7, "three 3x3": 7}, _receptive_fields, exact(),
    ),
    Claim(
        "shape-trace-7x7", GROUP, VGG_SECTION,
        "On a 7x7 input, unpadded 3x3 convs trace 7→5→3→1, ending where one 7x7 conv does (7→1).",
        {"three 3x3": [7, 5, 3, 1], "one 7x7": [7, 1]}, _shape_traces, exact(),
    ),
    Claim(
        "naive-inception-params", GROUP, INCEPTION_SECTION,
        "A naive Inception module on 192 channels with 24 1x1, 24 3x3 and 24 5x5 filters has "
        "192·24·(1 + 9 + 25) = 161,280 weights.",
        161_280, lambda: _inception_params(None), exact(),
    ),
    Claim(
        "naive-inception-channels", GROUP, INCEPTION_SECTION,
        "The naive module outputs 3·24 + 192 = 264 channels: its max-pool branch passes all 192 input channels through.",
        264, lambda: _inception_channels(None), exact(),
    ),
    Claim(
        "reduced-inception-params", GROUP, INCEPTION_SECTION,
        "With 1x1 reductions to 16 before the 3x3 and 5x5 convs and a 24-filter 1x1 after the pool, "
        "the module has 28,416 weights.",
        28_416, lambda: _inception_params(REDUCE), exact(),
    ),
    Claim(
        "reduced-inception-channels", GROUP, INCEPTION_SECTION,
        "The reduced module outputs 4·24 = 96 channels.",
        96, lambda: _inception_channels(REDUCE), exact(),
    ),
    Claim(
        "plain-5x5-params", GROUP, INCEPTION_SECTION,
        "A plain 5x5 conv from 192 to 96 channels (the reduced module's output width) has 5·5·192·96 = 460,800 weights.",
        460_800, _plain_5x5, exact(),
    ),
    Claim(
        "standard-conv-3-10", GROUP, MOBILENET_SECTION,
        "A standard 3x3 conv from 3 to 10 channels has 3·3·3·10 = 270 weights.",
        270, _standard_3_10, exact(),
    ),
    Claim(
        "separable-conv-3-10", GROUP, MOBILENET_SECTION,
        "Its depthwise separable replacement has 3·3·3 = 27 depthwise plus 3·10 = 30 pointwise weights: 57.",
        {"depthwise 3x3": 27, "pointwise 1x1": 30, "total": 57}, _separable_3_10, exact(),
    ),
    Claim(
        "separable-ratio", f"{GROUP}", f"{MOBILENET_SECTION}; Howard et al. 2017 (MobileNets), Eq. 5",
        "Depthwise separable over standard conv weights (and, at stride 1 with 'same' padding, "
        "mult-adds) is 1/C_out + 1/k².",
        "1/C_out + 1/k²", _ratios, _ratio_judge,
    ),
)
