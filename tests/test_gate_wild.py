"""The gate's verdicts on the wild zoo (tests/wild): faithful strangers pass, one-place mutants fail.

Every implementation in ``wild.IMPLEMENTATIONS`` computes its spec's function exactly (proved
without the gate in tests/test_wild_function.py) while sharing no names, module classes or
layout with ``cnn_models``; so ``check_candidate(build, label, spec=NAME)`` must pass it, and so
must ``reference="torchvision:NAME"`` alone where torchvision has the function. Readings count:
the akamaster CIFAR nets follow the spec's ``option_a_pad="split"`` reading and the sequential
MobileNet its ``pool="avg7"`` reading (224x224 only). An init that departs from a spec whose
init is a convention (the akamaster fc, PyTorch-default or timm-style MobileNet v1 init) is
advisory, not a failure.

Every mutant in ``wild.MUTANTS`` changes one place of one implementation; the gate must reject
it and its failures must name the cause (``Mutant.cause``: a module path of the candidate or an
attribute word, matched case-insensitively). ``wild.REJECTED`` holds models with several
departures, each of which must be named.

timm's ResNet-18/50 with ``zero_init_last=False`` are accepted in tests/test_gate.py
(``FAITHFUL``); here timm's *default* ResNet-18 is checked instead: torchvision's function, but
the last BN of each residual branch starts at gamma 0 (Goyal et al. 2017, §5.1), so against
``torchvision:resnet18`` alone every check passes except the init, which names those BNs.
"""

from __future__ import annotations

import pytest
import torch
import wild
from _shared import needs
from wild import IMPLEMENTATIONS, MUTANTS, REJECTED, Implementation

from conformance.check import check_candidate
from conformance.gate_report import Report

# timm_resnet18 / timm_resnet50 (zero_init_last=False) are test_gate.py's FAITHFUL cases already
_COVERED_ELSEWHERE = {"timm_resnet18", "timm_resnet50"}


def _text(report: Report) -> str:
    return "\n".join([*report.failures, report.error or ""]).lower()


PASS_CASES = [
    (impl, target)
    for impl in IMPLEMENTATIONS
    if impl.name not in _COVERED_ELSEWHERE
    for target in ("spec", *([f"torchvision:{impl.torchvision}"] if impl.torchvision else []))
]


@pytest.mark.parametrize(("impl", "target"), PASS_CASES, ids=[f"{i.name}-{t}" for i, t in PASS_CASES])
def test_wild_implementation_passes(impl: Implementation, target: str) -> None:
    needs(impl.needs, impl.name)
    torch.manual_seed(0)
    if target == "spec":
        report = check_candidate(impl.build, impl.name, spec=impl.spec)
    else:
        report = check_candidate(impl.build, impl.name, reference=target)
    assert report.passed, f"{impl.name} ({impl.differs}) vs {target}:\n{report.format(limit=8)}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_wild_mutant_is_rejected_naming_its_cause(mutant: wild.Mutant) -> None:
    impl = wild.implementation(mutant.of)
    needs(impl.needs, impl.name)
    torch.manual_seed(0)
    report = check_candidate(mutant.build, mutant.name, spec=impl.spec)
    assert not report.passed, f"{mutant.name} ({mutant.change}) passed:\n{report.format()}"
    missing = [c for c in mutant.cause if c.lower() not in _text(report)]
    assert not missing, f"{mutant.name} ({mutant.change}): no failure names {missing}\n{report.format(limit=8)}"


@pytest.mark.parametrize("case", REJECTED, ids=[r.name for r in REJECTED])
def test_rejected_model_names_every_departure(case: wild.Rejected) -> None:
    torch.manual_seed(0)
    report = check_candidate(case.build, case.name, spec=case.spec)
    assert not report.passed, f"{case.name} passed:\n{report.format()}"
    missing = [c for c in case.cause if c.lower() not in _text(report)]
    departures = "; ".join(case.departures)
    assert not missing, f"{case.name} ({departures}): no failure names {missing}\n{report.format(limit=8)}"


def test_timm_default_resnet18_departs_from_torchvision_in_init_only() -> None:
    needs("timm")
    torch.manual_seed(0)
    report = check_candidate(wild.timm_zoo.build_resnet18_zero_init_last, "timm resnet18 (default)",
                             reference="torchvision:resnet18")
    failing = {c.name for c in report.checks if not c.passed}
    assert report.error is None and failing == {"init"}, report.format(limit=8)
    assert "bn2" in _text(report), report.format(limit=8)
