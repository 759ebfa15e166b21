"""GoogLeNet family: torchvision's variant and the paper-faithful one.

Oracles: torchvision 0.29 weights meta (``num_params``, ``_ops``) read live; torchvision's
``GoogLeNet`` and ``Inception`` classes; Szegedy et al. 2015 Table 1 (output sizes, and the
params / ops columns where they hold, see ``TABLE1_VERDICTS``); the closed form in
``conformance/formulas/googlenet.py``; ``FlopCounterMode`` on meta tensors.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torchvision
from _shared import assert_rows_equal, leaf_rows, num_params, randomize, rows, state_shapes
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.googlenet import Inception as TorchvisionInception

from cnn_models import get_spec
from cnn_models import googlenet as G
from conformance.formulas import plan_for
from conformance.formulas.googlenet import inception as inception_plan
from conformance.formulas.layers import Plan, Tracer
from conformance.layer_table import build_on_meta, layer_table

FULL = (3, 224, 224)


# --- closed form == torchvision meta == model ---------------------------------------------


def test_googlenet_with_aux_heads_matches_torchvision() -> None:
    spec = get_spec("googlenet")
    ours = build_on_meta(lambda: spec.build(aux_logits=True))
    tv = build_on_meta(lambda: torchvision.models.GoogLeNet(aux_logits=True, init_weights=False))
    assert state_shapes(ours) == state_shapes(tv)
    plan = plan_for(spec.family, {**spec.config, "aux_logits": True}, FULL)
    assert plan.params == num_params(tv)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
@pytest.mark.parametrize("size", [(3, 64, 64), (3, 97, 131)], ids=["64", "97x131"])  # 224: the gate
def test_plan_rows_equal_layer_table(name: str, size: tuple[int, int, int]) -> None:
    spec = get_spec(name)
    expected = rows(plan_for(spec.family, spec.config, size).layers)
    got = leaf_rows(spec.build, size)
    assert_rows_equal(expected, got, f"{name} at {size}")


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_plan_rows_with_aux_heads_equal_train_mode_layer_table(name: str) -> None:
    spec = get_spec(name)
    expected = rows(plan_for(spec.family, {**spec.config, "aux_logits": True}, FULL).layers)
    got = leaf_rows(lambda: spec.build(aux_logits=True), FULL, train=True)
    assert_rows_equal(expected, got, f"{name} with aux heads")


# --- the paper's Table 1 ------------------------------------------------------------------

# Verdict per Table 1 row for the paper-faithful model at 224: does the printed params
# column (units of 1,024 weights, biases excluded) and the printed ops column (millions of
# multiply-adds) agree with the widths the same table gives, within 1 unit (its rounding is
# sometimes truncation, e.g. 3a prints 159K for 159.5K)? "conv3" is Table 1's stem
# "convolution 3x3/1" row, which includes its 1x1 "3x3 reduce" (our conv2).
TABLE1_VERDICTS = {
    # row: (params column holds, ops column holds)
    "conv1": (False, False),  # prints 2.7K / 34M; a 7x7x3x64 conv has 9.2K / 118M
    "conv3": (True, True),
    "inception3a": (True, True),
    "inception3b": (True, True),
    "inception4a": (False, True),  # 364K printed, 366.75K computed
    "inception4b": (True, True),
    "inception4c": (False, True),  # 463K printed, 497.5K computed
    "inception4d": (False, True),  # 580K printed, 590.5K computed
    "inception4e": (False, True),  # 840K printed, 847K computed
    "inception5a": (False, False),  # 1072K / 54M printed, 1018K / 51.1M computed
    "inception5b": (False, True),  # 1388K printed, 1409K computed
    "fc": (True, True),
}
_ROW_MEMBERS = {"conv3": ("conv2.", "conv3."), "fc": ("fc",)}


def _table1_row_totals(plan: Plan, row: str) -> tuple[float, float]:
    """(weights in K = 1,024, MACs in millions) of the plan rows that make up Table 1's ``row``."""
    prefixes = _ROW_MEMBERS.get(row, (f"{row}.",))
    members = [r for r in plan.layers if r.name.startswith(prefixes) and r.kind in ("Conv2d", "Linear")]
    assert members, f"no closed-form rows for Table 1 row {row!r}"
    weights = sum(r.params - r.out_shape[0] for r in members)  # every conv/linear has a bias here
    return weights / 1024, sum(r.macs for r in members) / 1e6


@pytest.mark.parametrize("row", sorted(TABLE1_VERDICTS))
def test_table1_params_and_ops_columns(row: str) -> None:
    plan = plan_for("googlenet", get_spec("googlenet_paper").config, FULL)
    _, paper_k, paper_m = G.TABLE1[row]
    k, m = _table1_row_totals(plan, row)
    params_holds, ops_holds = TABLE1_VERDICTS[row]
    assert (abs(k - paper_k) <= 1) == params_holds, f"{row}: params column {paper_k}K, widths give {k:.2f}K"
    assert (abs(m - paper_m) <= 1) == ops_holds, f"{row}: ops column {paper_m}M, widths give {m:.2f}M"


def test_table1_ops_column_confirms_the_5x5_branch() -> None:
    """With torchvision's 3x3 branch, no Inception row of the ops column holds (vision issue 906)."""
    config = {**get_spec("googlenet_paper").config, "branch3_kernel": 3}
    plan = plan_for("googlenet", config, FULL)
    misses = [row for row in G.INCEPTION_WIDTHS if abs(_table1_row_totals(plan, row)[1] - G.TABLE1[row][2]) > 1]
    assert misses == list(G.INCEPTION_WIDTHS)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_table1_output_sizes(name: str) -> None:
    rows = {r.name: r.out_shape for r in layer_table(get_spec(name).build, FULL)}
    wrong = {row: (shape, rows.get(row)) for row, (shape, _, _) in G.TABLE1.items() if rows.get(row) != shape}
    assert not wrong, f"{name}: Table 1 output size vs model (row: (paper, model)): {wrong}"


# --- Inception modules: arbitrary widths vs torchvision and the closed form ---------------

_width = st.integers(min_value=1, max_value=12)


@given(
    in_channels=_width,
    widths=st.tuples(_width, _width, _width, _width, _width, _width),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    branch3_kernel=st.sampled_from([3, 5]),
    batch_norm=st.booleans(),
)
def test_inception_module_matches_torchvision_and_closed_form(in_channels, widths, size, branch3_kernel,
                                                              batch_norm) -> None:
    torch.manual_seed(0)
    ours = G.Inception(in_channels, *widths, branch3_kernel=branch3_kernel, batch_norm=batch_norm).eval()
    x = torch.randn(2, in_channels, *size, generator=torch.Generator().manual_seed(1))
    out = ours(x)
    c1, _, c3, _, c5, pp = widths
    assert out.shape == (2, c1 + c3 + c5 + pp, *size) and ours.out_channels == c1 + c3 + c5 + pp

    t = Tracer((in_channels, *size))
    inception_plan(t, "", widths, branch3_kernel=branch3_kernel, batch_norm=batch_norm)
    assert t.shape == tuple(out.shape[1:])
    assert t.plan.params == num_params(ours)
    assert rows(t.plan.layers) == leaf_rows(ours, (in_channels, *size))

    if branch3_kernel == 3 and batch_norm:  # torchvision's module
        tv = TorchvisionInception(in_channels, *widths).eval()
        assert state_shapes(ours) == state_shapes(tv)
        randomize(tv, torch.Generator().manual_seed(2))
        ours.load_state_dict(tv.state_dict(), strict=True)
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)


# --- gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize(("branch3_kernel", "batch_norm"), [(3, True), (5, False)], ids=["torchvision", "paper"])
def test_gradcheck_inception(branch3_kernel: int, batch_norm: bool) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    block = G.Inception(4, 2, 2, 3, 2, 3, 2, branch3_kernel=branch3_kernel, batch_norm=batch_norm).double().eval()
    randomize(block, g)
    params = dict(block.named_parameters())
    key = "branch3.1.conv.weight"

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(block, {**params, key: w}, (x,))

    x = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = params[key].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x, w))


@pytest.mark.parametrize(
    ("pool", "batch_norm", "size"),
    [(("adaptive", 4), True, 6), (("avg", 5, 3), False, 14)],
    ids=["torchvision", "paper"],
)
def test_gradcheck_aux_head(pool, batch_norm: bool, size: int) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    head = G.InceptionAux(3, 5, pool=pool, channels=2, hidden=6, batch_norm=batch_norm).double().eval()
    randomize(head, g)
    x = torch.randn(2, 3, size, size, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(head, (x,))


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_every_parameter_gets_a_finite_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = get_spec(name).build(aux_logits=True, num_classes=7).train()
    # the paper's aux heads need the 14x14 maps of a 224 input; torchvision's pool adaptively
    x = torch.randn(1, 3, 224, 224) if name == "googlenet_paper" else torch.randn(2, 3, 64, 64)
    out = model(x)
    (out.logits.sum() + out.aux_logits1.sum() + out.aux_logits2.sum()).backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: parameters without a finite gradient: {bad}"


# --- forward semantics vs torchvision (aux heads, transform_input) ------------------------


@pytest.mark.parametrize("transform_input", [False, True], ids=["plain", "transform_input"])
def test_aux_outputs_match_torchvision(transform_input: bool) -> None:
    tv = torchvision.models.GoogLeNet(aux_logits=True, transform_input=transform_input, init_weights=False,
                                      num_classes=10)
    ours = G.googlenet(aux_logits=True, transform_input=transform_input, init_weights=False, num_classes=10)
    randomize(tv, torch.Generator().manual_seed(0))
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))

    tv.train(), ours.train()
    torch.manual_seed(3)
    want = tv(x)
    torch.manual_seed(3)
    got = ours(x)
    assert type(got).__name__ == "GoogLeNetOutputs" and got._fields == want._fields
    for field in want._fields:
        torch.testing.assert_close(getattr(got, field), getattr(want, field), rtol=1e-5, atol=1e-6)

    tv.eval(), ours.eval()
    with torch.no_grad():
        got_eval, want_eval = ours(x), tv(x)
    assert isinstance(got_eval, torch.Tensor)
    torch.testing.assert_close(got_eval, want_eval, rtol=1e-5, atol=1e-6)


def test_train_mode_without_aux_returns_a_tensor() -> None:
    model = G.googlenet(num_classes=3, init_weights=False).train()
    assert isinstance(model(torch.randn(2, 3, 32, 32)), torch.Tensor)
    assert model.aux1 is None and model.aux2 is None


# --- init facts and invalid arguments -----------------------------------------------------


def test_seeded_init_is_bitwise_torchvisions() -> None:
    """Same modules, same order, same draws: one seed gives torchvision's exact weights."""
    torch.manual_seed(0)
    ours = G.googlenet(aux_logits=True).state_dict()
    torch.manual_seed(0)
    theirs = torchvision.models.GoogLeNet(aux_logits=True, init_weights=True).state_dict()
    differ = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
    assert not differ, f"tensors drawn differently from torchvision: {differ[:5]}"


def test_googlenet_init() -> None:
    """torchvision draws conv/linear weights from trunc_normal(0.01); linear biases keep the default."""
    torch.manual_seed(0)
    model = G.googlenet(aux_logits=True)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None, f"{name} has a bias"
        if isinstance(m, nn.BatchNorm2d):
            assert m.eps == 0.001, f"{name}.eps = {m.eps}"
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0, name
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)  # PyTorch's default bias draw: U(-bound, bound)
            assert 0 < m.bias.abs().max() <= bound, f"{name}.bias is not PyTorch's default draw"
    std = model.fc.weight.std().item()  # 1,024,000 draws: the std is 0.01 to within 0.5 %
    assert abs(std - 0.01) < 0.01 * 0.005, f"fc.weight std {std}"


def test_googlenet_paper_structure_and_init() -> None:
    torch.manual_seed(0)
    model = G.googlenet_paper()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert isinstance(model.lrn1, nn.LocalResponseNorm) and isinstance(model.lrn2, nn.LocalResponseNorm)
    assert (model.lrn1.size, model.lrn1.alpha, model.lrn1.beta, model.lrn1.k) == (5, 1e-4, 0.75, 1.0)
    five = model.get_submodule("inception3a.branch3.1.conv")
    assert isinstance(five, nn.Conv2d) and five.kernel_size == (5, 5)
    pool4 = model.get_submodule("maxpool4")
    assert isinstance(pool4, nn.MaxPool2d) and pool4.kernel_size == 3 and model.dropout.p == 0.4
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.bias is not None and torch.count_nonzero(m.bias) == 0, f"{name}.bias is not all zero"


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"num_classes": -1}, "num_classes"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.5}, "dropout"),
        ({"dropout_aux": -0.1}, "dropout_aux"),
        ({"dropout_aux": 1.01}, "dropout_aux"),
    ],
)
@pytest.mark.parametrize("builder", [G.googlenet, G.googlenet_paper], ids=["googlenet", "googlenet_paper"])
def test_invalid_builder_arguments(builder, kwargs: dict, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        builder(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "argname"),
    [
        ((0, 1, 1, 1, 1, 1, 1), {}, "in_channels"),
        ((4, 0, 1, 1, 1, 1, 1), {}, "ch1x1"),
        ((4, 1, 1, 1, -2, 1, 1), {}, "ch5x5red"),
        ((4, 1, 1, 1, 1, 1, 1.5), {}, "pool_proj"),
        ((4, 1, 1, 1, 1, 1, 1), {"branch3_kernel": 4}, "branch3_kernel"),
    ],
)
def test_invalid_inception_arguments(args, kwargs, argname: str) -> None:
    with pytest.raises(ValueError, match=argname):
        G.Inception(*args, **kwargs)
