"""MobileNet v2 against torchvision (weights meta, its generic constructor) and its closed form.

Oracles, each named where it is used:
* torchvision's ``MobileNet_V2_Weights`` meta, read live: ``num_params`` and ``_ops``
  (GFLOPS label; GMACs of conv + linear rounded to 3 decimals);
* ``torchvision.models.MobileNetV2(width_mult=..., inverted_residual_setting=...)`` built on
  meta for arbitrary configs, and torchvision's ``InvertedResidual`` block for numerics;
* the closed form ``conformance.formulas.mobilenet_v2.plan`` (reads the config only);
* Sandler et al. 2018, Table 2 (strides, channels, map sizes).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
from _shared import num_params, randomize, rows, spec_config, state_shapes
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.mobilenetv2 import InvertedResidual as TVInvertedResidual

import cnn_models
from cnn_models.mobilenet_v2 import (
    INVERTED_RESIDUAL_SETTING,
    InvertedResidual,
    MobileNetV2,
    mobilenet_v2,
)
from conformance.formulas import plan_for
from conformance.formulas.mobilenet_v2 import plan
from conformance.layer_table import build_on_meta, layer_table

# --- parameters and MACs against torchvision's meta -----------------------------------------


# --- Table 2: structure ----------------------------------------------------------------------


def test_table_2_maps_at_224() -> None:
    """Sandler et al. 2018, Table 2: the output of each (t, c, n, s) sequence at 224 px."""
    rows = {r.name: r.out_shape for r in layer_table(mobilenet_v2, (3, 224, 224))}
    last = {"features.0": (32, 112, 112), "features.1": (16, 112, 112), "features.3": (24, 56, 56),
            "features.6": (32, 28, 28), "features.10": (64, 14, 14), "features.13": (96, 14, 14),
            "features.16": (160, 7, 7), "features.17": (320, 7, 7), "features.18": (1280, 7, 7),
            "classifier": (1000,)}  # fmt: skip
    assert {k: rows[k] for k in last} == last


def test_residual_only_where_shapes_match() -> None:
    """Stride 1 and C_in == C_out add the input back (Table 1 / Fig. 4): 10 of 17 blocks."""
    model = build_on_meta(mobilenet_v2)
    assert isinstance(model, MobileNetV2)
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING) == 17
    residual = [i for i, b in enumerate(model.features) if isinstance(b, InvertedResidual) and b.use_res_connect]
    assert residual == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


@pytest.mark.parametrize("size", [(3, 64, 64), (3, 33, 50)])  # 224: the gate
def test_plan_rows_equal_layer_table(size: tuple[int, int, int]) -> None:
    """Closed form == our model == torchvision's, every leaf module (name, kind, shape, params)."""
    spec = cnn_models.get_spec("mobilenet_v2")
    planned = rows(plan_for(spec.family, spec.config, size).layers)
    measured = rows(r for r in layer_table(spec.build, size) if r.is_leaf)
    for i, (p, m) in enumerate(zip(planned, measured, strict=False)):
        assert p == m, f"mobilenet_v2 at {size}, row {i}: closed form {p} != model {m}"
    assert len(planned) == len(measured)
    assert rows(r for r in layer_table(torchvision.models.mobilenet_v2, size) if r.is_leaf) == measured


# --- hypothesis: ours vs torchvision's generic constructor vs the closed form ----------------

_settings = st.lists(
    st.tuples(
        st.integers(1, 6),  # t
        st.integers(1, 48),  # c
        st.integers(1, 3),  # n
        st.integers(1, 2),  # s (torchvision's InvertedResidual accepts 1 and 2)
    ),
    min_size=1,
    max_size=4,
)


@given(
    width_mult=st.floats(min_value=0.25, max_value=1.4, allow_nan=False),
    num_classes=st.integers(1, 100),
)
def test_width_mult_agrees_with_torchvision(width_mult: float, num_classes: int) -> None:
    """Default table, any width: same keys and shapes as torchvision, and the closed form gives
    every parametric module's parameter count (no forward: widths do not change map sizes;
    the random-table test below runs the forward)."""
    ours = build_on_meta(lambda: mobilenet_v2(width_mult=width_mult, num_classes=num_classes))
    theirs = build_on_meta(lambda: torchvision.models.MobileNetV2(width_mult=width_mult, num_classes=num_classes))
    assert state_shapes(ours) == state_shapes(theirs)  # same keys and shapes: same parameter count
    p = plan(spec_config("mobilenet_v2", width_mult=width_mult, num_classes=num_classes), (3, 32, 32))
    assert num_params(ours) == num_params(theirs) == p.params
    modules = dict(ours.named_modules())
    planned = {r.name: (r.kind, r.params) for r in p.layers if r.kind in ("Conv2d", "BatchNorm2d", "Linear")}
    built = {
        n: (type(m).__name__, sum(t.numel() for t in m.parameters(recurse=False)))
        for n, m in modules.items()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    }
    assert planned == built


@given(
    setting=_settings,
    width_mult=st.floats(min_value=0.25, max_value=1.4, allow_nan=False),
    round_nearest=st.sampled_from([1, 4, 8]),
    num_classes=st.integers(1, 20),
    size=st.integers(1, 64),
)
def test_random_tables_agree_with_torchvision(setting, width_mult, round_nearest, num_classes, size) -> None:
    input_size = (3, size, size)
    table = [list(row) for row in setting]
    kwargs = dict(width_mult=width_mult, inverted_residual_setting=table, round_nearest=round_nearest,
                  num_classes=num_classes)
    ours = build_on_meta(lambda: MobileNetV2(**kwargs))
    theirs = build_on_meta(lambda: torchvision.models.MobileNetV2(**kwargs))
    assert state_shapes(ours) == state_shapes(theirs)
    config = spec_config("mobilenet_v2", inverted_residual_setting=setting, width_mult=width_mult,
                         round_nearest=round_nearest, num_classes=num_classes)
    p = plan(config, input_size)
    assert num_params(ours) == num_params(theirs) == p.params
    assert rows(r for r in layer_table(ours, input_size) if r.is_leaf) == rows(p.layers)
    with torch.no_grad():
        out = theirs.eval()(torch.zeros((1, *input_size), device="meta"))
    assert tuple(out.shape[1:]) == p.out_shape == (num_classes,)


# --- blocks: numerics against torchvision, gradients ------------------------------------------

BLOCK_CASES = [
    # (c_in, c_out, stride, t): residual with expansion, stride 2, expansion 1 with and without residual
    (4, 4, 1, 6),
    (4, 6, 2, 6),
    (4, 4, 1, 1),
    (3, 5, 2, 1),
    (4, 5, 1, 2),
]


@pytest.mark.parametrize(("c_in", "c_out", "stride", "t"), BLOCK_CASES)
def test_block_matches_torchvision(c_in: int, c_out: int, stride: int, t: int) -> None:
    gen = torch.Generator().manual_seed(7)
    theirs = TVInvertedResidual(c_in, c_out, stride, t).double().eval()
    randomize(theirs, gen)
    ours = InvertedResidual(c_in, c_out, stride, t).double().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.use_res_connect == (stride == 1 and c_in == c_out) == theirs.use_res_connect
    x = torch.randn(2, c_in, 6, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize(("c_in", "c_out", "stride", "t"), BLOCK_CASES)
def test_inverted_residual_gradcheck(c_in: int, c_out: int, stride: int, t: int) -> None:
    """float64 gradcheck w.r.t. the input and every parameter (eval-mode BN, random stats)."""
    gen = torch.Generator().manual_seed(100 * c_in + 10 * c_out + stride + t)
    block = InvertedResidual(c_in, c_out, stride, t).double().eval()
    randomize(block, gen)
    names = [n for n, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in block.parameters())
    x = torch.randn(2, c_in, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def f(inp, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps, strict=True)), (inp,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


def test_residual_block_adds_its_input() -> None:
    """With the projection BN zeroed (gamma = beta = 0) a residual block is the identity."""
    block = InvertedResidual(4, 4, 1, 6).eval()
    bn = block.conv[3]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_init_facts() -> None:
    """torchvision's scheme: no conv bias anywhere, BN 1/0, classifier bias 0, Dropout(0.2)."""
    torch.manual_seed(0)
    model = mobilenet_v2(width_mult=0.35, num_classes=10)
    assert [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None] == []
    for n, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), n
    fc = model.classifier[1]
    assert isinstance(fc, nn.Linear) and torch.all(fc.bias == 0)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.2


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"width_mult": 0}, "width_mult"),
        ({"width_mult": -0.5}, "width_mult"),
        ({"width_mult": float("nan")}, "width_mult"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.01}, "dropout"),
        ({"round_nearest": 0}, "round_nearest"),
        ({"inverted_residual_setting": []}, "inverted_residual_setting"),
        ({"inverted_residual_setting": [[1, 16, 1]]}, r"inverted_residual_setting\[0\]"),
        ({"inverted_residual_setting": [[1, 16, 1, 1], [6, 24, 0, 2]]}, r"inverted_residual_setting\[1\]"),
        ({"inverted_residual_setting": [[1, 16, 1, -1]]}, r"inverted_residual_setting\[0\]"),
        ({"inverted_residual_setting": [[1.5, 16, 1, 1]]}, r"inverted_residual_setting\[0\]"),
        ({"inverted_residual_setting": [[1, 16, 1, 1, 1]]}, r"inverted_residual_setting\[0\]"),
        ({"inverted_residual_setting": "1611"}, "inverted_residual_setting"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        mobilenet_v2(**kwargs)
