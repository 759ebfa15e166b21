"""CIFAR ResNets and plain nets (``cnn_models.cifar_resnet``, He et al. 2016 §4.2).

Oracles, each named where it is used:
* the paper: Table 6 parameter counts with its rounding, §4.2's ``6n + 2`` weighted layers,
  feature maps of 32, 16 and 8 with 16, 32 and 64 filters, and "exactly the same number of
  parameters as the plain counterparts" (option A);
* the closed form ``conformance.formulas.cifar_resnet.plan`` (reads the config only) and the
  single-layer formulas of ``conformance.formulas.layers`` for the option B projections;
* ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC) on meta tensors;
* option A's definition (§3.3): subsample, then zero-pad the extra channels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from _shared import PARAMETRIC, assert_rows_equal, flop_macs, gradcheck_block, num_params, rows

from cnn_models import get_spec, list_models
from cnn_models.cifar_resnet import (
    CifarBasicBlock,
    CifarPlainBlock,
    CifarResNet,
    Shortcut,
    ShortcutA,
    cifar_resnet,
)
from conformance.formulas import plan_for
from conformance.formulas.layers import bn_params, conv2d_params
from conformance.layer_table import build_on_meta, layer_table

# He et al. 2016, Table 6: depth -> (params, the paper's rounding): two decimals of a million
# (+- 0.005M) for 20..56 layers, one decimal (+- 0.05M) for 110 and 1202.
TABLE6 = {
    20: (0.27e6, 0.005e6),
    32: (0.46e6, 0.005e6),
    44: (0.66e6, 0.005e6),
    56: (0.85e6, 0.005e6),
    110: (1.7e6, 0.05e6),
    1202: (19.4e6, 0.05e6),
}
DEPTHS = (20, 32, 44, 56, 110)
NAMES = [f"cifar_{kind}{d}" for kind in ("resnet", "plain") for d in DEPTHS]


def config(depth: int, plain: bool = False, shortcut: Shortcut = "A") -> dict:
    return {"depth": depth, "plain": plain, "shortcut": shortcut, "num_classes": 10}


def test_all_variants_are_registered() -> None:
    assert set(NAMES) <= set(list_models())


def test_depth_1202_matches_table6() -> None:
    paper, tol = TABLE6[1202]
    plan = plan_for("cifar_resnet", config(1202), (3, 32, 32))
    got = num_params(build_on_meta(lambda: cifar_resnet(depth=1202)))
    assert abs(plan.params - paper) <= tol and got == plan.params, (
        f"ResNet-1202: closed form {plan.params:,}, model {got:,}, Table 6 {paper:,.0f} +- {tol:,.0f}"
    )


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("name", NAMES)
def test_layer_rows_and_weighted_layer_count(name: str, shortcut: Shortcut) -> None:
    spec = get_spec(name)
    cfg = {**spec.config, "shortcut": shortcut}
    depth, plain = cfg["depth"], cfg["plain"]
    size = spec.input_size
    expected = rows(plan_for(spec.family, cfg, size).layers, PARAMETRIC)
    table = layer_table(lambda: cifar_resnet(depth=depth, plain=plain, shortcut=shortcut), size)
    assert_rows_equal(expected, rows(table, PARAMETRIC), f"{name} ({shortcut})")
    # §4.2: 6n + 2 stacked weighted layers (projection shortcuts are not counted)
    weighted = [r for r in table if r.kind in ("Conv2d", "Linear") and ".downsample." not in r.name]
    assert len(weighted) == depth, f"{name}: expected {depth} weighted layers (6n+2), got {len(weighted)}"
    # §4.2: feature maps 32, 16, 8 with 16, 32, 64 filters
    stages = {r.name: r.out_shape for r in table if r.name in ("layer1", "layer2", "layer3")}
    assert stages == {"layer1": (16, 32, 32), "layer2": (32, 16, 16), "layer3": (64, 8, 8)}, stages


@pytest.mark.parametrize(("depth", "shortcut"), [(20, "A"), (56, "B"), (14, "A")])
def test_macs_closed_form_vs_flop_counter(depth: int, shortcut: Shortcut) -> None:
    macs = flop_macs(build_on_meta(lambda: cifar_resnet(depth=depth, shortcut=shortcut)), (3, 32, 32))
    plan = plan_for("cifar_resnet", config(depth, shortcut=shortcut), (3, 32, 32))
    assert macs == plan.macs, f"depth {depth} ({shortcut}): FlopCounterMode {macs:,} MACs, closed form {plan.macs:,}"


# --- plain vs residual: params(plain) = params(residual) - params(shortcuts) ----------------


@pytest.mark.parametrize("depth", DEPTHS)
def test_plain_params_equal_residual_minus_shortcuts(depth: int) -> None:
    plain = num_params(build_on_meta(lambda: cifar_resnet(depth=depth, plain=True)))
    res_a = build_on_meta(lambda: cifar_resnet(depth=depth, shortcut="A"))
    res_b = build_on_meta(lambda: cifar_resnet(depth=depth, shortcut="B"))

    def shortcut_params(model: nn.Module) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if ".downsample." in n)

    # option A is parameter-free: "exactly the same number of parameters" (§4.2)
    assert shortcut_params(res_a) == 0 and num_params(res_a) == plain
    # option B: two projections, 16->32 and 32->64, 1x1 conv + BN (closed form, layers.py)
    projections = (conv2d_params(16, 32, 1, bias=False) + bn_params(32)
                   + conv2d_params(32, 64, 1, bias=False) + bn_params(64))
    assert shortcut_params(res_b) == projections == 2752
    assert num_params(res_b) - shortcut_params(res_b) == plain, (
        f"depth {depth}: option B {num_params(res_b):,} - shortcuts {shortcut_params(res_b):,} != plain {plain:,}"
    )
    b_plan = plan_for("cifar_resnet", config(depth, shortcut="B"), (3, 32, 32))
    p_plan = plan_for("cifar_resnet", config(depth, plain=True), (3, 32, 32))
    assert b_plan.params - projections == p_plan.params == plain


# --- option A shortcut semantics ----------------------------------------------------------


@pytest.mark.parametrize("size", [6, 7])
def test_option_a_shortcut_subsamples_and_zero_pads(size: int) -> None:
    x = torch.randn(2, 4, size, size, generator=torch.Generator().manual_seed(0))
    shortcut = ShortcutA(4, 8, stride=2)
    out = shortcut(x)
    half = (size + 1) // 2
    assert out.shape == (2, 8, half, half)
    assert torch.equal(out[:, :4], x[:, :, ::2, ::2]), "channels 0..3: expected x[:, :, ::2, ::2]"
    assert torch.count_nonzero(out[:, 4:]) == 0, "channels 4..7: expected zeros"
    assert num_params(shortcut) == 0


def test_residual_block_is_plain_branch_plus_shortcut() -> None:
    """relu(branch(x) + [x[::2, ::2], 0]) with the plain block's own branch (same weights)."""
    torch.manual_seed(0)
    res = CifarBasicBlock(4, 8, stride=2).eval()
    plain = CifarPlainBlock(4, 8, stride=2).eval()
    plain.load_state_dict(res.state_dict())  # same keys: a residual block = plain block + shortcut
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(plain(x), torch.relu(plain.branch(x)))
        padded = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 3, 3)], dim=1)
        torch.testing.assert_close(res(x), torch.relu(plain.branch(x) + padded), rtol=0, atol=0)


def test_conv_init_is_he_fan_in() -> None:
    """The declared init (He et al. 2015 Eq. 10): std sqrt(2 / fan_in), told apart from fan_out
    in the widening convs, where fan_out = 2 fan_in. Seeded; the 3 % margin is > 4 sigma."""
    assert get_spec("cifar_resnet20").init.conv == "kaiming_normal_fan_in"
    torch.manual_seed(0)
    model = cifar_resnet(depth=20)
    for name in ("layer2.0.conv1", "layer3.0.conv1"):
        conv = model.get_submodule(name)
        assert isinstance(conv, nn.Conv2d)
        w = conv.weight
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        std, expected = w.std().item(), (2 / fan_in) ** 0.5
        assert abs(std / expected - 1) < 0.03, f"{name}: std {std:.4f}, He fan_in {expected:.4f}"


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "in_shape"),
    [
        (lambda: CifarBasicBlock(3, 3), (1, 3, 4, 4)),
        (lambda: CifarBasicBlock(2, 4, 2, shortcut="A"), (1, 2, 5, 5)),
        (lambda: CifarBasicBlock(2, 4, 2, shortcut="B"), (1, 2, 5, 5)),
        (lambda: CifarPlainBlock(2, 4, 2), (1, 2, 5, 5)),
    ],
    ids=["identity", "option-A", "option-B", "plain"],
)
def test_block_gradcheck(make, in_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    gradcheck_block(make(), in_shape)


# --- invalid arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argname"),
    [
        (lambda: cifar_resnet(depth=21), "depth"),
        (lambda: cifar_resnet(depth=2), "depth"),
        (lambda: cifar_resnet(depth=20.0), "depth"),  # type: ignore[arg-type]
        (lambda: cifar_resnet(depth=20, shortcut="C"), "shortcut"),  # type: ignore[arg-type]
        (lambda: cifar_resnet(depth=20, num_classes=0), "num_classes"),
        (lambda: cifar_resnet(depth=20, plain="yes"), "plain"),  # type: ignore[arg-type]
        (lambda: CifarResNet(0), "^n must"),
        (lambda: CifarBasicBlock(4, 8, 2, shortcut="C"), "shortcut"),  # type: ignore[arg-type]
        (lambda: ShortcutA(8, 4, 2), "out_channels"),
    ],
    ids=["depth-21", "depth-2", "depth-float", "shortcut-C", "num-classes-0", "plain-str", "n-0",
         "block-shortcut", "shortcut-a-narrowing"],
)  # fmt: skip
def test_invalid_arguments_name_the_argument(make, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        make()
