"""Reading a builder's init calls on meta (conformance/init_calls.py) agrees with measuring
the values those calls draw.

The oracle is the drawn values themselves: each call is run for real on the CPU and its
sample mean, variance and largest value are held to the law read from the same call on meta
(6 standard errors, the bound of conformance/init_check.py). For torchvision's builders, one
per init code path, the reading and the statistical measurement of a fresh draw
(``init_failures``) give the same verdict, for the spec's declaration and for a wrong one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision
from hypothesis import given
from hypothesis import strategies as st

import cnn_models
from cnn_models import InitScheme
from conformance.check import check_candidate
from conformance.init_calls import InitUnreadable, build_fresh, declaration_failures, read_init
from conformance.init_check import init_failures

SQRT5 = math.sqrt(5.0)

# (label, what the builder does to its weight w): every form the reader knows
CALLS: list[tuple[str, Callable[[torch.Tensor], Any]]] = [
    ("kaiming_normal_ fan_out relu", lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")),
    ("kaiming_normal_ fan_in leaky 0.2", lambda w: nn.init.kaiming_normal_(w, a=0.2)),
    ("kaiming_uniform_ a=sqrt(5)", lambda w: nn.init.kaiming_uniform_(w, a=SQRT5)),
    ("kaiming_uniform_ fan_out tanh", lambda w: nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="tanh")),
    ("xavier_uniform_ gain 2", lambda w: nn.init.xavier_uniform_(w, gain=2.0)),
    ("xavier_normal_", lambda w: nn.init.xavier_normal_(w)),
    ("normal_ 0.01", lambda w: nn.init.normal_(w, 0.0, 0.01)),
    ("normal_ mean 0.5", lambda w: nn.init.normal_(w, mean=0.5, std=0.2)),
    ("uniform_ -0.3 0.1", lambda w: nn.init.uniform_(w, -0.3, 0.1)),
    ("trunc_normal_ 0.1 at +-2", lambda w: nn.init.trunc_normal_(w, std=0.1, a=-2.0, b=2.0)),
    ("trunc_normal_ 0.5 at +-1.5 (3 std)", lambda w: nn.init.trunc_normal_(w, std=0.5, a=-1.5, b=1.5)),
    ("Tensor.normal_", lambda w: w.normal_(0, 0.05)),
    ("Tensor.uniform_", lambda w: w.uniform_(-0.2, 0.2)),
    ("constant_ 0.25", lambda w: nn.init.constant_(w, 0.25)),
    ("ones_", nn.init.ones_),
    ("zeros_", nn.init.zeros_),
    ("Tensor.fill_", lambda w: w.fill_(3.0)),
    ("Tensor.zero_ after a draw", lambda w: (nn.init.normal_(w), w.zero_())),
]


class _One(nn.Module):
    def __init__(self, shape: tuple[int, ...], call: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(shape))
        with torch.no_grad():
            call(self.weight)


@given(which=st.sampled_from(range(len(CALLS))),
       shape=st.sampled_from([(64, 32, 3, 3), (48, 16, 5, 5), (512, 300), (96, 8, 7, 7), (24, 24, 1, 1)]))
def test_read_law_is_the_law_of_the_drawn_values(which: int, shape: tuple[int, ...]) -> None:
    label, call = CALLS[which]
    _, laws = read_init(lambda: _One(shape, call))
    drawn = laws["weight"]
    torch.manual_seed(which)
    values = _One(shape, call).weight.detach().double().reshape(-1)
    n = values.numel()
    if drawn.kind == "constant":
        assert bool(values.eq(drawn.mean).all()), f"{label}: read {drawn.describe()}, drawn {values[:4].tolist()}"
        return
    mean, var = float(values.mean()), float(values.var())
    assert abs(mean - drawn.mean) <= 6 * drawn.std / math.sqrt(n), f"{label}: mean {mean}, read {drawn.describe()}"
    # var of a sample variance: (kurtosis - 1) sigma^4 / n, kurtosis 3 for a normal (1.8 uniform);
    # a normal truncated at 3 std keeps 0.973 of its variance (1 - 2 * 3 phi(3) / (2 Phi(3) - 1))
    kept = 0.973 if drawn.kind == "normal" and drawn.bound is not None and drawn.bound < 4 * drawn.std else 1.0
    assert abs(var / (kept * drawn.std**2) - 1) <= 6 * math.sqrt(2 / n), f"{label}: var {var}, read {drawn.describe()}"
    if drawn.bound is not None:
        assert float((values - drawn.mean).abs().max()) <= drawn.bound * (1 + 1e-6), label
    if drawn.kind == "uniform":  # a uniform reaches near its bound; a normal of that std would pass 1.73 std
        assert float((values - drawn.mean).abs().max()) >= drawn.bound * 0.99, label


# one builder per init code path of torchvision/models (vgg.py, resnet.py, googlenet.py,
# inception.py, mobilenetv2.py, mobilenetv3.py)
PATHS = ["vgg11_bn", "resnet18", "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_small"]


def _tv(name: str) -> Callable[[], nn.Module]:
    spec = cnn_models.get_spec(name)
    assert spec.torchvision
    return lambda: torchvision.models.get_model(spec.torchvision, num_classes=spec.num_classes,
                                                **spec.torchvision_kwargs)


def _modules(lines: list[str]) -> set[str]:
    return {line.split(":", 1)[0] for line in lines}


@pytest.mark.parametrize("name", PATHS)
def test_reading_torchvisions_init_agrees_with_measuring_a_fresh_draw(name: str) -> None:
    spec = cnn_models.get_spec(name)
    wrong = dataclasses.replace(spec.init, conv="xavier_uniform", linear="kaiming_normal_fan_in")
    read_right, how = declaration_failures(_tv(name), spec.init)
    read_wrong, _ = declaration_failures(_tv(name), wrong)
    torch.manual_seed(0)
    fresh = _tv(name)()
    assert read_right == [] and init_failures(fresh, spec.init) == [], how
    measured_wrong = init_failures(fresh, wrong)
    assert read_wrong and _modules(read_wrong) == _modules(measured_wrong)
    overridden = {n for n, _ in spec.init.overrides}  # drawn as declared per module, not by the swapped scheme
    convs = {n for n, m in fresh.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)} - overridden
    assert _modules(read_wrong) == convs  # every conv and linear weight named, nothing else


class _Written(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.extra = nn.Parameter(torch.empty(4, 4))
        with torch.no_grad():
            if how != "left empty":
                nn.init.zeros_(self.extra)
            if how == "through .data":
                self.conv.weight.data.normal_(0, 0.01)
            elif how == "orthogonal_":
                nn.init.orthogonal_(self.conv.weight)
            elif how == "scaled after the draw":
                self.conv.weight.mul_(0.5)
            elif how == "a slice":
                self.conv.weight[0].zero_()


@pytest.mark.parametrize(("how", "named"), [
    ("through .data", r"Tensor.normal_ wrote into a tensor that is neither a parameter nor a buffer"),
    ("orthogonal_", r"conv.weight: its last write \(nn.init.orthogonal_\) is not"),
    ("scaled after the draw", r"conv.weight: its last write \(Tensor.mul_\) is not"),
    ("a slice", r"Tensor.zero_ wrote into a tensor that is neither"),
    ("left empty", r"extra: no init call wrote it"),
])
def test_a_law_the_calls_do_not_fix_is_unreadable_naming_the_tensor(how: str, named: str) -> None:
    with pytest.raises(InitUnreadable, match=named):
        read_init(lambda: _Written(how))
    assert read_init(lambda: _Written("nothing else"))[1]["extra"].describe() == "all 0"


def test_nn_init_is_restored_when_the_builder_raises() -> None:
    before = {n: getattr(nn.init, n) for n in ("kaiming_normal_", "trunc_normal_", "normal_")}

    def broken() -> nn.Module:
        nn.init.kaiming_normal_(torch.empty(2, 2))
        raise RuntimeError("builder failed")

    with pytest.raises(RuntimeError, match="builder failed"):
        read_init(broken)
    assert {n: getattr(nn.init, n) for n in before} == before


def test_where_torchvisions_calls_cannot_be_read_the_gate_measures_a_fresh_draw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback still catches a wrong declaration (resnet18 declared fan_in; torchvision
    draws fan_out, torchvision/models/resnet.py) and says how it judged."""
    import conformance.check

    def unreadable(*_: Any) -> Any:
        raise InitUnreadable("conv1.weight: (planted)")

    monkeypatch.setattr(conformance.check, "declaration_failures", unreadable)
    spec = cnn_models.get_spec("resnet18")
    wrong = spec.replace(init=dataclasses.replace(spec.init, conv="kaiming_normal_fan_in"))
    report = check_candidate(spec.build, "resnet18 declared fan_in", spec=wrong)
    init = next(c for c in report.checks if c.name == "init")
    assert "measured on a fresh draw; its init calls cannot be read: conv1.weight: (planted)" in init.evidence
    assert any(f.startswith("the spec declares what torchvision does not draw: torchvision:resnet18 conv1:")
               for f in init.failures), init.failures


# --- build_fresh: a builder's draws that a later whole fill overwrites are never made -------


class _Seq(nn.Module):
    """Two draws from one explicit generator into the same weight, the first overwritten."""

    def __init__(self) -> None:
        super().__init__()
        self.gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.empty(64, 32))
        nn.init.uniform_(self.weight, generator=self.gen)
        nn.init.normal_(self.weight, 0.0, 0.01, generator=self.gen)



def test_an_overwritten_draw_is_never_made_and_the_last_call_draws_as_called() -> None:
    expected = torch.empty(64, 32).normal_(0.0, 0.01, generator=torch.Generator().manual_seed(0))
    assert torch.equal(build_fresh(_Seq).weight.detach(), expected)  # the generator's first draws


class _Touches(nn.Module):
    """Each way a builder touches a weight after its fill; a plain build and a fresh one must
    end with the same values (or the same law, where a draw is involved)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d, self.f = (nn.Linear(16, 8) for _ in range(5))
        early = self.f.weight.detach()  # an alias taken before the fill below
        nn.init.normal_(self.f.weight, 0.0, 1.0)
        self.g = nn.Linear(16, 8)
        self.g.weight.data = self.a.weight.data  # g shares a's storage from here on
        with torch.no_grad():
            self.a.weight.mul_(0.0)  # arithmetic in place: all zeros
            self.b.weight.data.copy_(torch.arange(128.0).reshape(8, 16))  # through .data
            self.c.weight[0].fill_(7.0)  # a slice: row 0 only
            self.largest = float(self.d.weight.abs().max())  # a value read off the weights
            early.clamp_(-0.1, 0.1)  # through the early alias
            self.h = nn.Parameter(self.d.weight)  # a new Parameter around d's storage
            self.h.mul_(2.0)
        self.e = nn.Linear(16, 8)
        self.e.weight = self.a.weight  # tied


def test_whatever_touches_a_weight_while_the_builder_runs_sees_it_filled() -> None:
    torch.manual_seed(0)
    plain = _Touches()
    torch.manual_seed(0)
    fresh = build_fresh(_Touches)
    for model in (plain, fresh):
        assert bool(model.a.weight.eq(0).all()) and bool(model.g.weight.eq(0).all())
        assert torch.equal(model.b.weight.detach(), torch.arange(128.0).reshape(8, 16))
        c = model.c.weight.detach()
        assert bool(c[0].eq(7.0).all()) and float(c[1:].abs().max()) <= 0.25  # the rest: U(+-1/sqrt(16))
        assert float(c[1:].std()) > 0.1  # drawn (std 0.144), not left as torch.empty found it
        assert model.largest * 2 == float(model.h.detach().abs().max()) > 0  # read after the draw, then doubled
        f = model.f.weight.detach()
        assert float(f.abs().max()) <= 0.1 + 1e-6 and float(f.std()) > 0.05  # N(0, 1) clamped at +-0.1 (float32)
        assert model.e.weight is model.a.weight


def _caught_1d_fans() -> nn.Module:
    m = nn.Module()
    m.bias = nn.Parameter(torch.empty(4))
    try:
        nn.init.xavier_uniform_(m.bias)  # a 1-d tensor has no fans: torch raises
    except ValueError as exc:
        m.caught = str(exc)
    return m


def _caught_leaf_fill() -> nn.Module:
    m = nn.Module()
    m.w = nn.Parameter(torch.empty(4, 4))
    try:
        m.w.normal_()  # in place on a leaf that requires grad, grad enabled: torch raises
    except RuntimeError as exc:
        m.caught = str(exc)
    return m


def _caught_integer_draw() -> nn.Module:
    m = nn.Module()
    m.w = nn.Parameter(torch.zeros(4, dtype=torch.long), requires_grad=False)
    try:
        m.w.normal_()  # a normal draw into an integer tensor: torch raises
    except RuntimeError as exc:
        m.caught = str(exc)
    return m


def _fill_then_unfreeze() -> nn.Module:
    m = nn.Module()
    m.w = nn.Parameter(torch.empty(8, 8), requires_grad=False)
    m.w.normal_(0.0, 1.0)
    m.w.requires_grad = True
    m.caught = f"std {float(m.w.detach().std()):.0f}"
    return m


def _under_inference_mode() -> nn.Module:
    with torch.inference_mode():
        m = nn.Linear(8, 8)
    m.caught = "built"
    return m


@pytest.mark.parametrize("builder", [_caught_1d_fans, _caught_leaf_fill, _caught_integer_draw, _fill_then_unfreeze,
                                     _under_inference_mode])
def test_a_call_torch_refuses_is_refused_where_the_builder_made_it(builder: Callable[[], nn.Module]) -> None:
    """Not later, from the held calls: the builder sees what a plain build sees."""
    plain, fresh = builder(), build_fresh(builder)
    assert plain.caught and fresh.caught == plain.caught


class _Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(8, 8))
        self.w.normal_(0.0, 0.01)  # a candidate's bug: in place on a leaf that requires grad


def test_a_builders_own_error_is_the_candidates_not_the_gates() -> None:
    from conformance.check import _gate_fault

    with pytest.raises(RuntimeError, match="leaf Variable that requires grad") as info:
        build_fresh(_Raises)
    assert not _gate_fault(info.value)


@pytest.mark.parametrize("name", ["vgg11", "wide_resnet50_2", "googlenet", "mobilenet_v3_small"])
def test_a_fresh_build_follows_the_declared_scheme_as_a_plain_build_does(name: str) -> None:
    spec = cnn_models.get_spec(name)
    wrong = dataclasses.replace(spec.init, conv="xavier_uniform", linear="kaiming_normal_fan_in")
    torch.manual_seed(0)
    fresh, plain = build_fresh(spec.build), spec.build()
    assert init_failures(fresh, spec.init) == []
    assert _modules(init_failures(fresh, wrong)) == _modules(init_failures(plain, wrong)) != set()


# --- what read_init cannot see is unreadable, not misread -------------------------------------

_TRUNC_BY_NAME = nn.init.trunc_normal_  # bound before any build, as `from torch.nn.init import ...` does


class _ByName(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 64)
        if how == "trunc_normal_ by a name bound early":
            _TRUNC_BY_NAME(self.fc.weight, std=0.02)  # returns at once on meta, through no override
        elif how == "an assignment to .data":
            self.fc.weight.data = torch.zeros(64, 64)


@pytest.mark.parametrize(("how", "named"), [
    ("trunc_normal_ by a name bound early", r"fc.weight: its last write \(a test of .is_meta"),
    ("an assignment to .data", r"fc.weight: its last write \(an assignment to .data\)"),
])
def test_an_init_the_recorder_cannot_see_is_unreadable_not_misread(how: str, named: str) -> None:
    with pytest.raises(InitUnreadable, match=named):
        read_init(lambda: _ByName(how))


def test_a_parametrized_weight_is_measured_and_unreadable() -> None:
    def normed() -> nn.Module:
        return nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(16, 8)))

    default = InitScheme(conv="torch_default", linear="torch_default", linear_bias="torch_default", source="test")
    torch.manual_seed(0)
    assert init_failures(normed(), default) == []  # w = g v / |v| with g = |v| at the start: v's law
    with pytest.raises(InitUnreadable):
        declaration_failures(normed, default)


class _Lin(nn.Module):
    def __init__(self, call: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fc = nn.Linear(512, 512)
        call(self.fc.weight)
        nn.init.zeros_(self.fc.bias)


@pytest.mark.parametrize(("call", "declared", "holds"), [
    (lambda w: nn.init.trunc_normal_(w, std=0.01, a=-2.0, b=2.0), "normal_0.01", True),  # cut 200 std out
    (lambda w: nn.init.normal_(w, 0.0, 0.1), "trunc_normal_0.1", True),  # declared cut at +-2: 20 std
    (lambda w: nn.init.trunc_normal_(w, std=0.1, a=-0.15, b=0.15), "trunc_normal_0.1", False),  # cut at 1.5 std
    (lambda w: nn.init.normal_(w, 0.0, 0.011), "normal_0.01", False),
])
def test_reading_and_measuring_give_one_verdict_on_truncation(call: Callable[[torch.Tensor], Any], declared: str,
                                                               holds: bool) -> None:
    scheme = InitScheme(conv="torch_default", linear=declared, source="test")
    read, _ = declaration_failures(lambda: _Lin(call), scheme)
    torch.manual_seed(0)
    measured = init_failures(_Lin(call), scheme)
    assert (read == [], measured == []) == (holds, holds), (read, measured)
