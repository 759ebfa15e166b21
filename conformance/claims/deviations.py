"""Claims where torchvision departs from the papers: GoogLeNet's 3x3 "5x5" branch and BN,
ResNet v1.5's stride, VGG's adaptive pool.

Instantiated: torchvision's models built on meta (``weights=None``). Closed forms:
``conformance.formulas`` replaying the registered configs, matched against the numbers
torchvision publishes in its weights metadata (``num_params``, ``_ops``), read live.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn as nn

import cnn_models

from ..check import torchvision_weights_info
from ..formulas import spec_plan
from ..formulas.layers import Plan
from ..layer_table import build_on_meta
from ..macs import TV_OPS_ABS_TOL, torchvision_ops
from ._measure import meta_macs, meta_out_shape, torchvision_factory
from .claim import CONDITIONAL, Claim, ClaimError, Judged, agree, exact, fmt

__all__ = ["CLAIMS"]

GROUP = "torchvision against the papers"
SIZE = (3, 224, 224)


def _plan(name: str, size: tuple[int, int, int] = SIZE, **changes: Any) -> Plan:
    spec = cnn_models.get_spec(name)
    return spec_plan(spec, size, **changes)


_GOOGLENET = torchvision_factory("googlenet", aux_logits=False, init_weights=True)  # the weights' variant: no aux heads


def _only(values: set[Any], what: str) -> Any:
    if len(values) != 1:
        raise ClaimError(f"{what}: expected one value, found {sorted(values)}")
    return values.pop()


# --- GoogLeNet ------------------------------------------------------------------------------


def _googlenet_kernel() -> dict[str, int]:
    model: Any = build_on_meta(_GOOGLENET)
    names = cnn_models.googlenet.INCEPTION_WIDTHS
    inst = _only({model.get_submodule(f"{n}.branch3.1.conv").kernel_size[0] for n in names},
                 "googlenet branch-3 kernels")
    # closed form: the branch-3 kernel whose plan has torchvision's published parameter count
    published = int(torchvision_weights_info("googlenet")["num_params"])
    by_kernel = {k: _plan("googlenet", branch3_kernel=k).params for k in (3, 5)}
    closed = _only({k for k, p in by_kernel.items() if p == published},
                   "branch-3 kernel matching torchvision's num_params")
    return {"branch-3 kernel": agree("googlenet branch-3 kernel", inst, closed), "params": published,
            "params with 5x5": by_kernel[5]}


def _googlenet_kernel_judge(claimed: int, measured: dict[str, int]) -> Judged:
    if claimed == measured["branch-3 kernel"]:
        return True, ""
    k = measured["branch-3 kernel"]
    return False, (
        f"all nine modules' 'ch5x5' branch is a {k}x{k} conv, "
        f"a known and kept deviation (pytorch/vision issue 906): {fmt(measured['params'])} parameters where "
        f"5x5 convs would give {fmt(measured['params with 5x5'])}"
    ), f"torchvision's GoogLeNet has a {k}x{k} conv in the third branch ({fmt(measured['params'])} parameters)"


def _googlenet_bn() -> int:
    model = build_on_meta(_GOOGLENET)
    inst = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    plan = _plan("googlenet")
    agree("googlenet closed form vs torchvision's num_params", plan.params,
          int(torchvision_weights_info("googlenet")["num_params"]))
    return int(agree("googlenet BatchNorm2d layers", inst, sum(r.kind == "BatchNorm2d" for r in plan.layers)))


# --- ResNet v1.5 --------------------------------------------------------------------------------

_DOWNSAMPLING = ("layer2.0", "layer3.0", "layer4.0")
_STRIDE_ON = {"conv1": "conv1 (1x1)", "conv2": "conv2 (3x3)"}


def _resnet50_v1() -> nn.Module:
    """torchvision's resnet50 with each downsampling stride moved back to the first 1x1 (v1)."""
    model = torchvision_factory("resnet50")()
    for name in _DOWNSAMPLING:
        block: Any = model.get_submodule(name)
        block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    return model


@functools.cache
def _resnet50_macs() -> dict[str, int]:
    plan = _plan("resnet50")
    # v1 runs conv1 of each downsampling block on the strided (quartered) map; conv2's output is unchanged
    rows = {r.name: r for r in plan.layers}
    v1_closed = plan.macs - sum(3 * rows[f"{b}.conv1"].macs // 4 for b in _DOWNSAMPLING)
    return {
        "v1, stride on the 1x1": agree("resnet50 v1 MACs", meta_macs(_resnet50_v1, SIZE), v1_closed),
        "v1.5 (torchvision), stride on the 3x3": agree("resnet50 v1.5 MACs",
                                                       meta_macs(torchvision_factory("resnet50"), SIZE), plan.macs),
    }


def _strided_conv() -> str:
    model = build_on_meta(torchvision_factory("resnet50"))
    inst = _only(
        {c for b in _DOWNSAMPLING for c in ("conv1", "conv2", "conv3")
         if model.get_submodule(f"{b}.{c}").stride != (1, 1)},
        "strided convs of resnet50's downsampling blocks",
    )
    # closed form: which variant's MACs torchvision publishes (_ops, GMACs to 3 decimals)
    ops = torchvision_ops("resnet50")
    if ops is None:
        raise ClaimError("torchvision publishes no _ops for resnet50")
    v1, v15 = _resnet50_macs().values()
    closed = _only({c for c, m in (("conv1", v1), ("conv2", v15)) if abs(m - ops.macs) <= TV_OPS_ABS_TOL},
                   "variant matching torchvision's _ops")
    return _STRIDE_ON[agree("resnet50 strided conv", inst, closed)]


def _gflops_judge(claimed: float, measured: dict[str, int]) -> Judged:
    """He et al. print one decimal (1.8, 3.6, 3.8, 7.6, 11.3), neither rounding nor truncating
    consistently against the exact v1 counts: +-0.1 GMACs."""
    (v1_label, v1), (v15_label, v15) = measured.items()
    ok = {v1_label: abs(v1 - claimed) <= 0.1e9, v15_label: abs(v15 - claimed) <= 0.1e9}
    if all(ok.values()):
        return True, ""
    if ok[v1_label]:
        return CONDITIONAL, (
            f"holds for ResNet v1 ({v1 / 1e9:.2f}G multiply-adds); torchvision's v1.5 strides the 3x3 "
            f"conv instead, running the 1x1 at full resolution: {v15 / 1e9:.2f}G, {v15 / v1 - 1:.0%} more"
        ), f"for ResNet v1 (stride 2 on the first 1x1); torchvision's v1.5 takes {v15 / 1e9:.2f}G"
    if ok[v15_label]:
        return (
            CONDITIONAL, f"holds for v1.5 ({v15 / 1e9:.2f}G) but not for the paper's v1 ({v1 / 1e9:.2f}G)",
            f"for v1.5 only; v1 takes {v1 / 1e9:.2f}G",
        )
    return (
        False, f"neither v1 ({v1 / 1e9:.2f}G) nor v1.5 ({v15 / 1e9:.2f}G) is within 0.1G of {claimed / 1e9:g}G",
        f"{v1 / 1e9:.2f}G (v1), {v15 / 1e9:.2f}G (v1.5)",
    )


# --- VGG's adaptive pool ----------------------------------------------------------------------------


def _vgg_pool() -> dict[str, Any]:
    factory = torchvision_factory("vgg16")
    pool: Any = build_on_meta(factory).avgpool
    layer = f"{type(pool).__name__}({tuple(pool.output_size)})"
    before: dict[int, tuple[int, ...]] = {}
    for size in (224, 64):
        rows = _plan("vgg16", (3, size, size)).layers
        before[size] = next(r for r in reversed(rows) if r.name.startswith("features.")).out_shape
    maps = before[224]
    x = torch.randn(2, maps[0], maps[1], maps[2], generator=torch.Generator().manual_seed(0))
    identity = bool(torch.equal(pool(x), x))  # no state: the meta-built pool runs on CPU tensors
    logits = agree("vgg16 output at 64x64", list(meta_out_shape(factory, (3, 64, 64))),
                   list(_plan("vgg16", (3, 64, 64)).out_shape))
    return {
        "layer before the classifier": layer,
        "maps reaching it at 224x224": list(maps[1:]),
        "identity there": identity,
        "output at 64x64": logits,
        "features at 64x64 without it": int(before[64][0] * before[64][1] * before[64][2]),
    }


def _vgg_pool_judge(claimed: str, measured: dict[str, Any]) -> Judged:
    if claimed == measured["layer before the classifier"]:
        return True, ""
    if measured["identity there"]:
        return CONDITIONAL, (
            f"equal only at 224x224, where {measured['layer before the classifier']} receives 7x7 maps and is "
            f"the identity; at 64x64 torchvision still outputs {fmt(measured['output at 64x64'])} logits where "
            f"the paper's network would hand {fmt(measured['features at 64x64 without it'])} features to an FC "
            "layer expecting 25,088"
        ), f"at 224x224 only, where {measured['layer before the classifier']} is the identity"
    return (
        False, f"torchvision inserts {measured['layer before the classifier']}, which changes the maps even at 224x224",
        f"torchvision's VGG16 has {measured['layer before the classifier']} before the classifier",
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "torchvision-googlenet-5x5", GROUP,
        "Szegedy et al. 2015, Fig. 2(b) and Table 1; torchvision models/googlenet.py; pytorch/vision issue 906",
        "torchvision's GoogLeNet builds the paper's Inception modules, with a 5x5 conv in the third branch.",
        5, _googlenet_kernel, _googlenet_kernel_judge,
    ),
    Claim(
        "torchvision-googlenet-bn", GROUP,
        "Szegedy et al. 2015, Section 5 and Table 1; torchvision models/googlenet.py",
        "torchvision's GoogLeNet has the paper's layers: convs with bias and ReLU, "
        "no batch normalisation (it predates BN).",
        0, _googlenet_bn,
        exact("torchvision's BasicConv2d is a bias-free conv + BatchNorm2d(eps=0.001) + ReLU: {measured} BN layers",
              correction="torchvision's GoogLeNet has {measured} BatchNorm2d layers, one after every conv"),
    ),
    Claim(
        "torchvision-resnet-v1.5-stride", GROUP,
        "He et al. 2016, Section 3.3 and the authors' released models (stride 2 on the first 1x1); "
        "torchvision models/resnet.py",
        "In torchvision's ResNet50, as in the paper's, a downsampling bottleneck applies its stride 2 "
        "in the first 1x1 conv.",
        _STRIDE_ON["conv1"], _strided_conv,
        exact("torchvision's Bottleneck strides {measured} ('ResNet V1.5'); "
              "its published _ops match that variant's MACs",
              correction="torchvision strides {measured}"),
    ),
    Claim(
        "resnet50-gflops", GROUP, "He et al. 2016, Table 1 (FLOPs = multiply-adds); torchvision ResNet50_Weights meta",
        "ResNet-50 takes 3.8×10⁹ FLOPs (multiply-adds) per 224x224 image.",
        3.8e9, _resnet50_macs, _gflops_judge,
    ),
    Claim(
        "torchvision-vgg-adaptive-pool", GROUP,
        "Simonyan & Zisserman 2015, Sections 2.1 and 3 (fixed 224x224 input); torchvision models/vgg.py",
        "torchvision's VGG16 is the paper's configuration D: the last 7x7x512 maps feed FC-4096 directly, "
        "with no layer in between.",
        "none", _vgg_pool, _vgg_pool_judge,
    ),
)
