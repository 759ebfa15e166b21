"""The tutorial's MobileNet sections: MobileNet's lightness, depthwise separable convolution and
its two parts, the 3-to-10-channel example (3x3 kernels, bias excluded), and its MobileNet class.

Measured on modules (single convs in float64 on CPU where a Jacobian shows which inputs an
output reads; the tutorial's MobileNet and the reference models on meta) and by closed forms
(``conformance.formulas``, the exhibits' plans). Its printed table is judged in ``tables``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn
from torch.autograd.functional import jacobian

import cnn_models

from ..formulas import spec_plan
from ..formulas.layers import Plan, conv2d_params
from ..layer_table import build_on_meta
from ._measure import meta_macs, meta_params
from .claim import TUTORIAL, Claim, Judgement, agree, exact, fmt
from .exhibits import (
    PAPER_MOBILENET_STEM,
    Block,
    TutorialMobileNet,
    separable_pair,
    tutorial_mobilenet_plan,
)
from .googlenet import GREATLY
from .sections import DEPTHWISE, MOBILENET, MOBILENET_COMPARISON, POINTWISE, SEPARABLE
from .vggnet import conv_stack_params

__all__ = ["CLAIMS"]

GROUP = "tutorial: MobileNet"
SIZE = (3, 224, 224)
TUTORIAL_CLASS = "the tutorial's MobileNet class"
PAPER = "Howard et al. 2017, Tables 1 and 8: 1.0 MobileNet-224 has 4.2M parameters and 569M mult-adds"


# --- MobileNet is light -------------------------------------------------------------------------------


@functools.cache
def chapter_params() -> dict[str, int]:
    """Parameters of the chapter's models as their papers define them (registered specs; on meta and
    by closed form) and of the tutorial's own MobileNet class."""
    out: dict[str, int] = {}
    for label, name in (("VGG16", "vgg16"), ("GoogLeNet", "googlenet_paper"), ("ResNet-18", "resnet18"),
                        ("ResNet-50", "resnet50"), ("MobileNet", "mobilenet_v1")):
        spec = cnn_models.get_spec(name)
        out[label] = agree(f"{name} params", meta_params(spec.build), spec_plan(spec, SIZE).params)
    return out


def _lightest() -> dict[str, int]:
    tutorial = agree("the tutorial's MobileNet params", meta_params(TutorialMobileNet),
                     tutorial_mobilenet_plan().params)
    return {**chapter_params(), TUTORIAL_CLASS: tutorial}


def _lightest_judge(claimed: str, measured: dict[str, int]) -> Judgement:
    papers = {k: v for k, v in measured.items() if k != TUTORIAL_CLASS}
    lightest = min(papers, key=papers.__getitem__)
    if lightest == claimed:
        lighter = [k for k, v in papers.items() if v < measured[TUTORIAL_CLASS]]
        return Judgement(True, f"the paper's MobileNet; the tutorial's own class has {fmt(measured[TUTORIAL_CLASS])}, "
                               f"more than {', '.join(lighter)}")
    return Judgement(False, f"the lightest is {lightest}: {fmt(papers)}", lightest)


# --- depthwise separable convolution ----------------------------------------------------------------------


def _separable_saving() -> dict[str, Any]:
    """Conv weights of the tutorial's 13 blocks against standard 3x3 convs doing the same mapping."""
    model: Any = build_on_meta(TutorialMobileNet)
    blocks = [m for m in model.layers if isinstance(m, Block)]
    separable = sum(b.conv1.weight.numel() + b.conv2.weight.numel() for b in blocks)
    closed_sep = sum(conv2d_params(b.conv1.in_channels, b.conv1.in_channels, 3, groups=b.conv1.in_channels, bias=False)
                     + conv2d_params(b.conv2.in_channels, b.conv2.out_channels, 1, bias=False) for b in blocks)
    standard = sum(conv_stack_params([b.conv2.in_channels, b.conv2.out_channels], 3) for b in blocks)
    agree("separable block weights", separable, closed_sep)
    return {"separable": separable, "standard 3x3": standard, "ratio": round(separable / standard, 3)}


def _at_most(claimed: float, measured: dict[str, Any]) -> Judgement:
    if measured["ratio"] <= claimed:
        return Judgement(True)
    return Judgement(False, f"the ratio is {measured['ratio']:g}, above {claimed:g}",
                     f"a ratio of {measured['ratio']:g}")


def _reads(module: nn.Module, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Which input channels and pixels each output channel / pixel reads: the Jacobian's non-zeros (float64)."""
    module = module.double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64) + 0.5)  # no weight is zero
    x = torch.rand(1, *shape, generator=gen, dtype=torch.float64)
    j = jacobian(module, x)[0, :, :, :, 0] != 0  # (C_out, H, W, C_in, H, W)
    c_out, h, w = j.shape[:3]
    channels = [[int(c) for c in torch.nonzero(j[o].any(dim=(0, 1, 3, 4))).flatten()] for o in range(c_out)]
    own = torch.zeros(h, w, dtype=torch.bool)
    same_pixel = True
    for i in range(h):
        for k in range(w):
            own.zero_()
            own[i, k] = True
            same_pixel &= bool(torch.equal(j[:, i, k].any(dim=(0, 1)), own))
    return {"input channels read per output channel": channels,
            "each output pixel reads only its own pixel": same_pixel}


def _depthwise() -> dict[str, Any]:
    conv = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)  # the tutorial's 3-channel image
    reads = _reads(conv, (3, 5, 5))
    shape = list(conv.weight.shape)
    agree("depthwise filter shape", shape, [3, 3 // 3, 3, 3])
    return {"filters": shape[0], "filter shape": shape[1:], "input channels read per output channel":
            reads["input channels read per output channel"]}


def _depthwise_outputs() -> dict[str, int]:
    model: Any = build_on_meta(TutorialMobileNet)
    blocks = [m for m in model.layers if isinstance(m, Block)]
    same = sum(b.conv1.out_channels == b.conv1.in_channels for b in blocks)
    return {"blocks": len(blocks), "depthwise output channels = input channels": same}


def _depthwise_outputs_judge(claimed: str, measured: dict[str, int]) -> Judgement:
    every = measured["blocks"] == measured["depthwise output channels = input channels"]
    if (claimed == "every block") == every:
        return Judgement(True)
    return Judgement(False, f"{fmt(measured)}", fmt(measured))


def _pointwise() -> dict[str, Any]:
    conv = nn.Conv2d(3, 10, 1, bias=False)
    reads = _reads(conv, (3, 4, 4))
    shape = list(conv.weight.shape)
    return {"filters": shape[0], "filter shape": shape[1:], **reads}


# --- the 3 -> 10 example and the tutorial's MobileNet ---------------------------------------------------------


def _separable_3_10() -> dict[str, int]:
    inst = meta_params(lambda: separable_pair(3, 10, 3))
    dw, pw = conv2d_params(3, 3, 3, groups=3, bias=False), conv2d_params(3, 10, 1, bias=False)
    agree("separable 3->10 weights", inst, dw + pw)
    return {"depthwise 3x3": dw, "pointwise 1x1": pw, "total": dw + pw}


def _mobilenet_cost(stem: tuple[int, int], head: str) -> dict[str, int]:
    def build() -> nn.Module:
        return TutorialMobileNet(stem=stem, head=head)

    plan: Plan = tutorial_mobilenet_plan(stem=stem, head=head)
    params = agree(f"MobileNet (stem {stem}, head {head}) params", meta_params(build), plan.params)
    macs = agree(f"MobileNet (stem {stem}, head {head}) mult-adds", meta_macs(build, SIZE), plan.macs)
    fc = next(r for r in plan.layers if r.name == "fc").params
    return {"params": params, "mult-adds": macs, "fc params": fc}


def _vs_paper() -> dict[str, Any]:
    return {"as written": _mobilenet_cost((1, 0), "tutorial"),
            "with a stride-2 padded stem and a global pool": _mobilenet_cost(PAPER_MOBILENET_STEM, "global")}


def _close(claimed: dict[str, float], got: dict[str, int]) -> bool:
    """Howard et al. round parameters to 0.1M and mult-adds to 1M."""
    return abs(got["params"] - claimed["params"]) <= 0.05e6 and abs(got["mult-adds"] - claimed["mult-adds"]) <= 0.5e6


def _vs_paper_judge(claimed: dict[str, float], measured: dict[str, Any]) -> Judgement:
    got, fixed = measured.values()
    if _close(claimed, got):
        return Judgement(True)
    fix = (f"a stride-2, padding-1 stem and a global average pool into Linear(1024, 1000): {fmt(fixed['params'])} "
           f"parameters and {fmt(fixed['mult-adds'])} mult-adds")
    if not _close(claimed, fixed):
        fix += f" (not the paper's either: {fmt(claimed)})"
    return Judgement(
        False,
        f"{fmt(got['params'])} parameters, {got['fc params'] / got['params']:.0%} of them in the final Linear "
        f"({fmt(got['fc params'])}), and {got['mult-adds'] / 1e6:,.0f}M mult-adds: AvgPool2d(2) leaves 7·7·1024 "
        "features for the Linear (the paper pools globally to 1024), and the stride-1 unpadded stem keeps 222x222 "
        f"maps where the paper's stride 2 gives 112x112 ({got['mult-adds'] / claimed['mult-adds']:.1f}x the mult-adds)",
        fix,
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "mobilenet-lightweight", GROUP, TUTORIAL,
        "MobileNet is a model made light (measured: the fewest parameters of the chapter's models).",
        "MobileNet", _lightest, _lightest_judge, section=MOBILENET,
    ),
    Claim(
        "separable-cuts-params", GROUP, TUTORIAL,
        "Splitting each convolution into a depthwise and a pointwise convolution cuts the parameters greatly "
        f"against standard convolutions (the tutorial's MobileNet's 13 blocks against 3x3 convs; 'greatly': to at "
        f"most {GREATLY:g} of them).",
        GREATLY, _separable_saving, _at_most, section=SEPARABLE,
    ),
    Claim(
        "depthwise-per-channel", GROUP, TUTORIAL,
        "A depthwise convolution on a 3-channel image has one filter per channel and convolves each channel "
        "alone, without summing across channels; in PyTorch nn.Conv2d(groups=<input channels>).",
        {"filters": 3, "filter shape": [1, 3, 3], "input channels read per output channel": [[0], [1], [2]]},
        _depthwise, exact(), section=DEPTHWISE,
    ),
    Claim(
        "depthwise-output-channels", GROUP, TUTORIAL,
        "A depthwise convolution outputs as many channels as its input has (every depthwise conv of the "
        "tutorial's MobileNet).",
        "every block", _depthwise_outputs, _depthwise_outputs_judge, section=POINTWISE,
    ),
    Claim(
        "pointwise-channel-mix", GROUP, TUTORIAL,
        "A pointwise convolution applies as many 1x1 filters as output channels: a convolution along the channels "
        "only; in PyTorch nn.Conv2d(kernel_size=1) (3 to 10 channels).",
        {"filters": 10, "filter shape": [3, 1, 1], "input channels read per output channel": [[0, 1, 2]] * 10,
         "each output pixel reads only its own pixel": True},
        _pointwise, exact(), section=POINTWISE,
    ),
    Claim(
        "standard-conv-3-10", GROUP, TUTORIAL,
        "A standard conv from 3 to 10 channels has 3·3·3·10 = 270 parameters (bias excluded).",
        270, lambda: conv_stack_params([3, 10], 3), exact(), section=MOBILENET_COMPARISON,
    ),
    Claim(
        "separable-conv-3-10", GROUP, TUTORIAL,
        "Its depthwise separable replacement has 3·3·3 = 27 depthwise plus 1·1·3·10 = 30 pointwise parameters: "
        "27 + 30 = 57.",
        {"depthwise 3x3": 27, "pointwise 1x1": 30, "total": 57}, _separable_3_10, exact(), section=MOBILENET_COMPARISON,
    ),
    Claim(
        "tutorial-mobilenet-is-mobilenet", GROUP, TUTORIAL,
        "The class it gives under 'MobileNet (2017)' builds that MobileNet: the paper's 1.0 MobileNet-224 with "
        "4.2M parameters and 569M mult-adds.",
        {"params": 4.2e6, "mult-adds": 569e6}, _vs_paper, _vs_paper_judge, section=MOBILENET_COMPARISON,
        basis="implied", evidence=PAPER,
    ),
)
