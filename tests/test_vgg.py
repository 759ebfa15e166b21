"""VGG family: closed forms vs torchvision meta, layer tables, arbitrary layer lists, gradients.

Oracles: torchvision 0.29 weights meta (``num_params``, ``_ops``) read live; the VGG paper's
Table 2 (millions, rounded); the closed form in ``conformance/formulas/vgg.py``; torchvision's
generic ``VGG(make_layers(cfg, batch_norm))``; ``FlopCounterMode`` on meta tensors.
Everything full-size is built on the ``meta`` device (no storage, no compute).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
from _shared import leaf_rows, num_params, randomize_bn, rows, state_shapes
from hypothesis import given
from hypothesis import strategies as st

from cnn_models import get_spec, vgg
from conformance.formulas import plan_for
from conformance.formulas.layers import conv2d_params
from conformance.layer_table import build_on_meta

VARIANTS = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
FULL = (3, 224, 224)


# --- registered variants: closed form == torchvision meta == model -----------------------


# VGG paper, Table 2, "Number of parameters (in millions)": A 133, B 133, D 138, E 144.
PAPER_TABLE2_MILLIONS = {"vgg11": 133, "vgg13": 133, "vgg16": 138, "vgg19": 144}


@pytest.mark.parametrize("name", sorted(PAPER_TABLE2_MILLIONS))
def test_params_agree_with_paper_table2(name: str) -> None:
    spec = get_spec(name)
    params = plan_for(spec.family, spec.config, FULL).params
    assert round(params / 1e6) == PAPER_TABLE2_MILLIONS[name], (
        f"{name}: {params:,} does not round to the paper's {PAPER_TABLE2_MILLIONS[name]}M")
    assert spec.expected["params_paper"].value == PAPER_TABLE2_MILLIONS[name] * 1e6
    assert spec.expected["params_paper"].holds_for(params)


def test_paper_table2_configuration_c_from_the_closed_form() -> None:
    """Configuration C (not built) is D with the last conv of stages 3-5 made 1x1: Table 2 says 134M."""
    d = plan_for("vgg", {"cfg": vgg.CFGS["D"], "batch_norm": False, "num_classes": 1000}, FULL)
    saved = sum(conv2d_params(c, c, 3) - conv2d_params(c, c, 1) for c in (256, 512, 512))
    assert round((d.params - saved) / 1e6) == 134


def test_receptive_field_of_vgg16_features() -> None:
    """13 3x3 convs, 5 2x2 pools: r = 1 + 2(1*2 + 2*2 + 4*3 + 8*3 + 16*3) + (1+2+4+8+16) = 212, jump 32.

    212 is also the value Araujo et al. (Distill 2019) list for VGG16.
    """
    plan = plan_for("vgg", get_spec("vgg16").config, FULL)
    assert (plan.receptive_field, plan.jump) == (212, 32)


# --- arbitrary layer lists vs torchvision's generic constructor ---------------------------


@st.composite
def vgg_configs(draw):
    widths = st.integers(min_value=1, max_value=48)
    cfg = draw(st.lists(st.one_of(widths, st.just("M")), min_size=1, max_size=10))
    if not any(isinstance(e, int) for e in cfg):
        cfg.insert(draw(st.integers(0, len(cfg))), draw(widths))
    pools = cfg.count("M")
    size = draw(st.integers(min_value=max(32, 2**pools), max_value=max(32, 2**pools) + 40))
    width = draw(st.integers(min_value=size - 8, max_value=size + 8)) if draw(st.booleans()) else size
    return cfg, draw(st.booleans()), draw(st.integers(1, 20)), (3, size, max(width, 2**pools))


@given(vgg_configs())
def test_arbitrary_cfg_matches_torchvision_and_closed_form(case) -> None:
    cfg, batch_norm, num_classes, size = case
    x = torch.zeros((2, *size), device="meta")

    # features alone, for every layer list
    ours_f = build_on_meta(lambda: vgg.make_features(cfg, batch_norm=batch_norm))
    tv_f = build_on_meta(lambda: torchvision.models.vgg.make_layers(list(cfg), batch_norm=batch_norm))
    assert state_shapes(ours_f) == state_shapes(tv_f)
    assert ours_f(x).shape == tv_f(x).shape

    # whole models: torchvision's classifier reads 512*7*7, so end the list on a 512 conv
    last = max(i for i, e in enumerate(cfg) if isinstance(e, int))
    cfg512 = [*cfg[:last], 512, *cfg[last + 1 :]]
    ours = build_on_meta(lambda: vgg.vgg(cfg512, batch_norm=batch_norm, num_classes=num_classes))
    tv = build_on_meta(
        lambda: torchvision.models.VGG(
            torchvision.models.vgg.make_layers(cfg512, batch_norm=batch_norm),
            num_classes=num_classes,
            init_weights=False,
        )
    )
    assert state_shapes(ours) == state_shapes(tv)
    assert num_params(ours) == num_params(tv)
    assert ours.eval()(x).shape == tv.eval()(x).shape == (2, num_classes)

    # closed form, for the original list (any last width)
    config = {"cfg": cfg, "batch_norm": batch_norm, "num_classes": num_classes}
    plan = plan_for("vgg", config, size)
    model = build_on_meta(lambda: vgg.vgg(cfg, batch_norm=batch_norm, num_classes=num_classes))
    assert plan.params == num_params(model)
    assert rows(plan.layers) == leaf_rows(model, size)


# --- gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
def test_gradcheck_conv_stack(batch_norm: bool) -> None:
    """conv [bn] relu, max pool, conv [bn] relu in float64: input and weight gradients."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    block = vgg.make_features([3, "M", 4], batch_norm=batch_norm, in_channels=2).double().eval()
    with torch.no_grad():
        randomize_bn(block, g)
    params = dict(block.named_parameters())
    names = ["0.weight", f"{4 if batch_norm else 3}.weight"]  # both convs

    def f(x: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(block, {**params, names[0]: w0, names[1]: w1}, (x,))

    x = torch.randn(2, 2, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w0, w1 = (params[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(f, (x, w0, w1))


# --- init facts and invalid arguments -----------------------------------------------------


def test_seeded_init_is_bitwise_torchvisions() -> None:
    """Same modules, same order, same draws: one seed gives torchvision's exact weights.

    With BN (conv, BN and linear init all exercised); torchvision's classifier is always
    25088 wide, so this builds ~100M parameters: the slowest test here (~5 s).
    """
    cfg, batch_norm = [8, "M", 16, "M", 512], True
    torch.manual_seed(0)
    ours = vgg.vgg(cfg, batch_norm=batch_norm, num_classes=10).state_dict()
    torch.manual_seed(0)
    theirs = torchvision.models.VGG(
        torchvision.models.vgg.make_layers(cfg, batch_norm=batch_norm), num_classes=10
    ).state_dict()
    differ = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
    assert not differ, f"tensors drawn differently from torchvision: {differ[:5]}"


def test_init_biases_zero_bn_identity() -> None:
    torch.manual_seed(0)
    model = vgg.vgg([8, "M", 16], batch_norm=True, num_classes=10)
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.bias is not None and torch.count_nonzero(m.bias) == 0, f"{name}.bias is not all zero"
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)), f"{name}.weight is not 1"
            assert torch.count_nonzero(m.bias) == 0, f"{name}.bias is not 0"


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"num_classes": -1}, "num_classes"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.5}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_invalid_builder_arguments(kwargs: dict, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        vgg.vgg16(**kwargs)


@pytest.mark.parametrize(
    "cfg",
    [[64, "X"], [64, 0], [64, -3], [64, 2.5], [64, True], [], ["M"], "64M"],
    ids=["bad-token", "zero", "negative", "float", "bool", "empty", "no-conv", "string"],
)
def test_invalid_cfg(cfg) -> None:
    with pytest.raises(ValueError, match="cfg"):
        vgg.vgg(cfg)
