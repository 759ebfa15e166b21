"""The probes on registered architectures: CIFAR plain vs ResNet, torchvision-style ResNets.

Oracles: the conv-BN-ReLU chain law (Yang et al. 2019: x pi/(pi-1) per layer, with the
nets' own widths and strides, derived in theory.bn_chain_log_grad_ratio; equal-shape case
checked in test_gradflow_theory), torchvision's documented ``zero_init_residual`` semantics
(torchvision/models/resnet.py: resnet18 has 5 identity blocks, 3 downsample blocks and 32 branch
tensors with zero gradient; resnet50 12 / 4 / 112), and BN scale invariance (P11).
"""

from __future__ import annotations

import math

import pytest

from conformance.gradflow.models import (
    cifar_depth_sweep,
    resnet_bn_scale_invariance,
    zero_init_residual_check,
)


def test_cifar_plain_nets_follow_the_bn_chain_law() -> None:
    """He et al. 2016's plain20 / plain110 (circular padding, so the circular-padding law
    applies): the first conv's gradient exceeds the last's by kappa per layer, corrected at
    the stem and the two stride-2 transitions; +-0.05 per layer in 2nd moment (P9)."""
    points = cifar_depth_sweep([20, 110], seeds=2, kinds=("plain",), padding="circular")
    for p in points:
        assert p.predicted_log_ratio is not None
        # the law itself, by hand for 6n+2 layers: 6n+1 convs, 6n ratios: one 1/2 at the
        # stem, two kappa/2 at the transitions, kappa for the other 6n-3
        n = (p.depth - 2) // 6
        by_hand = 0.5 * (
            math.log(0.5) + 2 * math.log(math.pi / (math.pi - 1) / 2)
            + (6 * n - 3) * math.log(math.pi / (math.pi - 1))
        )
        # (the code uses each conv's empirical weight variance; they telescope to the first
        # and last conv's sampling error, a few % in 2nd moment)
        assert p.predicted_log_ratio == pytest.approx(by_hand, abs=0.05)
        assert abs(p.log_ratio - by_hand) <= 0.5 * 0.05 * (p.convs - 1), p


def test_cifar_resnet_gradient_stays_far_below_the_plain_net() -> None:
    """The published nets (zero padding): the ResNet's first-conv / last-conv gradient ratio
    stays positive (no vanishing) but misses more than half (in log) of the exponential
    growth the chain law predicts for the plain net of the same depth (P9)."""
    points = cifar_depth_sweep([56, 110], seeds=1)
    by = {(p.kind, p.depth): p for p in points}
    for depth in (56, 110):
        plain, res = by[("plain", depth)], by[("resnet", depth)]
        assert res.log_ratio > 0  # the gradient does not vanish either
        assert plain.predicted_log_ratio is not None
        assert plain.log_ratio - res.log_ratio > 0.5 * plain.predicted_log_ratio, (plain, res)


@pytest.mark.parametrize(
    "name,size,identity,downsample,zero", [("resnet18", 64, 5, 3, 32), ("resnet50", 32, 12, 4, 112)]
)
def test_zero_init_residual_blocks_are_exactly_identity(
    name: str, size: int, identity: int, downsample: int, zero: int
) -> None:
    report = zero_init_residual_check(name, size=size)
    assert len(report.identity_blocks) == identity and all(report.identity_blocks.values())
    assert len(report.downsample_blocks) == downsample and all(report.downsample_blocks.values())
    assert len(report.zero_grad) == zero
    assert [k for k, ok in report.zero_grad.items() if not ok] == []
    assert [k for k, ok in report.last_bn_grad_nonzero.items() if not ok] == []


def test_resnet18_bn_scale_invariance_with_naive_conv_weights() -> None:
    """P11: every conv of resnet18 feeds a BN; N(0,1)-scale weights (a = 8..48) leave the
    train-mode logits unchanged within rel 1e-3 and divide each weight gradient by a. The
    gradients are compared by norm within 1e-2: BN's eps perturbs the activations by ~1e-4,
    which flips a few ReLU / max-pool kinks and moves single gradient entries by O(1)."""
    r = resnet_bn_scale_invariance("resnet18", size=64, batch=4)
    assert min(r.scales.values()) > 7 and max(r.scales.values()) < 50
    assert r.max_rel_output_diff <= 1e-3
    assert r.max_grad_norm_error <= 1e-2
    assert r.max_grad_angle <= 1e-2
