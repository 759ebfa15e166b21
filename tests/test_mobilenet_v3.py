"""MobileNet v3 Large/Small against torchvision (weights meta, its generic constructor) and
the closed form.

Oracles, each named where it is used:
* torchvision's ``MobileNet_V3_{Large,Small}_Weights`` meta, read live: ``num_params`` and
  ``_ops`` (GFLOPS label; GMACs of conv + linear rounded to 3 decimals);
* ``torchvision.models.MobileNetV3`` built from ``InvertedResidualConfig`` rows for arbitrary
  tables and widths (on meta), and torchvision's v3 ``InvertedResidual`` for block numerics;
* the closed form ``conformance.formulas.mobilenet_v3.plan`` (reads the config only).
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn as nn
import torchvision
from _shared import num_params, randomize, rows, spec_config, state_shapes
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models import mobilenetv3 as tv3

import cnn_models
from cnn_models.mobilenet_v3 import (
    LARGE,
    LARGE_LAST,
    SMALL,
    SMALL_LAST,
    InvertedResidualV3,
    MobileNetV3,
    SqueezeExcite,
)
from conformance.formulas import plan_for
from conformance.formulas.mobilenet_v3 import plan
from conformance.layer_table import build_on_meta, layer_table

NAMES = ["mobilenet_v3_large", "mobilenet_v3_small"]
TABLES = {"mobilenet_v3_large": (LARGE, LARGE_LAST), "mobilenet_v3_small": (SMALL, SMALL_LAST)}
_TV_BN = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # what torchvision's builders pass


def _tv_generic(setting, last_channel: int, width_mult: float, num_classes: int) -> nn.Module:
    """torchvision's generic MobileNetV3 from the same rows (its own channel rounding)."""
    configs = [
        tv3.InvertedResidualConfig(c_in, k, exp, out, se, nl, s, 1, width_mult)
        for c_in, k, exp, out, se, nl, s in setting
    ]
    last = tv3.InvertedResidualConfig.adjust_channels(last_channel, width_mult)
    return tv3.MobileNetV3(configs, last, num_classes=num_classes, norm_layer=_TV_BN)



# --- parameters and MACs against torchvision's meta -----------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(3, 45, 70)])  # 224: the gate
def test_plan_rows_equal_layer_tables(name: str, size: tuple[int, int, int]) -> None:
    """Closed form == our model == torchvision's, every leaf module (name, kind, shape, params)."""
    spec = cnn_models.get_spec(name)
    planned = rows(plan_for(spec.family, spec.config, size).layers)
    ours = rows(r for r in layer_table(spec.build, size) if r.is_leaf)
    for i, (p, m) in enumerate(zip(planned, ours, strict=False)):
        assert p == m, f"{name} at {size}, row {i}: closed form {p} != model {m}"
    assert len(planned) == len(ours)
    assert rows(r for r in layer_table(getattr(torchvision.models, name), size) if r.is_leaf) == ours


# --- hypothesis: ours vs torchvision's generic constructor vs the closed form ----------------


@given(
    name=st.sampled_from(NAMES),
    width_mult=st.floats(min_value=0.25, max_value=1.5, allow_nan=False),
    num_classes=st.integers(1, 100),
)
def test_width_mult_agrees_with_torchvision(name: str, width_mult: float, num_classes: int) -> None:
    setting, last = TABLES[name]
    ours = build_on_meta(lambda: MobileNetV3(setting=setting, last_channel=last, width_mult=width_mult,
                                             num_classes=num_classes))
    theirs = build_on_meta(lambda: _tv_generic(setting, last, width_mult, num_classes))
    assert state_shapes(ours) == state_shapes(theirs)
    p = plan(spec_config(name, width_mult=width_mult, num_classes=num_classes), (3, 32, 32))
    assert num_params(ours) == num_params(theirs) == p.params
    built = {
        n: (type(m).__name__, sum(t.numel() for t in m.parameters(recurse=False)))
        for n, m in ours.named_modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    }
    assert {r.name: (r.kind, r.params) for r in p.layers if r.params} == built


@st.composite
def _tables(draw):
    c = draw(st.sampled_from([8, 16, 24]))
    table = []
    for _ in range(draw(st.integers(1, 4))):
        out = draw(st.integers(4, 48))
        table.append(
            (
                c,
                draw(st.sampled_from([3, 5])),
                draw(st.one_of(st.just(c), st.integers(8, 64))),  # exp == in: no expansion conv
                out,
                draw(st.booleans()),
                draw(st.sampled_from(["RE", "HS"])),
                draw(st.sampled_from([1, 2])),
            )
        )
        c = out
    return table


@given(
    setting=_tables(),
    last=st.integers(8, 256),
    width_mult=st.floats(min_value=0.25, max_value=1.5, allow_nan=False),
    num_classes=st.integers(1, 20),
    size=st.integers(1, 64),
)
def test_random_tables_agree_with_torchvision(setting, last, width_mult, num_classes, size) -> None:
    input_size = (3, size, size)
    ours = build_on_meta(lambda: MobileNetV3(setting=setting, last_channel=last, width_mult=width_mult,
                                             num_classes=num_classes))
    theirs = build_on_meta(lambda: _tv_generic(setting, last, width_mult, num_classes))
    assert state_shapes(ours) == state_shapes(theirs)
    config = {"setting": setting, "last_channel": last, "width_mult": width_mult, "round_nearest": 8,
              "num_classes": num_classes}
    p = plan(config, input_size)
    assert num_params(ours) == num_params(theirs) == p.params
    assert rows(r for r in layer_table(ours, input_size) if r.is_leaf) == rows(p.layers)
    with torch.no_grad():
        out = theirs.eval()(torch.zeros((1, *input_size), device="meta"))
    assert tuple(out.shape[1:]) == p.out_shape == (num_classes,)


# --- blocks: numerics against torchvision, gradients ------------------------------------------

BLOCK_CASES = [
    # (in, kernel, exp, out, SE, NL, s)
    (4, 3, 12, 4, True, "HS", 1),  # residual, SE, h-swish
    (4, 5, 12, 6, False, "RE", 2),  # stride 2, no SE
    (4, 3, 4, 4, True, "RE", 1),  # no expansion conv (exp == in), residual
    (3, 3, 3, 5, False, "HS", 2),  # no expansion, no SE
]


@pytest.mark.parametrize("row", BLOCK_CASES)
def test_block_matches_torchvision(row) -> None:
    gen = torch.Generator().manual_seed(11)
    _, k, _, _, se, nl, s = row
    cnf = tv3.InvertedResidualConfig(*row, 1, 1.0)  # rounds channels to multiples of 8
    theirs = tv3.InvertedResidual(cnf, _TV_BN).double().eval()
    randomize(theirs, gen)
    c_in, exp, out = cnf.input_channels, cnf.expanded_channels, cnf.out_channels
    ours = InvertedResidualV3(c_in, k, exp, out, se, nl, s).double().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.use_res_connect == theirs.use_res_connect == (s == 1 and c_in == out)
    x = torch.randn(2, c_in, 6, 6, generator=gen, dtype=torch.float64) * 3  # both sides of the h-swish kinks
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def _gradcheck(module: nn.Module, x: torch.Tensor) -> bool:
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())

    def f(inp, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (inp,))

    return torch.autograd.gradcheck(f, (x.requires_grad_(True), *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("row", BLOCK_CASES)
def test_inverted_residual_gradcheck(row) -> None:
    """float64 gradcheck w.r.t. the input and every parameter (eval-mode BN, random stats)."""
    gen = torch.Generator().manual_seed(sum(v for v in row if isinstance(v, int)))
    block = InvertedResidualV3(*row).double().eval()
    randomize(block, gen)
    assert _gradcheck(block, torch.randn(2, row[0], 5, 5, generator=gen, dtype=torch.float64))


def test_squeeze_excite_gradcheck_and_formula() -> None:
    gen = torch.Generator().manual_seed(5)
    se = SqueezeExcite(6, 8).double()
    randomize(se, gen)
    x = torch.randn(2, 6, 4, 4, generator=gen, dtype=torch.float64)
    assert _gradcheck(se, x.clone())
    # Section 5.3: x * hard_sigmoid(fc2(relu(fc1(mean over H, W)))), hard_sigmoid = relu6(z + 3) / 6
    pooled = x.mean(dim=(2, 3), keepdim=True)
    z = se.fc2(torch.relu(se.fc1(pooled)))
    torch.testing.assert_close(se(x), x * torch.clamp(z + 3, 0, 6) / 6)


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"width_mult": 0}, "width_mult"),
        ({"width_mult": -1.0}, "width_mult"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 2.0}, "dropout"),
        ({"last_channel": 0}, "last_channel"),
        ({"setting": []}, "setting"),
        ({"setting": [(16, 3, 16, 16, False, "RE")]}, r"setting\[0\]"),
        ({"setting": [(16, 4, 16, 16, False, "RE", 1)]}, r"setting\[0\]"),  # even kernel
        ({"setting": [(16, 3, 16, 16, False, "XX", 1)]}, r"setting\[0\]"),
        ({"setting": [(16, 3, 16, 16, 1, "RE", 1)]}, r"setting\[0\]"),  # SE must be a bool
        ({"setting": [(16, 3, 16, 16, False, "RE", 0)]}, r"setting\[0\]"),
        ({"setting": [(16, 3, 16, 24, False, "RE", 1), (16, 3, 16, 16, False, "RE", 1)]}, r"setting\[1\]"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, argname: str) -> None:
    base = {"setting": LARGE, "last_channel": LARGE_LAST}
    with pytest.raises(ValueError, match=argname):
        MobileNetV3(**{**base, **kwargs})


@pytest.mark.parametrize("name", NAMES)
def test_builders_validate(name: str) -> None:
    with pytest.raises(ValueError, match="width_mult"):
        cnn_models.get_model(name, width_mult=0)
