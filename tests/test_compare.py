"""The numerical comparison engine: tolerance rule, bounded memory, shared weights.

Expected verdicts come from the tolerance rule written out in NumPy-free plain arithmetic
(``|g - e| <= atol * max(max|e|, 1) + rtol * |e|``), not from the function under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st

from conformance import compare
from conformance.compare import (
    ATOL,
    RTOL,
    compare_tensors,
    numerics_checks,
    randomize_,
    share_parameters,
)


def _rule(got: list[float], exp: list[float]) -> tuple[int, int]:
    """(number of elements out of tolerance, index of the worst), by the documented rule."""
    scale = max(1.0, max(abs(e) for e in exp))
    excess = [abs(g - e) - (ATOL * scale + RTOL * abs(e)) for g, e in zip(got, exp, strict=True)]
    return sum(x > 0 for x in excess), max(range(len(excess)), key=excess.__getitem__)


@given(
    exp=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    bumps=st.dictionaries(st.integers(0, 39), st.floats(-1e-3, 1e-3).filter(lambda v: v != 0.0), max_size=5),
    chunk=st.integers(1, 16),
)
def test_verdict_and_worst_element_follow_the_rule_for_any_slice_size(exp: list[float], bumps: dict[int, float],
                                                                      chunk: int) -> None:
    got = [e + bumps.get(i, 0.0) for i, e in enumerate(exp)]
    n_bad, worst = _rule(got, exp)
    old = compare.CHUNK
    compare.CHUNK = chunk
    try:
        msg = compare_tensors("t", torch.tensor(got, dtype=torch.float64), torch.tensor(exp, dtype=torch.float64))
    finally:
        compare.CHUNK = old
    if n_bad == 0:
        assert msg is None
    else:
        assert msg is not None and msg.startswith(f"t: {n_bad}/{len(exp)} elements differ; worst at index ({worst},)")


def test_non_finite_values_must_sit_at_the_same_places() -> None:
    e = torch.tensor([1.0, math.nan, math.inf, 2.0], dtype=torch.float64)
    assert compare_tensors("t", e.clone(), e) is None  # NaN and inf where the reference has them
    moved = torch.tensor([math.nan, 1.0, math.inf, 2.0], dtype=torch.float64)
    assert compare_tensors("t", moved, e) == "t: 2 non-finite values in candidate vs 2 in reference"
    sign = torch.tensor([1.0, math.nan, -math.inf, 2.0], dtype=torch.float64)
    assert compare_tensors("t", sign, e) == "t: 2 non-finite values in candidate vs 2 in reference"


def test_locating_a_mismatch_in_a_large_tensor_works_slice_by_slice() -> None:
    n = 3 * compare.CHUNK + 5  # four slices
    e = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    g = e.clone()
    g[2 * compare.CHUNK + 7] += 1e-4
    g[11] += 1e-5
    msg = compare_tensors("big", g.view(1, n), e.view(1, n))
    assert msg is not None and msg.startswith(
        f"big: 2/{n} elements differ; worst at index (0, {2 * compare.CHUNK + 7})")


class Tied(nn.Module):
    """An embedding-style tie: the same Parameter used by two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.bn(self.a(x))))


def test_shared_parameters_share_storage_and_keep_ties_but_buffers_are_copied() -> None:
    ref = randomize_(Tied().double())
    cand = share_parameters(Tied, ref)
    for (n, p), (_, q) in zip(ref.named_parameters(), cand.named_parameters(), strict=True):
        assert p.data_ptr() == q.data_ptr(), n
    assert cand.b.weight is cand.a.weight  # the tie survives the load
    assert cand.bn.running_mean.data_ptr() != ref.bn.running_mean.data_ptr()
    assert torch.equal(cand.bn.running_var, ref.bn.running_var)


def test_a_tied_model_compares_clean_against_itself() -> None:
    fails = numerics_checks(Tied, Tied, (4,))
    assert all(not v for v in fails.values()), fails


class WritesItsWeights(Tied):
    """Doubles a weight after using it: the shared storage must not hide this."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        self.a.weight.data.mul_(2.0)  # .data: invisible to autograd's version counter
        return out


def test_a_candidate_writing_to_its_weights_is_caught_and_named() -> None:
    fails = numerics_checks(WritesItsWeights, Tied, (4,))
    assert any(m.startswith("a.weight: the candidate's forward or backward wrote to this parameter in place")
               for m in fails["train_output"]), fails
    assert fails["param_grads"] or fails["train_output"]


def test_a_wrong_gradient_is_reported_by_name() -> None:
    class Scaled(Tied):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.bn(self.a(x)))) + 0.0 * self.bn.bias.sum() + 1e-3 * self.bn.bias.pow(2).sum()

    fails = numerics_checks(Scaled, Tied, (4,))
    assert any(m.startswith("grad of bn.bias:") for m in fails["param_grads"]), fails


@pytest.mark.parametrize("order", ["reference first", "candidate module"])
def test_modules_passed_in_are_left_untouched(order: str) -> None:
    torch.manual_seed(0)
    ref, cand = Tied(), Tied()
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    numerics_checks(cand if order == "candidate module" else Tied, ref, (4,))
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())
    assert ref.a.weight.dtype == torch.float32


class TwoCalls(nn.Module):
    """A Linear called twice (its gradient sums over both calls; once with ``input=``), an
    in-place ReLU after it, a Linear whose output never reaches the loss, and a bias-free Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(37, 70)
        self.unused = nn.Linear(37, 70)
        self.nobias = nn.Linear(70, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unused(x)
        h = nn.functional.relu(self.fc(x), inplace=True) + self.fc(input=x * 0.5)
        return self.nobias(h)


def test_linear_weight_gradients_by_formula_equal_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare, "CHUNK", 37 * 16)  # 64-row blocks: 70 rows make two
    torch.manual_seed(0)
    model = TwoCalls().double()
    x = torch.randn(3, 37, dtype=torch.float64, requires_grad=True)
    model(x).square().sum().backward()
    autograd = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    with compare.linear_grads_by_formula(model, min_numel=1) as capture:
        model(x).square().sum().backward()
    assert capture.other_use is None
    # unused: its output never reaches the loss, so no gradient (as autograd); nobias: by formula too
    assert set(capture.grads) == {"fc.weight", "nobias.weight"}
    assert model.fc.weight.grad is None and model.fc.weight.requires_grad  # not computed; flag restored
    by_formula = capture.grads
    assert compare_tensors("g", autograd["nobias.weight"], by_formula["nobias.weight"]) is None
    blocks = list(by_formula["fc.weight"].blocks())
    assert [i for i, _ in blocks] == [0, 64 * 37]
    torch.testing.assert_close(torch.cat([b for _, b in blocks]).view(70, 37), autograd["fc.weight"],
                               rtol=1e-12, atol=1e-12)
    assert compare_tensors("g", autograd["fc.weight"], by_formula["fc.weight"]) is None
    bumped = autograd["fc.weight"].clone()
    bumped[66, 3] += 1e-3
    msg = compare_tensors("g", bumped, by_formula["fc.weight"])
    assert msg is not None and msg.startswith("g: 1/2590 elements differ; worst at index (66, 3): ")
    assert f"expected {float(autograd['fc.weight'][66, 3]):.6g}," in msg


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 80)
        self.out = nn.Linear(80, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(x)))


class ScaledWeightGrad(Plain):
    """Same outputs as ``Plain``; fc.weight's gradient is 1.001 times the true one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc.weight
        w = w + (w - w.detach()) * 1e-3  # value exactly w; derivative 1.001
        return self.out(torch.relu(nn.functional.linear(x, w, self.fc.bias)))


def _spy_formula(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Every Linear of the reference by formula; returns the names each pass served that way."""
    monkeypatch.setattr(compare, "FORMULA_MIN_NUMEL", 1)
    served: list[set[str]] = []
    finish = compare.FormulaCapture.finish

    def spy(self: compare.FormulaCapture, model: nn.Module) -> None:
        finish(self, model)
        served.append(set(self.grads))

    monkeypatch.setattr(compare.FormulaCapture, "finish", spy)
    return served


def test_a_large_linear_weight_compared_by_formula_still_catches_a_wrong_gradient(
        monkeypatch: pytest.MonkeyPatch) -> None:
    served = _spy_formula(monkeypatch)
    assert all(not v for v in numerics_checks(Plain, Plain, (6,)).values())
    fails = numerics_checks(ScaledWeightGrad, Plain, (6,))
    assert served == [{"fc.weight", "out.weight"}] * 2
    assert [m.split(":")[0] for m in fails["param_grads"]] == ["grad of fc.weight"], fails
    assert not fails["train_output"] and not fails["eval_output"]


def test_a_linear_weight_registered_twice_keeps_its_autograd_gradient() -> None:
    class TiedWithBias(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.tanh(self.a(x)))

    model = TiedWithBias().double()
    with compare.linear_grads_by_formula(model, min_numel=1) as capture:
        model(torch.randn(2, 8, dtype=torch.float64, requires_grad=True)).sum().backward()
    assert capture.grads == {}  # registered twice: the formula of one layer would miss the other's share
    assert model.a.weight.grad is not None


class TiedProjection(Plain):
    """fc.weight is also used outside F.linear: a tied projection back to the input space."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        return self.out(h) + (h @ self.fc.weight).sum(dim=1, keepdim=True)


class TiedProjectionDetached(Plain):
    """As ``TiedProjection``, but the projection's share of fc.weight's gradient is lost."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        return self.out(h) + (h @ self.fc.weight.detach()).sum(dim=1, keepdim=True)


def test_a_weight_used_outside_f_linear_falls_back_to_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    served = _spy_formula(monkeypatch)
    assert all(not v for v in numerics_checks(TiedProjection, TiedProjection, (6,)).values())
    fails = numerics_checks(TiedProjectionDetached, TiedProjection, (6,))
    assert [m.split(":")[0] for m in fails["param_grads"]] == ["grad of fc.weight"], fails
    assert served == []  # both passes saw the other use and reran the reference with autograd
    assert not fails["bn_running_stats"]


class HookedAndDirect(nn.Module):
    """A Linear called through .forward (no module hooks run) and one whose output a forward
    hook replaces: the formula follows F.linear itself, so neither changes its gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 9), nn.Linear(9, 3)
        self.b.register_forward_hook(lambda _m, _i, out: out * 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a.forward(x)))


def test_the_formula_follows_f_linear_past_module_hooks_and_direct_forward_calls() -> None:
    torch.manual_seed(0)
    model = HookedAndDirect().double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    model(x).square().sum().backward()
    autograd = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with compare.linear_grads_by_formula(model, min_numel=1) as capture:
        model(x).square().sum().backward()
    assert capture.other_use is None and set(capture.grads) == {"a.weight", "b.weight"}
    for name, grad in capture.grads.items():
        assert compare_tensors(name, autograd[name], grad) is None, name
