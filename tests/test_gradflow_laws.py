"""Measured gradient flow of the experiment nets against the theory's predictions (conformance/gradflow/theory.py).

Every expected value is a closed form written out here from its source (the laws P1-P12 of
conformance/gradflow/theory.py and their papers): He et al. 2015 (n Var[w] / 2 per layer), De & Smith 2020
(q_0 + l), the kappa = pi/(pi-1) laws (P8, P9), Hanin 2018 (finite-width drift <= 5/(2C) per layer, P5),
the float32 range. Nets are float64, seeded (seeds 0..4), 8x8 maps, circular padding.

Tolerances: the trial tolerances where they are stated for these conditions. Where a
test sweeps depth/width with hypothesis, the band is the trial tolerance widened downwards to
the P5 drift bound, plus t * SE of the seeds (Student t, 4 dof): at C = 32 the drift is
about -0.07 forward / -0.02 backward per layer over 40 seeds, so a 5-seed mean misses the
symmetric +-0.062 / 0.013 at depths >= 16 (it holds at the fixed depth 12 below). The whole
hypothesis domain (depth 4..24, C in {16, 32}, every init) was checked to pass with a margin
>= 0.04, so the test cannot flake; the normal inits are the same draws rescaled, so each
(depth, C) is one network family.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _gradflow_expected import KAPPA, spec_plain_slope
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.gradflow import (
    Probe,
    Setting,
    bn_scale_invariance,
    build_net,
    first_layer_gradient_vs_depth,
    float32_onset,
    float32_onset_measured,
    probe_names,
    run_setting,
    zero_init_identity,
)

T975_4 = 2.776  # Student t, 97.5%, 4 degrees of freedom (5 seeds)



@pytest.mark.parametrize("init", ["he_fan_in", "xavier", "naive", "torch_default"])
def test_plain_relu_slopes_within_spec_tolerance(init: str) -> None:
    """The trial tolerance as stated: C = 32, 5 seeds: forward within 0.062, backward within 0.013."""
    res = run_setting(Setting(depth=12, width=32, init=init, batch=16), seeds=5)
    expected = spec_plain_slope(init, 32)
    fwd, bwd = res.slope_forward[0], res.slope_backward[0]
    assert abs(fwd - expected) <= 0.062, f"{init}: forward slope {fwd:.4f}, theory {expected:.4f}"
    assert abs(bwd - expected) <= 0.013, f"{init}: backward slope {bwd:.4f}, theory {expected:.4f}"


@settings(max_examples=6)
@given(
    depth=st.integers(4, 24),
    width=st.sampled_from([16, 32]),
    init=st.sampled_from(["he_fan_in", "he_fan_out", "xavier", "naive", "small", "torch_default"]),
)
def test_plain_relu_slopes_property(depth: int, width: int, init: str) -> None:
    res = run_setting(Setting(depth=depth, width=width, init=init, batch=16), seeds=5)
    expected = spec_plain_slope(init, width)
    tol_f, tol_b = (0.062, 0.013) if width >= 32 else (0.159, 0.030)  # trial tolerances (C=16 row)
    drift = 5 / (2 * width)  # P5: the mean of the log drifts down by up to 5/(2C) per layer
    for name, (mean, se), tol in (
        ("forward", res.slope_forward, tol_f),
        ("backward", res.slope_backward, tol_b),
    ):
        err = mean - expected
        assert -(max(tol, drift) + T975_4 * se) <= err <= tol + T975_4 * se, (
            f"{name} slope {mean:.4f} vs theory {expected:.4f} (depth {depth}, C {width}, "
            f"{init}): error {err:+.4f}, SE {se:.4f}"
        )


@pytest.mark.parametrize("residual,expected", [("on", math.log(2)), ("scaled", 0.0)])
@pytest.mark.parametrize("depth", [8, 16])
def test_residual_without_bn(residual: str, expected: float, depth: int) -> None:
    """P6: x + F(x), He branch: x2 per block both ways; (x + F)/sqrt2: flat. +-0.10 (C>=32)."""
    res = run_setting(
        Setting(depth=depth, width=32, init="he_fan_in", residual=residual, batch=16), seeds=5
    )
    assert abs(res.slope_forward[0] - expected) <= 0.10, res.slope_forward
    assert abs(res.slope_backward[0] - expected) <= 0.10, res.slope_backward


def test_zero_initialised_branch_is_exactly_the_identity() -> None:
    """P6 / SkipInit / Fixup: with the last branch conv at zero, x_L == x_0 bit for bit and
    the gradient reaching every block is the probe direction g itself."""
    gen = torch.Generator().manual_seed(0)
    net = build_net(depth=6, width=8, init="naive", residual="zeroinit", bn=True, generator=gen)
    x = torch.randn(4, 8, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 8, 8, 8, generator=gen, dtype=torch.float64)
    with Probe(net, modules=probe_names(6, "zeroinit")) as probe:
        out = net(x)
        (g * out).sum().backward()
    assert torch.equal(out, x)
    assert torch.equal(x.grad, g)
    moments = {r.grad_second_moment for r in probe.records}
    assert len(moments) == 1  # every block sees exactly the same gradient
    assert moments.pop() == pytest.approx(float((g**2).mean()), rel=1e-12)
    blocks = [f"blocks.{i}" for i in range(6)]
    assert zero_init_identity(net, x.detach(), blocks=blocks) == dict.fromkeys(blocks, True)
    res = run_setting(Setting(depth=6, width=8, init="he_fan_in", residual="zeroinit"), seeds=2)
    assert res.slope_forward[0] == 0.0 and res.slope_backward[0] == 0.0


def test_bn_residual_grows_linearly_and_backward_follows_p8() -> None:
    """P7: E[x_l^2] = q_0 + l (q_0 = 1), +-7% on the whole profile; P8: d_l = d_{l+1}
    (1 + kappa / v_l), v_l = 1 + l (1 - 1/pi), +-5%."""
    depth = 24
    res = run_setting(
        Setting(depth=depth, width=32, init="he_fan_in", residual="on", bn=True, batch=16),
        seeds=5,
    )
    blocks = np.arange(depth + 1)
    measured_q = np.exp(res.profile_forward)
    np.testing.assert_array_less(np.abs(measured_q / (1 + blocks) - 1), 0.07)
    v = 1 + blocks * (1 - 1 / math.pi)
    d = np.ones(depth + 1)
    for i in range(depth - 1, -1, -1):
        d[i] = d[i + 1] * (1 + KAPPA / v[i])
    measured_d = np.exp(res.profile_backward)
    np.testing.assert_array_less(np.abs(measured_d / d - 1), 0.05)


@pytest.mark.parametrize("init", ["he_fan_in", "naive"])
def test_plain_conv_bn_relu_forward_flat_backward_kappa(init: str) -> None:
    """P9: train-mode conv-BN-ReLU: forward flat, backward x pi/(pi-1) per layer (+-0.05)."""
    res = run_setting(Setting(depth=16, width=32, init=init, bn=True, batch=16), seeds=5)
    assert abs(res.slope_forward[0]) <= 0.05, res.slope_forward
    assert abs(res.slope_backward[0] - math.log(KAPPA)) <= 0.05, res.slope_backward


@pytest.mark.parametrize("init,depth", [("naive", 40), ("small", 56)])
def test_float32_overflow_and_underflow_depth(init: str, depth: int) -> None:
    """P12: N(0,1) overflows and N(0, 0.01^2) underflows (all-zero activations) at the layer
    the variance law predicts, within one layer of the range the P5 drift allows."""
    s = Setting(depth=depth, width=32, init=init, batch=8)
    predicted = float32_onset(s)
    expected_kind = "overflow" if init == "naive" else "underflow"
    assert predicted.kind == expected_kind
    for kind, layer in float32_onset_measured(s, seeds=2):
        assert kind == expected_kind
        assert layer is not None
        assert predicted.earliest - 1 <= layer <= predicted.latest + 1, (
            f"{init}: first {kind} at layer {layer}, predicted "
            f"{predicted.earliest}..{predicted.latest} (+-1)"
        )


def test_bn_scale_invariance_with_naive_weights() -> None:
    """P11: every conv that feeds a BN re-drawn at N(0,1) scale: train-mode outputs equal
    within rel 1e-3 and each weight gradient divided by the scale."""
    gen = torch.Generator().manual_seed(1)
    net = build_net(depth=8, width=32, init="he_fan_in", residual="off", bn=True, generator=gen)
    x = torch.randn(16, 32, 8, 8, generator=gen, dtype=torch.float64)
    convs = [f"convs.{i}" for i in range(7)]  # the last conv feeds no BN
    r = bn_scale_invariance(net, x, convs=convs, scheme="naive")
    assert all(a > 10 for a in r.scales.values())  # sqrt(n / 2) = 12 for C = 32
    assert r.max_rel_output_diff <= 1e-3
    assert r.max_grad_norm_error <= 1e-3
    assert r.max_grad_angle <= 1e-6


def test_first_layer_gradient_vs_depth_up_to_110() -> None:
    """Plain conv-BN-ReLU: the first layer's gradient grows exponentially, RMS ratio
    kappa^((L-2)/2) / sqrt(2) (P9, +-0.05 per layer in 2nd moment; width 16); residual + BN:
    the P8 power law (+-5% in 2nd moment, stated for C >= 32: width 32), far below it."""
    depths = [8, 32, 110]
    plain = first_layer_gradient_vs_depth(
        depths, residual="off", bn=True, width=16, seeds=2, batch=8
    )
    res = first_layer_gradient_vs_depth(depths, residual="on", bn=True, width=32, seeds=3, batch=8)
    for p, r, depth in zip(plain, res, depths, strict=True):
        expected_plain = 0.5 * ((depth - 2) * math.log(KAPPA) + math.log(0.5))
        assert abs(p.log_ratio - expected_plain) <= 0.5 * 0.05 * (depth - 1), (depth, p)
        v = 1 + np.arange(depth) * (1 - 1 / math.pi)
        expected_res = 0.5 * float(np.log1p(KAPPA / v).sum())
        assert abs(r.log_ratio - expected_res) <= 0.5 * math.log(1.05), (depth, r)
        assert p.within_band and r.within_band
    # exponential vs power law: at 110 the plain ratio exceeds the residual one by > 1e6
    assert plain[-1].log_ratio - res[-1].log_ratio > math.log(1e6)
