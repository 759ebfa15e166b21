"""Theory module against closed forms written out here from their sources (no nets run).

Sources: the laws P1-P3, P7-P9 of conformance/gradflow/theory.py: He et al. 2015 Eqs. (10)/(14),
Glorot & Bengio 2010, PyTorch's documented default conv init (U(-1/sqrt(fan_in), ..)),
De & Smith 2020 (q_0 + l), the kappa = pi/(pi-1) derivation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _gradflow_expected import KAPPA, spec_plain_slope
from hypothesis import given
from hypothesis import strategies as st

from conformance.gradflow import Setting, predict
from conformance.gradflow.theory import ConvShape, bn_chain_log_grad_ratio


@given(
    depth=st.integers(3, 60),
    width=st.integers(1, 128),
    init=st.sampled_from(["he_fan_in", "he_fan_out", "xavier", "naive", "small", "torch_default"]),
)
def test_plain_predicted_slopes_are_the_spec_closed_forms(depth: int, width: int, init: str) -> None:
    p = predict(Setting(depth=depth, width=width, init=init))
    expected = spec_plain_slope(init, width)
    assert p.slope_forward == pytest.approx(expected, abs=1e-9)
    assert p.slope_backward == pytest.approx(expected, abs=1e-9)
    # the whole profile: E[y_1^2] = n Var[w] (input N(0, 1)), then x (n Var[w] / 2) per layer
    assert p.forward[0] == pytest.approx(expected + math.log(2), abs=1e-9)
    assert p.backward[-1] == 0.0  # E[g^2] = 1 at the output


@given(depth=st.integers(1, 40), init=st.sampled_from(["he_fan_in", "xavier", "naive"]))
def test_bn_residual_profiles_are_the_de_smith_and_p8_laws(depth: int, init: str) -> None:
    width = 32
    g = {"he_fan_in": 1.0, "xavier": 0.5, "naive": 4.5 * width}[init]  # n Var[w_2] / 2
    p = predict(Setting(depth=depth, width=width, init=init, residual="on", bn=True))
    eps = 1e-5  # BatchNorm's default; the law is exact up to v / (v + eps)
    q = 1 + g * np.arange(depth + 1)  # q_l = q_0 + l g (De & Smith 2020)
    np.testing.assert_allclose(np.exp(p.forward), q, rtol=1e-3)
    v = 1 + g * (1 - 1 / math.pi) * np.arange(depth + 1)  # per-channel variance of x_l
    d = np.ones(depth + 1)
    for k in range(depth - 1, -1, -1):  # d_l = d_{l+1} (1 + kappa g / v_l)
        d[k] = d[k + 1] * (1 + KAPPA * g / v[k])
    np.testing.assert_allclose(np.exp(p.backward), d, rtol=1e-3 + 10 * eps)


def test_plain_bn_backward_grows_kappa_per_layer() -> None:
    p = predict(Setting(depth=20, width=32, init="naive", bn=True))
    assert p.slope_backward == pytest.approx(math.log(KAPPA), abs=1e-6)
    assert p.slope_forward == pytest.approx(0.0, abs=1e-6)


def test_residual_without_bn_doubles_and_scaled_is_flat() -> None:
    on = predict(Setting(depth=10, width=32, init="he_fan_in", residual="on"))
    scaled = predict(Setting(depth=10, width=32, init="he_fan_in", residual="scaled"))
    zero = predict(Setting(depth=10, width=32, init="naive", residual="zeroinit"))
    assert on.slope_forward == pytest.approx(math.log(2)) and on.slope_backward == pytest.approx(math.log(2))
    assert scaled.slope_forward == pytest.approx(0.0, abs=1e-12)
    assert zero.slope_forward == 0.0 and zero.slope_backward == 0.0


def test_zero_padding_map_model_matches_p3() -> None:
    """P3: on 2x2 maps one zero-padded 3x3 layer keeps exactly 4/9 of the variance; deep
    in a He net on HxH maps the per-layer factor tends to ((1 + 2 cos(pi/(H+1)))/3)^2."""
    two = predict(Setting(depth=1, width=4, init="he_fan_in", padding="zero", spatial=2))
    assert math.exp(two.forward[0]) / (9 * 4 * 2 / 36) == pytest.approx(4 / 9, rel=1e-12)
    h = 8
    deep = predict(Setting(depth=100, width=4, init="he_fan_in", padding="zero", spatial=h))
    asymptotic = ((1 + 2 * math.cos(math.pi / (h + 1))) / 3) ** 2
    assert math.exp(deep.forward[-1] - deep.forward[-2]) == pytest.approx(asymptotic, rel=1e-6)


def test_chain_law_reduces_to_kappa_for_equal_layers() -> None:
    """Equal 3x3 C->C convs, He fan-in: 1/2 from the stem (zero-mean input), then kappa."""
    c = 16
    convs = [ConvShape(c, c, 9, 1, 2 / (9 * c)) for _ in range(10)]
    assert bn_chain_log_grad_ratio(convs) == pytest.approx(math.log(0.5) + 8 * math.log(KAPPA))
    # a stride-2 16 -> 32 conv feeds each input position 9/4 outputs of 2x the channels
    down = [ConvShape(c, c, 9, 1, 2 / (9 * c)), ConvShape(c, 2 * c, 9, 4, 2 / (9 * c))]
    assert bn_chain_log_grad_ratio(down) == pytest.approx(math.log(0.5 * 2 * (2 * c) * 9 / 4 / (2 * 9 * c)))


def test_float32_onset_prediction_brackets() -> None:
    from conformance.gradflow.theory import float32_onset

    over = float32_onset(Setting(depth=60, width=32, init="naive", batch=8))
    under = float32_onset(Setting(depth=80, width=32, init="small", batch=8))
    assert over.kind == "overflow" and under.kind == "underflow"
    # worked by hand: 0.5 (log 288 + (l-1) log 144) + 0.5 log(2 ln 16384) > log(3.4028e38)
    m = 8 * 32 * 64
    tail = 0.5 * math.log(2 * math.log(m))
    by_hand = next(
        layer for layer in range(1, 100)
        if 0.5 * (math.log(288) + (layer - 1) * math.log(144)) + tail > math.log(3.4028235e38)
    )
    assert over.layer == by_hand
    assert over.earliest == by_hand <= over.latest <= by_hand + 1
    assert under.earliest <= under.layer == under.latest


def test_settings_refuse_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="depth"):
        Setting(depth=0, width=8, init="naive")
    with pytest.raises(ValueError, match="init"):
        Setting(depth=2, width=8, init="lecun")
    with pytest.raises(ValueError, match="residual"):
        Setting(depth=2, width=8, init="naive", residual="maybe")
