"""A freshly built model follows the initialisation scheme its spec declares.

Every registered architecture's fresh init is checked inside the full gate (check "init" in
tests/test_conformance_gate.py); this file tests zero-init residuals and the checker itself.
The statistical bounds (6 standard errors per layer, see conformance/init_check.py) come from
the sampling distribution of the variance, so they cannot flake; constants are exact.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import cnn_models
from cnn_models import InitScheme
from conformance.init_check import init_failures


# Every architecture with a zero_init_residual flag is checked with it by the gate (its "init"
# check builds the model with the flag; tests/test_conformance_gate.py asserts one zeroed BN
# per residual block). Here: the model and the checker directly, on the two block types.
@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d"])
def test_zero_init_residual_zeroes_last_bn_of_every_block(name: str) -> None:
    spec = cnn_models.get_spec(name)
    model = spec.build(zero_init_residual=True)
    zero = frozenset(
        n for n, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and n.startswith("layer")
        and n.rsplit(".", 1)[-1] in spec.zero_init_residual_bns
    )
    assert len(zero) == sum(spec.config["layers"]), f"{name}: one zeroed BN per residual block"
    assert init_failures(model, spec.init, zero) == []


def test_gate_rejects_a_zero_init_flag_that_zeroes_nothing() -> None:
    """The gate's init check with a zero_init_residual factory that ignores the flag."""
    from conformance.check import check

    spec = cnn_models.get_spec("resnet18")
    report = check(spec.build, spec=spec, zero_init_factory=lambda: spec.build(zero_init_residual=False),
                   numerics=False)
    result = next(c for c in report.checks if c.name == "init")
    assert result.status == "fail"
    assert any(f.startswith("zero_init_residual=True: layer1.0.bn2") and "zero-init residual" in f
               for f in result.failures), result.failures
    assert len(result.failures) == sum(spec.config["layers"])  # each block's BN named once


# --- the checker itself must be able to fail (otherwise the tests above prove nothing) -------


def _conv(std: float, n: int = 64) -> nn.Module:
    conv = nn.Conv2d(n, n, 3, bias=False)
    nn.init.normal_(conv.weight, 0.0, std)
    return nn.Sequential(conv)


def test_checker_rejects_fan_in_vs_fan_out_and_wrong_scale() -> None:
    torch.manual_seed(0)
    fan_out = InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01", source="test")
    # conv 32 -> 64: fan_in 288, fan_out 576 differ by 2x in variance
    conv = nn.Conv2d(32, 64, 3, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    assert any("variance" in f for f in init_failures(nn.Sequential(conv), fan_out))
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    assert init_failures(nn.Sequential(conv), fan_out) == []
    # naive N(0,1) instead of He
    assert init_failures(_conv(1.0), fan_out)


def test_checker_rejects_uniform_for_normal_and_bn_constants() -> None:
    torch.manual_seed(0)
    scheme = InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01", source="test")
    conv = nn.Conv2d(64, 64, 3, bias=False)
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (64 * 9))  # same variance, uniform law
    nn.init.uniform_(conv.weight, -bound, bound)
    assert any("kurtosis" in f for f in init_failures(nn.Sequential(conv), scheme))
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight[3] = 0.5
    assert any("BN weight expected all 1" in f for f in init_failures(nn.Sequential(bn), scheme))


# each scheme's law is written out from its source; torch's own init functions draw the weights
SCHEMES = {
    "kaiming_uniform_fan_in": lambda w: nn.init.kaiming_uniform_(w, a=0, mode="fan_in", nonlinearity="relu"),
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_uniform_and_xavier_scheme_accepts_its_law_and_rejects_its_neighbours(scheme: str) -> None:
    torch.manual_seed(0)
    declared = InitScheme(conv=scheme, linear=scheme, linear_bias="zeros", source="test")
    conv = nn.Conv2d(32, 64, 3, bias=False)  # fan_in 288, fan_out 576: the three laws differ
    lin = nn.Linear(256, 128)
    nn.init.zeros_(lin.bias)
    for w in (conv.weight, lin.weight):
        SCHEMES[scheme](w)
    assert init_failures(nn.Sequential(conv, lin), declared) == []
    for other in sorted(set(SCHEMES) - {scheme}):  # the same layers drawn by another of the laws
        with torch.no_grad():
            SCHEMES[other](conv.weight)
        assert init_failures(nn.Sequential(conv), declared), f"{other} passed as {scheme}"


def test_checker_rejects_nonzero_bias() -> None:
    scheme = InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01", source="test")
    lin = nn.Linear(256, 256)
    nn.init.normal_(lin.weight, 0, 0.01)
    assert any("bias expected all zeros" in f for f in init_failures(nn.Sequential(lin), scheme))
    nn.init.zeros_(lin.bias)
    assert init_failures(nn.Sequential(lin), scheme) == []


def test_a_large_layer_is_sampled_at_a_stride_yet_every_value_is_bounded() -> None:
    """Above 2**22 weights the moments come from every k-th value (iid under the law); the
    bound of a uniform law is still checked on every value."""
    scheme = InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01", source="test")
    gen = torch.Generator().manual_seed(0)
    lin = nn.Linear(6000, 1000, bias=False)  # 6M weights: sampled 1 in 2
    with torch.no_grad():
        lin.weight.normal_(0.0, 0.01, generator=gen)
    assert init_failures(nn.Sequential(lin), scheme) == []
    with torch.no_grad():
        lin.weight.mul_(1.03)  # a 6 % variance error: 2**22 values resolve 0.4 %
    (msg,) = init_failures(nn.Sequential(lin), scheme)
    assert "variance" in msg and f"n={6_000_000 // 2} of 6000000 values, 1 in 2" in msg
    uniform = InitScheme(conv="torch_default", linear="torch_default", source="test")
    bound = 1.0 / math.sqrt(6000)
    with torch.no_grad():
        lin.weight.uniform_(-bound, bound, generator=gen)
        lin.weight[0, 1] = 2 * bound  # an odd index: not in the 1-in-2 sample
    assert any("outside" in f for f in init_failures(nn.Sequential(lin), uniform))
