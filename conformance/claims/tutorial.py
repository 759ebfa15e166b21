"""Claims about the tutorial's models: its Inception class and MobileNet (exhibits built here),
the torchsummary totals and MB lines it prints for torchvision's VGG16 / ResNet18 / ResNet50,
and its description of He initialisation.

Instantiated measurements build the models on meta (``conformance.summary_table`` for the
torchsummary figures, FlopCounterMode for mult-adds); closed forms come from
``conformance.formulas`` (registered configs) and the exhibits' own plans.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

import cnn_models
from cnn_models import InitScheme

from ..formulas import spec_plan
from ..formulas.googlenet import inception
from ..formulas.layers import Plan, Tracer
from ..init_check import init_failures
from ..layer_table import build_on_meta
from ..summary_table import BYTES_PER_NUMBER, MB, summarize
from ._measure import (
    meta_macs,
    meta_out_shape,
    meta_params,
    meta_spatial_trace,
    receptive_field_by_gradient,
    torchvision_factory,
)
from .claim import Claim, ClaimError, Judged, agree, exact, fmt
from .exhibits import (
    INCEPTION_3A_TUTORIAL_ARGS,
    TutorialInception,
    TutorialMobileNet,
    tutorial_inception_plan,
    tutorial_mobilenet_plan,
)

__all__ = ["CLAIMS", "PAPER_3A"]

GROUP = "tutorial models"
INCEPTION = "tutorial, GoogLeNet (its Inception class)"
MOBILENET = "tutorial, MobileNet (its model code and torchsummary table)"
SUMMARY = "tutorial, torchsummary tables at (3, 224, 224)"

# Szegedy et al. 2015, Table 1, inception (3a): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
PAPER_3A = cnn_models.googlenet.INCEPTION_WIDTHS["inception3a"]


# --- the tutorial's Inception class ---------------------------------------------------------


def _tutorial_inception() -> nn.Module:
    return TutorialInception(*INCEPTION_3A_TUTORIAL_ARGS)


def _reductions() -> dict[str, int]:
    m: Any = build_on_meta(_tutorial_inception)
    inst = {"#3x3 reduce": m.branch2[0].out_channels, "#5x5 reduce": m.branch3[0].out_channels}
    rows = {r.name: r for r in tutorial_inception_plan(INCEPTION_3A_TUTORIAL_ARGS).layers}
    closed = {"#3x3 reduce": rows["branch2.0.conv"].out_shape[0], "#5x5 reduce": rows["branch3.0.conv"].out_shape[0]}
    return agree("tutorial Inception reductions", inst, closed)


def _branch3_kernel() -> int:
    """Receptive field of branch 3 (1x1 then k x k: k), by gradient and by the Tracer."""
    model: Any = build_on_meta(_tutorial_inception)
    kernel = int(model.branch3[2].kernel_size[0])
    small = (4, 2, 2, 2, 2)  # the receptive field does not depend on the widths
    inst = receptive_field_by_gradient(TutorialInception(*small).branch3, channels=4)
    t = Tracer((4, 21, 21))
    t.conv("0", 2, 1).conv("1", 2, 3, padding=1)  # branch 3 as the tutorial states it
    agree("tutorial Inception branch-3 kernel vs its receptive field", kernel, inst)
    return int(agree("tutorial Inception branch-3 receptive field", inst, t.plan.receptive_field))


def _paper_3a_params() -> int:
    t = Tracer((INCEPTION_3A_TUTORIAL_ARGS[0], 28, 28))
    inception(t, "", PAPER_3A, branch3_kernel=5, batch_norm=False)
    paper = cnn_models.googlenet.Inception(INCEPTION_3A_TUTORIAL_ARGS[0], *PAPER_3A, branch3_kernel=5, batch_norm=False)
    return int(agree("paper inception (3a) params", sum(p.numel() for p in paper.parameters()), t.plan.params))


def _inception_params() -> dict[str, int]:
    inst = meta_params(_tutorial_inception)
    closed = tutorial_inception_plan(INCEPTION_3A_TUTORIAL_ARGS).params
    return {"tutorial class": agree("tutorial Inception params", inst, closed), "paper module": _paper_3a_params()}


def _inception_params_judge(claimed: float, measured: dict[str, int]) -> Judged:
    got = measured["tutorial class"]
    if abs(got - claimed * 1024) <= 1024:
        return True, ""
    return False, (
        f"with 3a's arguments the class has {fmt(got)} parameters ({got / 1024:.1f}K): its 64-wide "
        f"reductions (paper: 96 and 16) and 3x3 'ch5x5' conv shrink branches 2 and 3; the paper's "
        f"module has {fmt(measured['paper module'])} ({measured['paper module'] / 1024:.1f}K)"
    ), f"{fmt(got)}"


def _inception_channels() -> int:
    inst = meta_out_shape(_tutorial_inception, (INCEPTION_3A_TUTORIAL_ARGS[0], 28, 28))[0]
    return int(agree("tutorial Inception output channels", inst, tutorial_inception_plan(INCEPTION_3A_TUTORIAL_ARGS).out_shape[0]))


# --- the tutorial's MobileNet ---------------------------------------------------------------


def _mobilenet_params() -> int:
    inst = summarize(TutorialMobileNet).total_params  # torchsummary's own count
    return int(agree("tutorial MobileNet params", inst, tutorial_mobilenet_plan().params))


def _mobilenet_maps() -> list[int]:
    inst = meta_spatial_trace(TutorialMobileNet, (3, 224, 224), (nn.Conv2d, nn.AvgPool2d))[1:]
    closed: list[int] = []
    for row in tutorial_mobilenet_plan().layers:
        if len(row.out_shape) == 3 and (not closed or row.out_shape[1] != closed[-1]):
            closed.append(row.out_shape[1])
    return agree("tutorial MobileNet map sizes", inst, closed)


def _mobilenet_cost(stem: tuple[int, int], head: str) -> dict[str, int]:
    def build() -> nn.Module:
        return TutorialMobileNet(stem=stem, head=head)

    plan: Plan = tutorial_mobilenet_plan(stem=stem, head=head)
    params = agree(f"MobileNet (stem {stem}, head {head}) params", meta_params(build), plan.params)
    macs = agree(f"MobileNet (stem {stem}, head {head}) mult-adds", meta_macs(build, (3, 224, 224)), plan.macs)
    fc = next(r for r in plan.layers if r.name == "fc").params
    return {"params": params, "mult-adds": macs, "fc params": fc}


def _paper_judge(claimed: dict[str, float], measured: dict[str, int]) -> Judged:
    """Howard et al. round params to 0.1M and mult-adds to 1M (cnn_models.mobilenet_v1's spec)."""
    ok_p = abs(measured["params"] - claimed["params"]) <= 0.05e6
    ok_m = abs(measured["mult-adds"] - claimed["mult-adds"]) <= 1e6
    if ok_p and ok_m:
        return True, ""
    return False, (
        f"{fmt(measured['params'])} parameters, {measured['fc params'] / measured['params']:.0%} of them in "
        f"the final Linear ({fmt(measured['fc params'])}), and {measured['mult-adds'] / 1e6:,.0f}M mult-adds: "
        "AvgPool2d(2) leaves 7·7·1024 features for the Linear (the paper pools globally to 1024), and the "
        f"stride-1 unpadded stem keeps 222x222 maps where the paper's stride 2 gives 112x112 "
        f"({measured['mult-adds'] / claimed['mult-adds']:.1f}x the mult-adds)"
    ), f"{fmt(measured['params'])} parameters, {fmt(measured['mult-adds'])} mult-adds"


# --- torchsummary totals and MB lines -------------------------------------------------------


def _total(name: str) -> int:
    spec = cnn_models.get_spec(name)
    inst = summarize(torchvision_factory(name)).total_params
    closed = spec_plan(spec, (3, 224, 224)).params
    return int(agree(f"{name} params (torchsummary vs closed form)", inst, closed))


def _vgg16_mb(line: str) -> float:
    """VGG16's torchsummary MB line, measured and by closed form (4 bytes per number, 1024² per MB)."""
    s = summarize(torchvision_factory("vgg16"))
    spec = cnn_models.get_spec("vgg16")
    plan = spec_plan(spec, (3, 224, 224))
    if line == "forward/backward":
        inst = s.forward_backward_mb
        # torchsummary: |2 x sum over hooked rows of prod([-1, *shape])| numbers; the plan has one
        # row per hooked module of torchvision's VGG (conv, relu, pools, linear, relu, dropout)
        closed = 2 * sum(math.prod(r.out_shape) for r in plan.layers) * BYTES_PER_NUMBER / MB
    else:
        inst = s.params_mb
        closed = plan.params * BYTES_PER_NUMBER / MB
    return float(agree(f"vgg16 {line} MB", round(inst, 2), round(closed, 2)))


# --- He initialisation ----------------------------------------------------------------------


def _he_law() -> dict[str, Any]:
    """Which He variant torchvision's ResNet18 draws its convs from, by a 6-SE variance test per conv."""
    import torchvision.models as tvm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tvm.resnet18()
    rejected = {}
    for mode in ("fan_in", "fan_out"):
        scheme = InitScheme(conv=f"kaiming_normal_{mode}", linear="torch_default", linear_bias="torch_default", source="He et al. 2015")
        rejected[mode] = sorted({f.split(":")[0] for f in init_failures(model, scheme)})
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    # closed form: the two laws differ exactly where C_in != C_out (same kernel on both sides)
    differ = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels != m.out_channels]
    if rejected["fan_out"] and rejected["fan_in"]:
        raise ClaimError(f"torchvision resnet18 convs fit neither He law: fan_in rejected at {rejected['fan_in']}, fan_out at {rejected['fan_out']}")
    law = "fan_out" if not rejected["fan_out"] else "fan_in"
    agree("convs where the other law fails vs convs with C_in != C_out", rejected["fan_in" if law == "fan_out" else "fan_out"], differ)
    return {"law": law, "convs": len(convs), "convs with C_in ≠ C_out": len(differ)}


def _he_judge(claimed: str, measured: dict[str, Any]) -> Judged:
    if claimed == measured["law"]:
        return True, ""
    return False, (
        f"torchvision's resnet.py calls kaiming_normal_(mode='fan_out'): std √(2/fan_out), He 2015 Eq. 14; "
        f"the two stds coincide only on the {measured['convs'] - measured['convs with C_in ≠ C_out']} of "
        f"{measured['convs']} resnet18 convs with C_in = C_out (the 7x7 stem, 3→64: √(2/147) = {math.sqrt(2 / 147):.3f} "
        f"by fan_in, √(2/3136) = {math.sqrt(2 / 3136):.3f} by fan_out)"
    ), "fan_out"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "tutorial-inception-reductions", GROUP, f"{INCEPTION}; Szegedy et al. 2015, Fig. 2(b) and Table 1",
        "The tutorial's Inception class is GoogLeNet's module: branches 2 and 3 reduce the input to "
        "'#3x3 reduce' and '#5x5 reduce' channels first (inception (3a): 96 and 16).",
        {"#3x3 reduce": PAPER_3A[1], "#5x5 reduce": PAPER_3A[3]}, _reductions,
        exact("the class has no reduce arguments: both reductions are ch1x1 wide ({measured}), so it cannot build Table 1's modules"),
    ),
    Claim(
        "tutorial-inception-5x5", GROUP, f"{INCEPTION}; Szegedy et al. 2015, Fig. 2(b)",
        "The tutorial's 'ch5x5' branch convolves 5x5 (receptive field 5), as the paper's module does.",
        5, _branch3_kernel,
        exact("its 'ch5x5' branch is a 3x3 conv after the 1x1 (receptive field {measured}), the same "
              "substitution torchvision's GoogLeNet makes (pytorch/vision issue 906)"),
    ),
    Claim(
        "tutorial-inception-params", GROUP, f"{INCEPTION}; Szegedy et al. 2015, Table 1 (K = 1,024)",
        "Built with inception (3a)'s widths, Inception(192, 64, 128, 32, 32), the tutorial's class has "
        "Table 1's 159K parameters.",
        159, _inception_params, _inception_params_judge,
    ),
    Claim(
        "tutorial-inception-channels", GROUP, f"{INCEPTION}; Szegedy et al. 2015, Table 1",
        "Inception(192, 64, 128, 32, 32) outputs 64 + 128 + 32 + 32 = 256 channels, as inception (3a) does.",
        256, _inception_channels, exact(),
    ),
    Claim(
        "tutorial-mobilenet-params", GROUP, MOBILENET,
        "The tutorial's MobileNet has 53,383,976 parameters (its torchsummary total).",
        53_383_976, _mobilenet_params, exact(),
    ),
    Claim(
        "tutorial-mobilenet-maps", GROUP, MOBILENET,
        "At a 224x224 input its feature maps are 222, 111, 56, 28, 14 and, after AvgPool2d(2), 7 pixels wide.",
        [222, 111, 56, 28, 14, 7], _mobilenet_maps, exact(),
    ),
    Claim(
        "tutorial-mobilenet-vs-paper", GROUP, f"{MOBILENET}; Howard et al. 2017, Tables 1 and 7",
        "The tutorial's MobileNet is the paper's 1.0 MobileNet-224: 4.2M parameters, 569M mult-adds.",
        {"params": 4.2e6, "mult-adds": 569e6}, lambda: _mobilenet_cost((1, 0), "tutorial"), _paper_judge,
    ),
    Claim(
        "tutorial-mobilenet-cause", GROUP, f"{MOBILENET}; Howard et al. 2017, Table 1",
        "Two layers cause the difference: with the paper's stem (3x3, stride 2, pad 1) and head (global "
        "average pool, Linear(1024, 1000)) the tutorial's MobileNet has 4.2M parameters and 569M mult-adds.",
        {"params": 4.2e6, "mult-adds": 569e6}, lambda: _mobilenet_cost((2, 1), "global"), _paper_judge,
    ),
    Claim(
        "tutorial-vgg16-params", GROUP, f"{SUMMARY}; torchvision VGG16_Weights meta",
        "torchvision's VGG16 has 138,357,544 parameters.",
        138_357_544, lambda: _total("vgg16"), exact(),
    ),
    Claim(
        "tutorial-vgg16-forward-backward-mb", GROUP, SUMMARY,
        "torchsummary's 'Forward/backward pass size (MB)' for VGG16 is 218.78.",
        218.78, lambda: _vgg16_mb("forward/backward"), exact(),
    ),
    Claim(
        "tutorial-vgg16-params-mb", GROUP, SUMMARY,
        "torchsummary's 'Params size (MB)' for VGG16 is 527.79.",
        527.79, lambda: _vgg16_mb("params"), exact(),
    ),
    Claim(
        "tutorial-resnet18-params", GROUP, f"{SUMMARY}; torchvision ResNet18_Weights meta",
        "torchvision's ResNet18 has 11,689,512 parameters.",
        11_689_512, lambda: _total("resnet18"), exact(),
    ),
    Claim(
        "tutorial-resnet50-params", GROUP, f"{SUMMARY}; torchvision ResNet50_Weights meta",
        "torchvision's ResNet50 has 25,557,032 parameters.",
        25_557_032, lambda: _total("resnet50"), exact(),
    ),
    Claim(
        "tutorial-he-init", GROUP, "tutorial, ResNet (He initialisation); He et al. 2015, Eq. 10 vs Eq. 14; torchvision models/resnet.py",
        "The ResNets it uses are He-initialised as the text describes: conv weights N(0, 2/fan_in) (He et al. 2015, Eq. 10).",
        "fan_in", _he_law, _he_judge,
    ),
)
