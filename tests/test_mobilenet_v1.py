"""MobileNet v1 against Howard et al. 2017 (Tables 1, 2, 6, 7) and its own closed form.

Oracles, each named where it is used:
* the paper's tables, typed in below (``PAPER_*``, ``TABLE_1``, ``TABLE_2``) with the
  paper's rounding as tolerance;
* the closed form ``conformance.formulas.mobilenet_v1.plan`` (reads the config, never the
  module), checked against the built model on the meta device, layer by layer;
* ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2 = multiply-adds of conv + linear).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
from _shared import flop_macs, num_params, randomize_bn, rows
from hypothesis import given
from hypothesis import strategies as st

import cnn_models
from cnn_models.mobilenet_v1 import BLOCKS, STEM, DepthwiseSeparable, MobileNetV1, mobilenet_v1
from conformance.formulas import plan_for
from conformance.formulas.mobilenet_v1 import plan
from conformance.layer_table import build_on_meta, layer_table

# Howard et al. 2017, Table 6 (alpha at 224 px) and Table 7 (alpha 1, resolution):
# name -> (alpha, params, mult-adds at 224). Printed as "4.2M" / "569M": one decimal of a
# million for params, whole millions for mult-adds.
PAPER_WIDTH = {
    "mobilenet_v1": (1.0, 4.2e6, 569e6),
    "mobilenet_v1_075": (0.75, 2.6e6, 325e6),
    "mobilenet_v1_050": (0.5, 1.3e6, 149e6),
    "mobilenet_v1_025": (0.25, 0.5e6, 41e6),
}
# Table 7: 1.0 MobileNet at 192 / 160 / 128 px, mult-adds (params unchanged: 4.2M).
PAPER_RESOLUTION = {224: 569e6, 192: 418e6, 160: 290e6, 128: 186e6}
PARAMS_TOL = 0.05e6  # "4.2M": one decimal
MACS_TOL = 1e6  # "569M": the paper rounds (290M at 160 px is truncated from 290.7M)

# Table 1, "Type / Stride | Filter Shape | Input Size", one row per conv / FC.
# Filter shape (k, k, C_in, C_out) for a full conv, (k, k, C, "dw") for a depthwise one.
# The paper prints "Conv dw / s2" on the last depthwise conv, but its own input-size column
# (7x7x1024 before and after) and "Avg Pool 7x7" need stride 1, as in the TF-slim code
# (tensorflow/models issue 1997 reports the typo); the sizes below are the paper's.
_DW, _PW = "dw", "pw"
TABLE_1: list[tuple[str, int, tuple[Any, ...], tuple[int, int, int]]] = [
    ("conv", 2, (3, 3, 3, 32), (224, 224, 3)),
    (_DW, 1, (3, 3, 32), (112, 112, 32)),
    (_PW, 1, (1, 1, 32, 64), (112, 112, 32)),
    (_DW, 2, (3, 3, 64), (112, 112, 64)),
    (_PW, 1, (1, 1, 64, 128), (56, 56, 64)),
    (_DW, 1, (3, 3, 128), (56, 56, 128)),
    (_PW, 1, (1, 1, 128, 128), (56, 56, 128)),
    (_DW, 2, (3, 3, 128), (56, 56, 128)),
    (_PW, 1, (1, 1, 128, 256), (28, 28, 128)),
    (_DW, 1, (3, 3, 256), (28, 28, 256)),
    (_PW, 1, (1, 1, 256, 256), (28, 28, 256)),
    (_DW, 2, (3, 3, 256), (28, 28, 256)),
    (_PW, 1, (1, 1, 256, 512), (14, 14, 256)),
    *[
        row
        for _ in range(5)
        for row in ((_DW, 1, (3, 3, 512), (14, 14, 512)), (_PW, 1, (1, 1, 512, 512), (14, 14, 512)))
    ],
    (_DW, 2, (3, 3, 512), (14, 14, 512)),
    (_PW, 1, (1, 1, 512, 1024), (7, 7, 512)),
    (_DW, 1, (3, 3, 1024), (7, 7, 1024)),  # printed "s2": see above
    (_PW, 1, (1, 1, 1024, 1024), (7, 7, 1024)),
    ("fc", 1, (1024, 1000), (1, 1, 1024)),
]

# Table 2, "Resource per layer type" (percent of mult-adds, percent of parameters). Its
# parameter shares count conv and FC weights only (no bias, no BN): with those the shares
# reproduce to the printed two decimals. The "Conv 3x3" mult-adds entry is printed 1.19,
# but the column must sum to 100: 100 - 94.86 - 3.06 - 0.18 = 1.90 (+- the three entries'
# rounding, 0.015); the paper's 1.19 has its digits swapped.
TABLE_2 = {
    "conv1x1": (94.86, 74.59),
    "dw3x3": (3.06, 1.06),
    "conv3x3": (100 - 94.86 - 3.06 - 0.18, 0.02),
    "fc": (0.18, 24.33),
}

PARAMETRIC = ("Conv2d", "BatchNorm2d", "Linear")


# --- Tables 6 and 7: parameters and mult-adds -----------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_WIDTH))
def test_params_match_paper_table_6_7(name: str) -> None:
    alpha, paper_params, _ = PAPER_WIDTH[name]
    spec = cnn_models.get_spec(name)
    assert spec.config["alpha"] == alpha
    assert spec.expected["params"].value == paper_params, "spec disagrees with Table 6/7"
    from_plan = plan_for(spec.family, spec.config, spec.input_size).params
    from_model = num_params(build_on_meta(spec.build))
    assert from_plan == from_model, f"{name}: closed form {from_plan:,} != model {from_model:,}"
    assert abs(from_model - paper_params) <= PARAMS_TOL, (
        f"{name}: expected {paper_params / 1e6:.1f}M params (Howard et al. 2017, Table 6/7, "
        f"+-{PARAMS_TOL:,.0f}), got {from_model:,}"
    )


@pytest.mark.parametrize("name", sorted(PAPER_WIDTH))
def test_macs_match_paper_table_6(name: str) -> None:
    alpha, _, paper_macs = PAPER_WIDTH[name]
    size = (3, 224, 224)
    from_plan = plan({**cnn_models.get_spec(name).config}, size).macs
    from_model = flop_macs(build_on_meta(lambda: MobileNetV1(alpha=alpha)), size)
    assert from_plan == from_model, f"{name}: closed form {from_plan:,} != FlopCounterMode {from_model:,}"
    assert abs(from_model - paper_macs) <= MACS_TOL, (
        f"{name}: expected {paper_macs / 1e6:.0f}M mult-adds at 224 (Table 6, +-1M), got {from_model:,}"
    )


@pytest.mark.parametrize("resolution", sorted(PAPER_RESOLUTION))
def test_macs_match_paper_table_7(resolution: int) -> None:
    size = (3, resolution, resolution)
    config = cnn_models.get_spec("mobilenet_v1").config
    from_plan = plan(config, size).macs
    from_model = flop_macs(build_on_meta(mobilenet_v1), size)
    assert from_plan == from_model, f"{resolution}px: closed form {from_plan:,} != FlopCounterMode {from_model:,}"
    expected = PAPER_RESOLUTION[resolution]
    assert abs(from_model - expected) <= MACS_TOL, (
        f"1.0 MobileNet-{resolution}: expected {expected / 1e6:.0f}M mult-adds (Table 7, +-1M), got {from_model:,}"
    )


def test_spec_expected_entries_hold() -> None:
    """Every Expected of every v1 spec (params, macs, macs@N) holds for the closed form."""
    problems = []
    for name in sorted(PAPER_WIDTH):
        spec = cnn_models.get_spec(name)
        for key, exp in spec.expected.items():
            size = exp.input_size or spec.input_size
            p = plan_for(spec.family, spec.config, size)
            got = p.params if key == "params" else p.macs
            if not exp.holds_for(got):
                problems.append(f"{name}[{key}] at {size}: expected {exp.describe()}, got {got:,}")
    assert set(cnn_models.get_spec("mobilenet_v1").expected) >= {"macs@192", "macs@160", "macs@128"}
    assert not problems, "\n".join(problems)


def test_resource_shares_match_paper_table_2() -> None:
    rows = plan(cnn_models.get_spec("mobilenet_v1").config, (3, 224, 224)).layers
    macs = dict.fromkeys(TABLE_2, 0)
    weights = dict.fromkeys(TABLE_2, 0)
    for r in rows:
        if r.kind == "Linear":
            kind, w = "fc", r.params - r.out_shape[0]  # weights only, bias dropped
        elif r.kind == "Conv2d":
            kind = "dw3x3" if ".dw." in r.name else "conv1x1" if ".pw." in r.name else "conv3x3"
            w = r.params  # no conv bias
        else:
            continue
        macs[kind] += r.macs
        weights[kind] += w
    problems = []
    for kind, (paper_macs, paper_params) in TABLE_2.items():
        got_m = 100 * macs[kind] / sum(macs.values())
        got_p = 100 * weights[kind] / sum(weights.values())
        tol_m = 0.015 if kind == "conv3x3" else 0.005
        if abs(got_m - paper_macs) > tol_m + 1e-9:
            problems.append(f"{kind}: mult-adds {got_m:.3f}% vs Table 2 {paper_macs:.2f}%")
        if abs(got_p - paper_params) > 0.005 + 1e-9:
            problems.append(f"{kind}: params {got_p:.3f}% vs Table 2 {paper_params:.2f}%")
    assert not problems, "\n".join(problems)


# --- Table 1: per-layer structure ------------------------------------------------------------


def test_every_conv_matches_table_1() -> None:
    """Filter shapes, strides and input sizes of Table 1, layer by layer (on meta)."""
    model = build_on_meta(mobilenet_v1).eval()
    seen: list[tuple[str, Any, tuple[int, ...]]] = []

    def pre_hook(mod, args):
        seen.append((names[id(mod)], mod, tuple(args[0].shape[1:])))

    names = {id(m): n for n, m in model.named_modules()}
    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224, device="meta"))
    for handle in handles:
        handle.remove()

    assert len(seen) == len(TABLE_1), f"expected {len(TABLE_1)} conv/FC layers (Table 1), got {len(seen)}"
    problems = []
    for (kind, stride, filt, (h, w, c)), (name, mod, in_shape) in zip(TABLE_1, seen, strict=True):
        if in_shape != ((c, h, w) if kind != "fc" else (c,)):
            problems.append(f"{name}: input {in_shape}, Table 1 says {h}x{w}x{c}")
        if kind == "fc":
            if (mod.in_features, mod.out_features) != filt:
                problems.append(f"{name}: {mod.in_features}x{mod.out_features}, Table 1 says {filt}")
            continue
        k = filt[0]
        c_in, c_out, groups = (filt[2], filt[2], filt[2]) if kind == _DW else (filt[2], filt[3], 1)
        got = (tuple(mod.weight.shape), mod.stride, mod.groups, mod.padding, mod.bias is None)
        want = ((c_out, c_in // groups, k, k), (stride, stride), groups, ((k - 1) // 2,) * 2, True)
        if got != want:
            problems.append(f"{name}: (weight, stride, groups, padding, no bias) {got}, Table 1: {want}")
        if kind in (_DW, _PW) and not name.endswith(f".{kind}.0"):
            problems.append(f"{name}: a {kind} conv of Table 1 sits at an unexpected name")
    assert not problems, "\n".join(problems)


def test_stage_output_sizes_at_224() -> None:
    """Table 1's maps: 112 (stem, block 1), 56, 28, 14, 7 after each stride-2 block."""
    rows = {r.name: r.out_shape for r in layer_table(mobilenet_v1, (3, 224, 224))}
    want = {"features.0": (32, 112, 112), "features.1": (64, 112, 112), "features.2": (128, 56, 56),
            "features.3": (128, 56, 56), "features.4": (256, 28, 28), "features.5": (256, 28, 28),
            **{f"features.{k}": (512, 14, 14) for k in range(6, 12)},
            "features.12": (1024, 7, 7), "features.13": (1024, 7, 7), "avgpool": (1024, 1, 1),
            "classifier": (1000,)}  # fmt: skip
    got = {name: rows[name] for name in want}
    assert got == want


@pytest.mark.parametrize(
    ("name", "size"),
    [("mobilenet_v1", (3, 224, 224)), ("mobilenet_v1", (3, 128, 128)), ("mobilenet_v1_050", (3, 97, 61))],
)
def test_plan_rows_equal_layer_table(name: str, size: tuple[int, int, int]) -> None:
    """Closed-form rows (every leaf module: name, kind, per-sample shape, params) == meta model."""
    spec = cnn_models.get_spec(name)
    planned = rows(plan_for(spec.family, spec.config, size).layers)
    measured = rows(r for r in layer_table(spec.build, size) if r.is_leaf)
    for i, (p, m) in enumerate(zip(planned, measured, strict=False)):
        assert p == m, f"{name} at {size}, row {i}: closed form {p} != model {m}"
    assert len(planned) == len(measured), f"{name}: {len(planned)} planned rows, {len(measured)} modules"
    kinds = {r[1] for r in planned}
    assert set(PARAMETRIC) <= kinds


def test_width_rounding_is_floor() -> None:
    """Section 3.3 with the stated rounding: alpha = 0.3 gives floor(9.6) = 9 stem channels,
    floor(19.2) = 19, ..., floor(307.2) = 307 final channels (hand arithmetic)."""
    model = build_on_meta(lambda: mobilenet_v1(alpha=0.3))
    assert model.features[0][0].out_channels == 9
    assert model.features[1].pw[0].out_channels == 19
    assert model.features[13].pw[0].out_channels == 307
    assert model.classifier[1].in_features == 307
    tiny = build_on_meta(lambda: mobilenet_v1(alpha=0.001))  # floor would be 0: clamped to 1 channel
    assert tiny.features[0][0].out_channels == 1 and tiny.classifier[1].in_features == 1


def test_no_conv_bias_and_bn_after_every_conv() -> None:
    """Fig. 3: every conv is followed by BN and ReLU, so convs carry no bias."""
    model = build_on_meta(mobilenet_v1)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 27
    assert [n for n, m in convs if m.bias is not None] == []
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 27
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 27


# --- hypothesis: arbitrary widths, tables, sizes ---------------------------------------------

_blocks = st.lists(
    st.tuples(st.sampled_from([8, 16, 24, 40, 64]), st.sampled_from([1, 2])), min_size=1, max_size=5
)


@given(
    alpha=st.floats(min_value=0.05, max_value=2.0, allow_nan=False),
    num_classes=st.integers(1, 50),
    h=st.integers(8, 80),
    w=st.integers(8, 80),
)
def test_closed_form_matches_model_over_alpha(alpha: float, num_classes: int, h: int, w: int) -> None:
    config = {"alpha": alpha, "stem": STEM, "blocks": BLOCKS, "num_classes": num_classes}
    p = plan(config, (3, h, w))
    model = build_on_meta(lambda: mobilenet_v1(alpha=alpha, num_classes=num_classes))
    assert num_params(model) == p.params
    table = [r for r in layer_table(model, (3, h, w)) if r.is_leaf]
    assert rows(table) == rows(p.layers)
    assert p.out_shape == (num_classes,)


@given(
    alpha=st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.3]),
    blocks=_blocks,
    stem=st.tuples(st.sampled_from([8, 16, 32]), st.sampled_from([1, 2])),
    num_classes=st.integers(1, 20),
    size=st.integers(4, 48),
)
def test_closed_form_matches_model_over_tables(alpha, blocks, stem, num_classes, size) -> None:
    config = {"alpha": alpha, "stem": stem, "blocks": tuple(blocks), "num_classes": num_classes}
    p = plan(config, (3, size, size))
    model = build_on_meta(lambda: MobileNetV1(alpha=alpha, blocks=tuple(blocks), stem=stem, num_classes=num_classes))
    assert num_params(model) == p.params
    assert rows(r for r in layer_table(model, (3, size, size)) if r.is_leaf) == rows(p.layers)
    assert flop_macs(model, (3, size, size)) == p.macs


# --- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(4, 6, 1), (4, 4, 2), (3, 5, 2)])
def test_depthwise_separable_gradcheck(c_in: int, c_out: int, stride: int) -> None:
    """float64 gradcheck of the block w.r.t. its input and every parameter (eval-mode BN)."""
    gen = torch.Generator().manual_seed(1000 * c_in + 10 * c_out + stride)
    block = DepthwiseSeparable(c_in, c_out, stride).double().eval()
    randomize_bn(block, gen)
    names = [n for n, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in block.parameters())
    x = torch.randn(2, c_in, 5, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def f(inp, *ps):
        return torch.func.functional_call(block, dict(zip(names, ps, strict=True)), (inp,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": -1}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"alpha": "1"}, "alpha"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -3}, "num_classes"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        mobilenet_v1(**kwargs)


@pytest.mark.parametrize("name", ["mobilenet_v1_075", "mobilenet_v1_050", "mobilenet_v1_025"])
def test_variant_builders_validate_too(name: str) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        cnn_models.get_model(name, num_classes=0)


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"blocks": ()}, "blocks"),
        ({"blocks": ((64, 1), (128,))}, r"blocks\[1\]"),
        ({"blocks": ((64, 0),)}, r"blocks\[0\]"),
        ({"stem": (32, 2, 1)}, "stem"),
    ],
)
def test_invalid_tables_raise(kwargs: dict, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        MobileNetV1(**kwargs)


def test_dropout_is_the_classifier_head() -> None:
    model = mobilenet_v1(alpha=0.25, dropout=0.3)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.3
    assert mobilenet_v1(alpha=0.25).classifier[0].p == 0.0  # the paper names no dropout
