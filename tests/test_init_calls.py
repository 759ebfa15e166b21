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
    # var of a sample variance: (kurtosis - 1) sigma^4 / n, kurtosis 3 for a normal (1.8 uniform)
    assert abs(var / drawn.std**2 - 1) <= 6 * math.sqrt(2 / n), f"{label}: var {var}, read {drawn.describe()}"
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
    assert not torch.equal(_Seq().weight.detach(), expected)  # a plain build spent them on uniform_


class _Reads(nn.Module):
    """Whatever reads a weight while the builder runs sees it filled."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(16, 8)
        self.c = nn.Linear(16, 8)
        self.d = nn.Linear(16, 8)
        with torch.no_grad():
            self.a.weight.mul_(0.0)  # arithmetic in place: all zeros
            self.b.weight.data.copy_(torch.arange(128.0).reshape(8, 16))  # through .data
            self.c.weight[0].fill_(7.0)  # a slice: row 0 only
            self.largest = float(self.d.weight.abs().max())  # a value read off the weights
        self.e = nn.Linear(16, 8)
        self.e.weight = self.a.weight  # tied


def test_reads_while_the_builder_runs_see_the_weights_filled() -> None:
    model = build_fresh(_Reads)
    assert bool(model.a.weight.eq(0).all())
    assert torch.equal(model.b.weight.detach(), torch.arange(128.0).reshape(8, 16))
    c = model.c.weight.detach()
    assert bool(c[0].eq(7.0).all()) and float(c[1:].std()) > 0  # the rest as nn.Linear draws it
    assert model.largest == float(model.d.weight.detach().abs().max()) > 0
    assert model.e.weight is model.a.weight
    default = InitScheme(conv="torch_default", linear="torch_default", linear_bias="torch_default", source="test")
    assert init_failures(nn.Sequential(model.d), default) == []
    failures = init_failures(nn.Sequential(model.c), default)  # row 0 at 7: outside U(+-1/4)
    assert any("has values outside +-0.25 (max |w| 7)" in f for f in failures), failures


@pytest.mark.parametrize("name", ["vgg11", "wide_resnet50_2", "googlenet", "mobilenet_v3_small"])
def test_a_fresh_build_follows_the_declared_scheme_as_a_plain_build_does(name: str) -> None:
    spec = cnn_models.get_spec(name)
    wrong = dataclasses.replace(spec.init, conv="xavier_uniform", linear="kaiming_normal_fan_in")
    torch.manual_seed(0)
    fresh = build_fresh(spec.build)
    assert init_failures(fresh, spec.init) == []
    assert _modules(init_failures(fresh, wrong)) == _modules(declaration_failures(_tv(name), wrong)[0])


class _Catches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(4))
        self.caught = ""
        try:
            nn.init.xavier_uniform_(self.bias)  # a 1-d tensor has no fans: torch raises
        except ValueError as exc:
            self.caught = str(exc)
        nn.init.zeros_(self.bias)


def test_a_fill_that_raises_raises_where_the_builder_called_it() -> None:
    """Not later, from the held calls (where the gate would take it for its own fault)."""
    model = build_fresh(_Catches)
    assert "fewer than 2 dimensions" in model.caught
    assert bool(model.bias.eq(0).all())
