"""ResNet / ResNeXt / Wide ResNet (``cnn_models.resnet``) against independent oracles.

Oracles, each named where it is used:
* torchvision 0.29 weights metadata, read live: ``num_params`` and ``_ops`` (GMACs of conv +
  linear at 224x224, 3 decimals);
* torchvision's own models and its generic ``torchvision.models.resnet.ResNet`` built with
  random configs (structure, conv hyper-parameters, seeded init);
* the closed form ``conformance.formulas.resnet.plan`` (reads the config, never a module);
* ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC) on meta tensors;
* exact algebra: ``zero_init_residual`` makes non-downsampling blocks ``relu(x)``.

Everything big runs on the ``meta`` device; real tensors only at tiny sizes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from _shared import PARAMETRIC, assert_rows_equal, gradcheck_block, num_params, rows
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models import resnet as tv_resnet

from cnn_models import get_spec
from cnn_models.resnet import RESNET_CONFIGS, BasicBlock, Bottleneck, ResNet, resnet18, resnet50
from conformance.formulas import plan_for
from conformance.layer_table import build_on_meta, layer_table

NAMES = sorted(RESNET_CONFIGS)  # the ten torchvision builders
TV_BLOCK = {"basic": tv_resnet.BasicBlock, "bottleneck": tv_resnet.Bottleneck}


def conv_hparams(model: nn.Module) -> dict[str, tuple]:
    return {
        n: (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups, m.bias is None)
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    }


# --- the ten registered variants vs torchvision meta -----------------------------------------


def test_v15_stride_is_on_the_3x3() -> None:
    """The recorded deviation: ResNet v1.5 strides conv2 (3x3), He et al. 2016 stride conv1."""
    model = build_on_meta(resnet50)
    assert "v1.5" in get_spec("resnet50").deviations[0]
    for stage in ("layer2", "layer3", "layer4"):
        block = getattr(model, stage)[0]
        assert block.conv1.stride == (1, 1), f"{stage}.0.conv1: expected stride 1, got {block.conv1.stride}"
        assert block.conv2.stride == (2, 2), f"{stage}.0.conv2: expected stride 2, got {block.conv2.stride}"
        assert block.downsample[0].stride == (2, 2), f"{stage}.0.downsample.0: expected stride 2"


@pytest.mark.parametrize("kwargs", [
    {"block": "basic", "layers": [2, 2, 2, 2]},
    {"block": "bottleneck", "layers": [1, 2, 1, 1], "groups": 4, "width_per_group": 16,
     "replace_stride_with_dilation": [False, True, True], "zero_init_residual": True},
], ids=["basic", "bottleneck-groups-dilated-zeroinit"])  # fmt: skip
def test_seeded_init_equals_torchvision(kwargs: dict) -> None:
    """Same seed, same weights: the init scheme (and its RNG order) is torchvision's."""
    kw = dict(kwargs)
    block, layers = kw.pop("block"), kw.pop("layers")
    torch.manual_seed(1234)
    ours = ResNet(block, layers, num_classes=7, **kw)
    torch.manual_seed(1234)
    theirs = tv_resnet.ResNet(TV_BLOCK[block], layers, num_classes=7, **kw)
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert list(sd_ours) == list(sd_theirs)
    for key, ref in sd_theirs.items():
        assert torch.equal(sd_ours[key], ref), f"{key}: seeded init differs from torchvision's"
    x = torch.randn(2, 3, 40, 40)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


# --- property: arbitrary configs vs torchvision's generic ResNet and the closed form ---------


@st.composite
def resnet_configs(draw: st.DrawFn) -> dict:
    block = draw(st.sampled_from(["basic", "bottleneck"]))
    cfg: dict = {
        "block": block,
        "layers": tuple(draw(st.lists(st.integers(1, 3), min_size=4, max_size=4))),
        "groups": 1,
        "width_per_group": 64,
        "replace_stride_with_dilation": (False, False, False),
        "num_classes": draw(st.integers(1, 50)),
    }
    if block == "bottleneck":  # torchvision accepts groups / width / dilation only here
        cfg["groups"] = draw(st.sampled_from([1, 2, 32]) | st.integers(1, 8))
        cfg["width_per_group"] = draw(st.sampled_from([4, 8, 64, 128]) | st.integers(1, 96))
        cfg["replace_stride_with_dilation"] = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    return cfg


@given(cfg=resnet_configs(), h=st.integers(1, 80), w=st.integers(1, 80))
def test_random_configs_agree_with_torchvision_and_closed_form(cfg: dict, h: int, w: int) -> None:
    kwargs = {
        "num_classes": cfg["num_classes"], "groups": cfg["groups"],
        "width_per_group": cfg["width_per_group"],
        "replace_stride_with_dilation": list(cfg["replace_stride_with_dilation"]),
    }  # fmt: skip
    ours = build_on_meta(lambda: ResNet(cfg["block"], cfg["layers"], **kwargs))
    theirs = build_on_meta(lambda: tv_resnet.ResNet(TV_BLOCK[cfg["block"]], list(cfg["layers"]), **kwargs))
    plan = plan_for("resnet", cfg, (3, h, w))

    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert [(k, v.shape) for k, v in sd_ours.items()] == [(k, v.shape) for k, v in sd_theirs.items()]
    assert num_params(ours) == num_params(theirs) == plan.params, (
        f"{cfg}: ours {num_params(ours):,}, torchvision {num_params(theirs):,}, closed form {plan.params:,}"
    )
    assert conv_hparams(ours) == conv_hparams(theirs)

    size = (3, h, w)
    rows_ours = rows(layer_table(ours, size), PARAMETRIC)
    assert_rows_equal(rows(layer_table(theirs, size), PARAMETRIC), rows_ours, f"{cfg} at {h}x{w}: torchvision vs ours")
    assert_rows_equal(rows(plan.layers, PARAMETRIC), rows_ours, f"{cfg} at {h}x{w}: closed form vs ours")
    with torch.no_grad():
        out = ours.eval()(torch.empty(2, 3, h, w, device="meta"))
    assert tuple(out.shape) == (2, *plan.out_shape) == (2, cfg["num_classes"])


# --- gradients of each block type --------------------------------------------------------


def _proj(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


@pytest.mark.parametrize(
    ("make", "in_shape"),
    [
        (lambda: BasicBlock(4, 4), (2, 4, 4, 4)),
        (lambda: BasicBlock(4, 6, 2, _proj(4, 6, 2)), (1, 4, 5, 5)),
        (lambda: Bottleneck(8, 2), (1, 8, 4, 4)),
        (lambda: Bottleneck(4, 2, 2, _proj(4, 8, 2), groups=2, base_width=64), (1, 4, 5, 5)),
        (lambda: Bottleneck(8, 2, groups=2, base_width=64), (1, 8, 4, 4)),
        (lambda: Bottleneck(8, 2, groups=2, base_width=64, dilation=2), (1, 8, 5, 5)),
    ],
    ids=["basic", "basic-downsample", "bottleneck", "bottleneck-downsample-groups", "bottleneck-groups",
         "bottleneck-dilated"],
)  # fmt: skip
def test_block_gradcheck(make, in_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    gradcheck_block(make(), in_shape)


# --- zero_init_residual ------------------------------------------------------------------


@pytest.mark.parametrize("builder", [resnet18, resnet50], ids=["resnet18", "resnet50"])
def test_zero_init_residual(builder) -> None:
    """Goyal et al. 2017 / torchvision: last BN gamma = 0, so blocks start as relu(shortcut)."""
    spec = get_spec(builder.__name__)
    (last_bn,) = spec.zero_init_residual_bns
    torch.manual_seed(0)
    model = builder(zero_init_residual=True).eval()
    reference = builder(zero_init_residual=False)
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == sum(get_spec(builder.__name__).config["layers"])
    g = torch.Generator().manual_seed(0)
    identity_blocks = 0
    for name, block in model.named_modules():
        if not isinstance(block, (BasicBlock, Bottleneck)):
            continue
        bn = getattr(block, last_bn)
        assert torch.count_nonzero(bn.weight) == 0, f"{name}.{last_bn}.weight: expected all 0"
        ref_bn = reference.get_submodule(f"{name}.{last_bn}")
        assert torch.all(ref_bn.weight == 1), f"{name}.{last_bn}: without the flag gamma should be 1"
        x = torch.randn(2, block.conv1.in_channels, 4, 4, generator=g)
        with torch.no_grad():
            got = block(x)
            expected = torch.relu(x if block.downsample is None else block.downsample(x))
        assert torch.equal(got, expected), f"{name}: expected exactly relu(shortcut(x)) at init"
        identity_blocks += block.downsample is None
    # every block but the first of each stage is an identity block (layer1 of a bottleneck net
    # widens 64 -> 256 and needs a projection too)
    assert identity_blocks == len(blocks) - 4 + (builder is resnet18)


# --- invalid arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argname"),
    [
        (lambda: ResNet(BasicBlock, [2, 2, 2]), "layers"),
        (lambda: ResNet(BasicBlock, [2, 0, 2, 2]), "layers"),
        (lambda: ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=-4), "width_per_group"),
        (lambda: ResNet(Bottleneck, [3, 4, 6, 3], groups=0), "groups"),
        (lambda: ResNet(BasicBlock, [2, 2, 2, 2], groups=2), "groups"),
        (lambda: ResNet(BasicBlock, [2, 2, 2, 2], width_per_group=128), "width_per_group"),
        (lambda: ResNet("dense", [2, 2, 2, 2]), "block"),
        (lambda: resnet50(num_classes=0), "num_classes"),
        (lambda: resnet18(replace_stride_with_dilation=[False, False, True]), "replace_stride_with_dilation"),
        (lambda: resnet50(replace_stride_with_dilation=[True]), "replace_stride_with_dilation"),
        (lambda: BasicBlock(4, 4, groups=2), "groups"),
        (lambda: BasicBlock(4, 4, base_width=32), "width_per_group"),
    ],
    ids=["layers-len3", "layers-zero", "width-negative", "groups-0", "basic-groups", "basic-width",
         "block-unknown", "num-classes-0", "basic-dilation", "dilation-len1", "block-groups", "block-width"],
)  # fmt: skip
def test_invalid_arguments_name_the_argument(make, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        make()
