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
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode
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
    mobilenet_v3_large,
)
from conformance.formulas import plan_for
from conformance.formulas.mobilenet_v3 import plan
from conformance.layer_table import build_on_meta, layer_table

NAMES = ["mobilenet_v3_large", "mobilenet_v3_small"]
TABLES = {"mobilenet_v3_large": (LARGE, LARGE_LAST), "mobilenet_v3_small": (SMALL, SMALL_LAST)}
_TV_BN = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # what torchvision's builders pass


def _tv_meta(name: str, key: str) -> float:
    values = {w.meta[key] for w in torchvision.models.get_model_weights(name)}
    assert len(values) == 1, f"torchvision's {name} weights disagree on {key}: {values}"
    return values.pop()


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _flop_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros((1, *input_size), device="meta"))
    return counter.get_total_flops() // 2


def _rows(table) -> list[tuple]:
    return [(r.name, r.kind, tuple(r.out_shape), r.params) for r in table]


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _tv_generic(rows, last_channel: int, width_mult: float, num_classes: int) -> nn.Module:
    """torchvision's generic MobileNetV3 from the same rows (its own channel rounding)."""
    setting = [
        tv3.InvertedResidualConfig(c_in, k, exp, out, se, nl, s, 1, width_mult)
        for c_in, k, exp, out, se, nl, s in rows
    ]
    last = tv3.InvertedResidualConfig.adjust_channels(last_channel, width_mult)
    return tv3.MobileNetV3(setting, last, num_classes=num_classes, norm_layer=_TV_BN)


def _config(name: str, **overrides) -> dict:
    return {**cnn_models.get_spec(name).config, **overrides}


# --- parameters and MACs against torchvision's meta -----------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_params_match_torchvision_meta(name: str) -> None:
    expected = _tv_meta(name, "num_params")
    spec = cnn_models.get_spec(name)
    from_plan = plan_for(spec.family, spec.config, spec.input_size).params
    from_model = _num_params(build_on_meta(spec.build))
    assert (from_plan, from_model) == (expected, expected), (
        f"{name}: expected {expected:,} params (torchvision meta num_params), "
        f"got closed form {from_plan:,}, model {from_model:,}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_macs_match_torchvision_ops(name: str) -> None:
    ops = _tv_meta(name, "_ops")
    spec = cnn_models.get_spec(name)
    size = (3, 224, 224)
    from_plan = plan_for(spec.family, spec.config, size).macs
    from_ours = _flop_macs(build_on_meta(spec.build), size)
    from_tv = _flop_macs(build_on_meta(getattr(torchvision.models, name)), size)
    assert from_plan == from_ours == from_tv, (from_plan, from_ours, from_tv)
    assert abs(from_plan - ops * 1e9) <= 0.0005e9, (
        f"{name}: expected {ops} GMACs (torchvision meta _ops, +-0.0005), got {from_plan / 1e9:.6f}"
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(3, 224, 224), (3, 45, 70)])
def test_plan_rows_equal_layer_tables(name: str, size: tuple[int, int, int]) -> None:
    """Closed form == our model == torchvision's, every leaf module (name, kind, shape, params)."""
    spec = cnn_models.get_spec(name)
    planned = _rows(plan_for(spec.family, spec.config, size).layers)
    ours = _rows(r for r in layer_table(spec.build, size) if r.is_leaf)
    for i, (p, m) in enumerate(zip(planned, ours, strict=False)):
        assert p == m, f"{name} at {size}, row {i}: closed form {p} != model {m}"
    assert len(planned) == len(ours)
    assert _rows(r for r in layer_table(getattr(torchvision.models, name), size) if r.is_leaf) == ours


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_and_bn_settings_match_torchvision(name: str) -> None:
    ours = build_on_meta(cnn_models.get_spec(name).build)
    theirs = build_on_meta(getattr(torchvision.models, name))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert _shapes(ours) == _shapes(theirs)

    def bn_settings(m: nn.Module) -> list[tuple[str, float, float | None]]:
        return [(n, b.eps, b.momentum) for n, b in m.named_modules() if isinstance(b, nn.BatchNorm2d)]

    assert bn_settings(ours) == bn_settings(theirs)


# --- hypothesis: ours vs torchvision's generic constructor vs the closed form ----------------


@given(
    name=st.sampled_from(NAMES),
    width_mult=st.floats(min_value=0.25, max_value=1.5, allow_nan=False),
    num_classes=st.integers(1, 100),
)
def test_width_mult_agrees_with_torchvision(name: str, width_mult: float, num_classes: int) -> None:
    rows, last = TABLES[name]
    ours = build_on_meta(lambda: MobileNetV3(setting=rows, last_channel=last, width_mult=width_mult, num_classes=num_classes))
    theirs = build_on_meta(lambda: _tv_generic(rows, last, width_mult, num_classes))
    assert _shapes(ours) == _shapes(theirs)
    p = plan(_config(name, width_mult=width_mult, num_classes=num_classes), (3, 32, 32))
    assert _num_params(ours) == _num_params(theirs) == p.params
    built = {
        n: (type(m).__name__, sum(t.numel() for t in m.parameters(recurse=False)))
        for n, m in ours.named_modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    }
    assert {r.name: (r.kind, r.params) for r in p.layers if r.params} == built


@st.composite
def _tables(draw):
    c = draw(st.sampled_from([8, 16, 24]))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        out = draw(st.integers(4, 48))
        rows.append(
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
    return rows


@given(
    rows=_tables(),
    last=st.integers(8, 256),
    width_mult=st.floats(min_value=0.25, max_value=1.5, allow_nan=False),
    num_classes=st.integers(1, 20),
    size=st.integers(1, 64),
)
def test_random_tables_agree_with_torchvision(rows, last, width_mult, num_classes, size) -> None:
    input_size = (3, size, size)
    ours = build_on_meta(lambda: MobileNetV3(setting=rows, last_channel=last, width_mult=width_mult, num_classes=num_classes))
    theirs = build_on_meta(lambda: _tv_generic(rows, last, width_mult, num_classes))
    assert _shapes(ours) == _shapes(theirs)
    config = {"setting": rows, "last_channel": last, "width_mult": width_mult, "round_nearest": 8, "num_classes": num_classes}
    p = plan(config, input_size)
    assert _num_params(ours) == _num_params(theirs) == p.params
    assert _rows(r for r in layer_table(ours, input_size) if r.is_leaf) == _rows(p.layers)
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


def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                mean, var = m.running_mean, m.running_var
                assert mean is not None and var is not None
                mean.copy_(torch.randn(m.num_features, generator=gen, dtype=mean.dtype))
                var.copy_(torch.rand(m.num_features, generator=gen, dtype=var.dtype) + 0.5)


@pytest.mark.parametrize("row", BLOCK_CASES)
def test_block_matches_torchvision(row) -> None:
    gen = torch.Generator().manual_seed(11)
    _, k, _, _, se, nl, s = row
    cnf = tv3.InvertedResidualConfig(*row, 1, 1.0)  # rounds channels to multiples of 8
    theirs = tv3.InvertedResidual(cnf, _TV_BN).double().eval()
    _randomize(theirs, gen)
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
    _randomize(block, gen)
    assert _gradcheck(block, torch.randn(2, row[0], 5, 5, generator=gen, dtype=torch.float64))


def test_squeeze_excite_gradcheck_and_formula() -> None:
    gen = torch.Generator().manual_seed(5)
    se = SqueezeExcite(6, 8).double()
    _randomize(se, gen)
    x = torch.randn(2, 6, 4, 4, generator=gen, dtype=torch.float64)
    assert _gradcheck(se, x.clone())
    # Section 5.3: x * hard_sigmoid(fc2(relu(fc1(mean over H, W)))), hard_sigmoid = relu6(z + 3) / 6
    pooled = x.mean(dim=(2, 3), keepdim=True)
    z = se.fc2(torch.relu(se.fc1(pooled)))
    torch.testing.assert_close(se(x), x * torch.clamp(z + 3, 0, 6) / 6)


def test_every_parameter_gets_a_finite_gradient() -> None:
    torch.manual_seed(0)
    model = mobilenet_v3_large(width_mult=0.25, num_classes=7).train()
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert bad == [], f"parameters without a finite gradient: {bad}"


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
