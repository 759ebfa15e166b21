"""The tutorial's VGGNet section: the ILSVRC placing, VGG's three design rules, why 3x3, and its
7x7-versus-three-3x3 example (16 input and 32 output channels on a 32x32 map, bias not counted).

Measured on modules built on meta (the tutorial's VGG class, torchvision's VGG11/13/19, the
paper's configuration C, bias-free conv stacks) and by closed forms (``conformance.formulas``,
the configurations' layer lists); ``agree`` raises if the two routes differ. Its printed
table is judged in ``tables``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

import cnn_models
from cnn_models.vgg import CFGS

from ..formulas import spec_plan
from ..formulas.layers import Tracer, conv2d_out, conv2d_params
from ..layer_table import build_on_meta, meta_inputs
from ._measure import meta_params, receptive_field_by_gradient, torchvision_factory
from .claim import CONDITIONAL, TUTORIAL, Claim, Judgement, agree, exact, fmt
from .exhibits import VGG_C, TutorialVGG, conv_stack, vgg_c_features
from .records import RECORDS, record
from .sections import VGG

__all__ = ["ABOUT", "CLAIMS", "conv_stack_params", "vgg_coefficients"]

GROUP = "tutorial: VGGNet"
ABOUT = 0.1  # "about" a ratio: within +-0.1 of it (about half: 0.4 to 0.6)
IN, OUT, MAP = 16, 32, 32  # the tutorial's example: 16 -> 32 channels on a 32x32 map


def conv_stack_params(channels: Sequence[int], kernel: int) -> int:
    """Weights of a chain of bias-free convs: instantiated, checked against the closed form."""
    inst = meta_params(lambda: conv_stack(channels, kernel))
    closed = sum(conv2d_params(a, b, kernel, bias=False) for a, b in zip(channels, channels[1:], strict=False))
    return int(agree(f"conv stack {list(channels)} {kernel}x{kernel}", inst, closed))


# --- VGG's three rules, measured on Table 1's configurations ------------------------------------------


def _vgg_factories() -> dict[str, Callable[[], nn.Module]]:
    import torchvision.models as tvm

    return {
        "A": torchvision_factory("vgg11"),
        "B": torchvision_factory("vgg13"),
        "C": functools.partial(tvm.VGG, vgg_c_features()),
        "D (the tutorial's VGG)": TutorialVGG,
        "E": torchvision_factory("vgg19"),
    }


def _closed_cfg(letter: str) -> list[tuple[int, int] | str]:
    """(width, kernel) per conv and "M" per pool, from the configuration's layer list."""
    if letter == "C":
        return [e if isinstance(e, str) else (e[0], e[1]) for e in VGG_C]
    return [e if isinstance(e, str) else (int(e), 3) for e in CFGS[letter]]


@functools.cache
def _layouts() -> dict[str, list[tuple[int, int] | str]]:
    out: dict[str, list[tuple[int, int] | str]] = {}
    for label, factory in _vgg_factories().items():
        model: Any = build_on_meta(factory)
        inst: list[tuple[int, int] | str] = [
            "M" if isinstance(m, nn.MaxPool2d) else (m.out_channels, m.kernel_size[0])
            for m in model.features if isinstance(m, (nn.MaxPool2d, nn.Conv2d))
        ]
        out[label] = agree(f"VGG configuration {label} layout", inst, _closed_cfg(label[0]))
    return out


def _stages(layout: list[tuple[int, int] | str]) -> list[list[tuple[int, int]]]:
    stages: list[list[tuple[int, int]]] = [[]]
    for entry in layout:
        if isinstance(entry, str):
            stages.append([])
        else:
            stages[-1].append(entry)
    if stages[-1]:
        raise ValueError(f"a VGG layout ends with a conv, not a pool: {layout}")
    return stages[:-1]


def _kernels() -> dict[str, list[int]]:
    return {label: sorted({e[1] for e in layout if not isinstance(e, str)}) for label, layout in _layouts().items()}


def _per_config(ok: dict[str, bool], what: str, fix: str) -> Judgement:
    good = [k for k, v in ok.items() if v]
    bad = [k for k, v in ok.items() if not v]
    if not bad:
        return Judgement(True)
    if not good:
        return Judgement(False, f"no configuration of Table 1 has {what}", fix)
    return Judgement(CONDITIONAL, f"configurations {', '.join(good)} have {what}; {', '.join(bad)} not", fix)


def _kernels_judge(claimed: list[int], measured: dict[str, list[int]]) -> Judgement:
    ok = {k[0]: v == claimed for k, v in measured.items()}
    other = {k[0]: v for k, v in measured.items() if v != claimed}
    return _per_config(
        ok, f"only {', '.join(f'{k}x{k}' for k in claimed)} filters",
        "for " + ", ".join(k for k, v in ok.items() if v) + " (VGG11/13/16/19); "
        + "; ".join(f"{k} also uses {', '.join(f'{s}x{s}' for s in v if s not in claimed)} convs"
                    for k, v in other.items()),
    )


def _stage_counts() -> dict[str, dict[str, list[int]]]:
    out = {}
    for label, layout in _layouts().items():
        stages = _stages(layout)
        out[label[0]] = {"convs": [len(s) for s in stages], "widths": [len({w for w, _ in s}) for s in stages]}
    return out


def _stages_judge(claimed: dict[str, int], measured: dict[str, dict[str, list[int]]]) -> Judgement:
    ok = {k: min(v["convs"]) >= claimed["fewest convs per stage"] and max(v["widths"]) <= claimed["widths per stage"]
          for k, v in measured.items()}
    few = {k: v["convs"] for k, v in measured.items() if not ok[k]}
    return _per_config(
        ok, f"stages of at least {claimed['fewest convs per stage']} convs of one width closed by a max pool",
        "for " + ", ".join(k for k, v in ok.items() if v) + "; "
        + "; ".join(f"{k} has {v} convs per stage" for k, v in few.items()),
    )


def _doubling() -> list[float]:
    stages = _stages(_layouts()["D (the tutorial's VGG)"])
    widths = [s[0][0] for s in stages]
    return [w / v for v, w in zip(widths, widths[1:], strict=False)]


def _doubling_judge(claimed: float, measured: list[float]) -> Judgement:
    ok = [r == claimed for r in measured]
    if all(ok):
        return Judgement(True)
    if not any(ok):
        return Judgement(False, f"the width changes by {fmt(measured)} at the pools", fmt(measured))
    kept = [i + 1 for i, good in enumerate(ok) if not good]
    return Judgement(
        CONDITIONAL,
        f"the width doubles after pools {', '.join(str(i + 1) for i, good in enumerate(ok) if good)} "
        f"(64→128→256→512) but not after pool {', '.join(map(str, kept))}, where it stays at 512",
        "up to 512 channels: the fifth stage keeps the fourth's 512 (VGG16's layer list, the tutorial's comment "
        "'512 -> 512')",
    )


def _stage_trace() -> list[str]:
    """'c_in→c_out, h_in→h_out' per stage of the tutorial's VGG, at 224x224."""
    model = build_on_meta(TutorialVGG).eval()
    shapes: list[tuple[int, int]] = []

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        shapes.append((int(out.shape[1]), int(out.shape[2])))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    try:
        with torch.no_grad():
            model(*meta_inputs((3, 224, 224), batch_size=1))
    finally:
        for h in handles:
            h.remove()
    inst = [f"{c0}→{c1}, {h0}→{h1}" for (c0, h0), (c1, h1) in zip([(3, 224), *shapes], shapes, strict=False)]
    plan = spec_plan(cnn_models.get_spec("vgg16"), (3, 224, 224))
    pools = [r.out_shape for r in plan.layers if r.kind == "MaxPool2d"]
    closed = [f"{a[0]}→{b[0]}, {a[1]}→{b[1]}" for a, b in zip([(3, 224, 224), *pools], pools, strict=False)]
    return agree("tutorial VGG stage trace", inst, closed)


# --- why 3x3 -----------------------------------------------------------------------------------------


def _footprint(kernel: int) -> list[list[bool]]:
    """Which input pixels reach one output pixel of a k x k conv (gradient of that pixel, all-one weights)."""
    conv = nn.Conv2d(1, 1, kernel, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    conv(x)[0, 0, 0, 0].backward()
    assert x.grad is not None
    return (x.grad[0, 0] != 0).tolist()


def _has_cross(window: list[list[bool]]) -> bool:
    k = len(window)
    return any(window[i][j] and window[i - 1][j] and window[i + 1][j] and window[i][j - 1] and window[i][j + 1]
               for i in range(1, k - 1) for j in range(1, k - 1))


def _smallest_cross() -> int:
    """Smallest k whose k x k window holds a pixel with its four neighbours (up, down, left, right)."""
    inst = next(k for k in range(1, 8) if _has_cross(_footprint(k)))
    closed = next(k for k in range(1, 8) if k >= 3)  # a pixel and one neighbour on each side: 1 + 2
    return int(agree("smallest kernel holding a centre and its four neighbours", inst, closed))


# --- the 7x7 vs three 3x3 example -------------------------------------------------------------------------


def _trace(channels: Sequence[int], kernel: int) -> list[str]:
    """"(H, W, C)" after each bias-free conv of the chain, unpadded, from a 32x32 map (the tutorial's order)."""
    model = build_on_meta(lambda: conv_stack(channels, kernel)).eval()
    inst = [[MAP, MAP, channels[0]]]

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        inst.append([int(out.shape[2]), int(out.shape[3]), int(out.shape[1])])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(*meta_inputs((channels[0], MAP, MAP), batch_size=1))
    finally:
        for handle in handles:
            handle.remove()
    closed = [[MAP, MAP, channels[0]]]
    for c in channels[1:]:
        size = conv2d_out(closed[-1][0], kernel)
        closed.append([size, size, c])
    agree(f"shape trace of {list(channels)} {kernel}x{kernel}", inst, closed)
    return [f"({h}, {w}, {c})" for h, w, c in inst]


def _three_3x3() -> dict[str, Any]:
    per_conv = [conv_stack_params([a, b], 3) for a, b in ((IN, OUT), (OUT, OUT), (OUT, OUT))]
    total = conv_stack_params([IN, OUT, OUT, OUT], 3)
    agree("16->32->32->32 total vs per conv", total, sum(per_conv))
    return {"16→32→32→32": total, "per conv": per_conv}


def _three_3x3_judge(claimed: int, measured: dict[str, Any]) -> Judgement:
    total, per_conv = measured["16→32→32→32"], measured["per conv"]
    if claimed == total:
        return Judgement(True)
    return Judgement(
        False,
        f"{fmt(claimed)} counts three 16→32 convs, but its own shape trace has the second and third conv "
        f"receive 32 channels: 16→32→32→32 has {' + '.join(fmt(p) for p in per_conv)} = {fmt(total)}",
        f"{fmt(total)} (3·3·16·32 + 2·3·3·32·32)",
    )


def vgg_coefficients() -> dict[str, int]:
    """Weights per C² of three stacked 3x3 C→C convs and of one 7x7 C→C conv."""
    out: dict[str, int] = {}
    for label, chain, kernel in (("three 3x3", 4, 3), ("one 7x7", 2, 7)):
        coeffs = set()
        for c in (8, 16, 64):
            count = conv_stack_params([c] * chain, kernel)
            if count % (c * c):
                raise ValueError(f"{label}: {count} weights at C={c} is not a multiple of C²")
            coeffs.add(count // (c * c))
        if len(coeffs) != 1:
            raise ValueError(f"{label}: weights/C² differs across C: {sorted(coeffs)}")
        out[label] = agree(f"{label} per C²", coeffs.pop(), (chain - 1) * kernel * kernel)
    return out


def _half() -> dict[str, float]:
    stack, single = _three_3x3()["16→32→32→32"], conv_stack_params([IN, OUT], 7)
    c = vgg_coefficients()
    return {"16→32 (the example)": round(stack / single, 3),
            "C→C (27C² / 49C²)": round(c["three 3x3"] / c["one 7x7"], 3)}


def _half_judge(claimed: float, measured: dict[str, float]) -> Judgement:
    example = measured["16→32 (the example)"]
    if abs(example - claimed) <= ABOUT:
        return Judgement(True)
    return Judgement(
        False,
        f"under the stated 16→32 the three 3x3 convs (23,040 weights) have {example:.0%} of the 7x7's (25,088); "
        f"the half comes from the miscounted 13,824",
        f"about {example:.0%} for 16→32; about half ({measured['C→C (27C² / 49C²)']:.0%}) when every conv keeps "
        "the width (C→C), the VGG paper's comparison (Section 2.3)",
    )


def _receptive_fields() -> dict[str, int]:
    out = {}
    for label, chain, kernel in (("one 7x7", 2, 7), ("three 3x3", 4, 3)):
        inst = receptive_field_by_gradient(conv_stack([1] * chain, kernel), channels=1)
        t = Tracer((1, 21, 21))
        for i in range(chain - 1):
            t.conv(f"conv{i}", 1, kernel, bias=False)
        out[label] = agree(f"receptive field of {label}", inst, t.plan.receptive_field)
    return out


def _placing() -> int:
    return int(record("ilsvrc2014-classification")["VGG"])


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "vgg-ilsvrc2014-placing", GROUP, TUTORIAL,
        "VGGNet took second place in the image classification task of ILSVRC 2014.",
        2, _placing, exact(), section=VGG, evidence=RECORDS["ilsvrc2014-classification"].citation,
    ),
    Claim(
        "vgg-3x3-only", GROUP, TUTORIAL,
        "VGGNet uses 3x3 filters only (measured on every configuration of the VGG paper's Table 1).",
        [3], _kernels, _kernels_judge, section=VGG,
    ),
    Claim(
        "vgg-stages", GROUP, TUTORIAL,
        "VGGNet repeats one set: several conv layers of the same channel count, then a max pool.",
        {"fewest convs per stage": 2, "widths per stage": 1}, _stage_counts, _stages_judge, section=VGG,
    ),
    Claim(
        "vgg-channels-double", GROUP, TUTORIAL,
        "VGGNet doubles the output channel count after each max pool (measured on its VGG16).",
        2.0, _doubling, _doubling_judge, section=VGG,
    ),
    Claim(
        "vgg-code-stage-comments", GROUP, TUTORIAL,
        "Its VGG class's comments trace the five stages: channels 3→64, 64→128, 128→256, 256→512, 512→512 and "
        "sizes 224→112→56→28→14→7.",
        ["3→64, 224→112", "64→128, 112→56", "128→256, 56→28", "256→512, 28→14", "512→512, 14→7"],
        _stage_trace, exact(), section=VGG,
    ),
    Claim(
        "3x3-smallest-cross", GROUP, TUTORIAL,
        "3x3 is the smallest filter that takes in the centre and what lies above, below, left and right of it.",
        3, _smallest_cross, exact(), section=VGG,
    ),
    Claim(
        "3x3-stack-same-range", GROUP, TUTORIAL,
        "Repeated 3x3 convs approximate a larger filter: three of them see the same range as one 7x7 conv.",
        {"one 7x7": 7, "three 3x3": 7}, _receptive_fields, exact(), section=VGG,
    ),
    Claim(
        "conv7x7-shape-trace", GROUP, TUTORIAL,
        "One 7x7 conv from 16 to 32 channels takes IN (32, 32, 16) to OUT (26, 26, 32) (H, W, C).",
        ["(32, 32, 16)", "(26, 26, 32)"], lambda: _trace([IN, OUT], 7), exact(), section=VGG,
    ),
    Claim(
        "three-3x3-shape-trace", GROUP, TUTORIAL,
        "Three 3x3 convs take IN (32, 32, 16) → (30, 30, 32) → (28, 28, 32) → OUT (26, 26, 32): the same output "
        "size as the one 7x7 conv.",
        ["(32, 32, 16)", "(30, 30, 32)", "(28, 28, 32)", "(26, 26, 32)"], lambda: _trace([IN, OUT, OUT, OUT], 3),
        exact(),
        section=VGG,
    ),
    Claim(
        "conv7x7-params", GROUP, TUTORIAL,
        "The 7x7 conv from 16 to 32 channels has 7·7·16·32 = 25,088 parameters (bias not counted).",
        25_088, lambda: conv_stack_params([IN, OUT], 7), exact(), section=VGG,
    ),
    Claim(
        "three-3x3-params", GROUP, TUTORIAL,
        "The three 3x3 convs of that trace have 3·3·16·32·3 = 13,824 parameters (bias not counted).",
        13_824, _three_3x3, _three_3x3_judge, section=VGG,
    ),
    Claim(
        "three-3x3-about-half", GROUP, TUTORIAL,
        "Bias aside, the three 3x3 convs see the same range as the 7x7 conv with about half its parameters "
        f"(16 to 32 channels; 'about': within {ABOUT} of the ratio).",
        0.5, _half, _half_judge, section=VGG,
    ),
)
