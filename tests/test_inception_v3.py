"""Inception v3 (torchvision's layout): closed form, layer tables, modules, gradients.

Oracles: torchvision 0.29 weights meta (``num_params``, ``_ops``, ``min_size``) read live;
torchvision's ``Inception3`` and its ``InceptionA`` ... ``InceptionE`` / ``InceptionAux``
classes; the closed form in ``conformance/formulas/inception_v3.py``; ``FlopCounterMode``
on meta tensors; the paper's abstract (fewer than 25 million parameters).
Full-size models are built on ``meta``; numerics run at the 75x75 minimum input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
import torchvision.models.inception  # noqa: F401 - the module (torchvision.models.inception_v3 is a function)
from _shared import leaf_rows, num_params, randomize, rows, state_shapes, tv_weights_info
from hypothesis import given
from hypothesis import strategies as st

import cnn_models.inception_v3 as I3
from cnn_models import get_spec
from conformance.formulas import plan_for
from conformance.formulas.inception_v3 import mixed as mixed_plan
from conformance.formulas.layers import Tracer
from conformance.layer_table import build_on_meta

FULL = (3, 299, 299)
TV = torchvision.models.inception


# --- closed form == torchvision meta == model ---------------------------------------------


def test_without_aux_head_matches_torchvision() -> None:
    spec = get_spec("inception_v3")
    ours = build_on_meta(lambda: spec.build(aux_logits=False))
    tv = build_on_meta(lambda: torchvision.models.Inception3(aux_logits=False, init_weights=False))
    assert state_shapes(ours) == state_shapes(tv)
    assert plan_for(spec.family, {**spec.config, "aux_logits": False}, FULL).params == num_params(tv)


def test_paper_abstract_fewer_than_25_million_parameters() -> None:
    """Szegedy et al. 2016, abstract: "less than 25 million parameters" (the inference network)."""
    spec = get_spec("inception_v3")
    params = plan_for(spec.family, {**spec.config, "aux_logits": False}, FULL).params
    assert params < 25e6, f"{params:,} parameters without the auxiliary head"


def test_plan_rows_equal_layer_table() -> None:
    """At sizes other than the spec's 224 (where the gate compares the plan with the trace)."""
    spec = get_spec("inception_v3")
    config = {**spec.config, "aux_logits": False}
    for size in ((3, 75, 75), (3, 101, 87)):
        expected = rows(plan_for(spec.family, config, size).layers)
        assert leaf_rows(lambda: spec.build(aux_logits=False), size) == expected, f"at {size}"


def test_min_size_from_torchvision_weights_info() -> None:
    """meta['min_size'] is (75, 75): the closed form accepts 75 and refuses 74, as the model does."""
    config = {**get_spec("inception_v3").config, "aux_logits": False}
    h, w = tv_weights_info("inception_v3")["min_size"]
    plan_for("inception_v3", config, (3, h, w))
    with pytest.raises(ValueError, match="too small"):
        plan_for("inception_v3", config, (3, h - 1, w - 1))
    model = build_on_meta(lambda: I3.inception_v3(aux_logits=False)).eval()
    with pytest.raises(RuntimeError):
        model(torch.zeros((1, 3, h - 1, w - 1), device="meta"))


# --- modules vs torchvision's classes -----------------------------------------------------

_MODULES = {
    # name: (our table, torchvision constructor) for a given in_channels and width parameter
    "A": (lambda w: I3.inception_a(w), lambda c, w: TV.InceptionA(c, pool_features=w), I3.InceptionA),
    "B": (lambda w: I3.inception_b(), lambda c, w: TV.InceptionB(c), I3.InceptionB),
    "C": (lambda w: I3.inception_c(w), lambda c, w: TV.InceptionC(c, channels_7x7=w), I3.InceptionC),
    "D": (lambda w: I3.inception_d(), lambda c, w: TV.InceptionD(c), I3.InceptionD),
    "E": (lambda w: I3.inception_e(), lambda c, w: TV.InceptionE(c), I3.InceptionE),
}


@given(
    kind=st.sampled_from(sorted(_MODULES)),
    in_channels=st.integers(1, 24),
    width=st.integers(1, 24),
    size=st.tuples(st.integers(3, 9), st.integers(3, 9)),
)
def test_module_matches_torchvision_and_closed_form(kind: str, in_channels: int, width: int, size) -> None:
    table, tv_ctor, cls = _MODULES[kind]
    ours = build_on_meta(lambda: cls(in_channels, table(width)))
    tv = build_on_meta(lambda: tv_ctor(in_channels, width))
    assert state_shapes(ours) == state_shapes(tv)
    x = torch.zeros((2, in_channels, *size), device="meta")
    out = ours.eval()(x)
    assert out.shape == tv.eval()(x).shape and out.shape[1] == ours.out_channels

    t = Tracer((in_channels, *size))
    mixed_plan(t, "", table(width))
    assert t.shape == tuple(out.shape[1:])
    assert t.plan.params == num_params(ours)
    assert rows(t.plan.layers) == leaf_rows(ours, (in_channels, *size))


@pytest.mark.parametrize("kind", sorted(_MODULES))
def test_module_numerics_match_torchvision(kind: str) -> None:
    table, tv_ctor, cls = _MODULES[kind]
    torch.manual_seed(0)
    tv = tv_ctor(5, 6).eval()
    ours = cls(5, table(6)).eval()
    randomize(tv, torch.Generator().manual_seed(1))
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 5, 7, 7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)


def test_aux_head_numerics_match_torchvision() -> None:
    torch.manual_seed(0)
    tv = TV.InceptionAux(6, 4).eval()
    ours = I3.InceptionAux(6, 4).eval()
    assert state_shapes(ours) == state_shapes(tv)
    randomize(tv, torch.Generator().manual_seed(1))
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 6, 17, 17, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-6)


# --- gradients ----------------------------------------------------------------------------

_conv = I3._conv
# tiny tables with every op type: non-square kernels, avg pool, split, strided conv, max pool
TINY_BLOCKS = {
    "a-like": (
        (_conv("b1", 2),),
        (_conv("b2_1", 2), _conv("b2_2", 3, (1, 3), 1, (0, 1))),
        (_conv("b3_1", 2), ("split", _conv("b3_2a", 2, (1, 3), 1, (0, 1)), _conv("b3_2b", 2, (3, 1), 1, (1, 0)))),
        (("avgpool", 3, 1, 1), _conv("bp", 2)),
    ),
    "reduction": (
        (_conv("b1", 3, 3, 2),),
        (_conv("b2_1", 2), _conv("b2_2", 2, 3, 2)),
        (("maxpool", 3, 2),),
    ),
}


@pytest.mark.parametrize("name", sorted(TINY_BLOCKS))
def test_gradcheck_tiny_blocks(name: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    block = I3.InceptionBlock(3, TINY_BLOCKS[name]).double().eval()
    randomize(block, g)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


@pytest.mark.parametrize("kind", sorted(_MODULES))
def test_gradcheck_real_modules_fast_mode(kind: str) -> None:
    table, _, cls = _MODULES[kind]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    block = cls(3, table(4)).double().eval()
    randomize(block, g)
    x = torch.randn(1, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), fast_mode=True)


# --- forward semantics ----------------------------------------------------------------------


def test_train_mode_with_aux_returns_inception_outputs() -> None:
    model = build_on_meta(lambda: I3.inception_v3(num_classes=7)).train()
    out = model(torch.zeros((2, *FULL), device="meta"))
    assert type(out).__name__ == "InceptionOutputs" and out._fields == TV.InceptionOutputs._fields
    assert out.logits.shape == out.aux_logits.shape == (2, 7)
    assert isinstance(model.eval()(torch.zeros((2, *FULL), device="meta")), torch.Tensor)


# --- init facts and invalid arguments -----------------------------------------------------


def test_seeded_init_is_bitwise_torchvisions() -> None:
    """Same modules, same order, same draws, including AuxLogits.fc's std 0.001 and
    AuxLogits.conv1's effective 0.1 (torchvision's 0.01 tag sits on the wrapper, unread)."""
    torch.manual_seed(0)
    ours = I3.inception_v3(aux_logits=True).state_dict()
    torch.manual_seed(0)
    theirs = torchvision.models.Inception3(aux_logits=True, init_weights=True).state_dict()
    differ = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
    assert not differ, f"tensors drawn differently from torchvision: {differ[:5]}"


def test_aux_fc_std() -> None:
    torch.manual_seed(0)
    model = I3.inception_v3(aux_logits=True)
    fc, conv1 = model.get_submodule("AuxLogits.fc"), model.get_submodule("AuxLogits.conv1.conv")
    assert isinstance(fc, nn.Linear) and isinstance(conv1, nn.Conv2d)
    aux_fc, aux_conv1 = fc.weight.std().item(), conv1.weight.std().item()
    # 768,000 and 2,457,600 draws: each std is within 1 % of its value
    assert abs(aux_fc - 0.001) < 1e-5, f"AuxLogits.fc.weight std {aux_fc}"
    assert abs(aux_conv1 - 0.1) < 1e-3, f"AuxLogits.conv1.conv.weight std {aux_conv1}"


@pytest.mark.parametrize(
    ("factory", "argname"),
    [
        (lambda: I3.inception_v3(num_classes=0), "num_classes"),
        (lambda: I3.inception_v3(dropout=1.5), "dropout"),
        (lambda: I3.inception_a(0), "pool_features"),
        (lambda: I3.inception_c(-1), "channels_7x7"),
        (lambda: I3.InceptionB(0, I3.inception_b()), "in_channels"),
        (lambda: I3.InceptionAux(768, -2), "num_classes"),
    ],
    ids=["num_classes", "dropout", "pool_features", "channels_7x7", "in_channels", "aux_num_classes"],
)
def test_invalid_arguments(factory, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        factory()
