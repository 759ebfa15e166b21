"""``gradflow --model`` on registered architectures: the hooks, the laws' reach, the variants.

Oracles: the meta-device layer table (``conformance.layer_table``, an independent forward pass
with hooks on every module) for which conv and linear calls a model makes; the conv-BN-ReLU
chain law written out by hand for 6n+2 layers (Yang et al. 2019: pi/(pi-1) per layer, 1/2 at
the stem, kappa/2 at the two stride-2 transitions, as in test_gradflow_models); torchvision's
``zero_init_residual`` semantics (torchvision/models/resnet.py: every branch conv before a zero-gamma BN
gets an exactly zero gradient: 2 per BasicBlock, 16 in resnet18).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from _gradflow_expected import KAPPA

import cnn_models
from conformance.gradflow.model_profile import Variant, measure_seed, measure_variant, variants
from conformance.layer_table import layer_table


@pytest.mark.parametrize(
    "name,size", [("cifar_resnet20", 16), ("googlenet", 32), ("mobilenet_v3_small", 32), ("resnet50", 16)]
)
def test_hooks_see_every_conv_and_linear_output(name: str, size: int) -> None:
    (v,) = variants(models=[name])
    run = measure_seed(v, 0, input_size=(3, size, size), batch=2, dtype=torch.float32, device="cpu")
    rows = layer_table(cnn_models.get_spec(name).build, (3, size, size), train=True)
    expected = [r.name for r in rows if r.kind in ("Conv2d", "Linear")]
    assert [r.name for r in run.records] == expected
    unseen = [r.key for r in run.records if not r.grad_seen]
    assert unseen == [], f"{name}: no gradient reached {unseen}"
    assert len(run.weight_grad) == len(expected) and all(math.isfinite(g) for g in run.weight_grad)


def _hand_chain_law(depth: int) -> float:
    """log RMS(dL/dy) at the first conv over the last of cifar_plain{depth} (circular-padding law)."""
    n = (depth - 2) // 6
    return 0.5 * (math.log(0.5) + 2 * math.log(KAPPA / 2) + (6 * n - 3) * math.log(KAPPA))


def test_removed_shortcuts_show_the_chain_law_growth() -> None:
    """cifar_resnet20 and its plain twin (--no-shortcuts), published zero padding: the plain net's
    first-conv gradient exceeds the last conv's as the chain law says, within P9's 0.05 per layer
    (second moment); the residual net's grows by less than half of that (in log)."""
    own, twin = variants(models=["cifar_resnet20"], no_shortcuts=True)
    assert twin.base == "cifar_resnet20" and twin.change == "shortcuts removed"
    assert twin.label.startswith("cifar_plain20")
    plain = measure_variant(twin, seeds=2, input_size=(3, 32, 32), batch=8)
    res = measure_variant(own, seeds=2, input_size=(3, 32, 32), batch=8)
    law = _hand_chain_law(20)
    ratio, _ = plain.first_to_last_conv_grad()
    assert len(plain.convs) == 19
    assert abs(ratio - law) <= 0.5 * 0.05 * (len(plain.convs) - 1), (ratio, law)
    assert res.first_to_last_conv_grad()[0] < 0.5 * law
    assert plain.deviation("act")[0] == 19 and plain.deviation("grad")[0] == 18  # the chain spans the net


def _circular_plain20() -> nn.Module:
    model = cnn_models.get_model("cifar_plain20")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.padding_mode = "circular"
    return model


def test_reach_predicts_the_chain_law_without_borders() -> None:
    """With circular padding the laws' prediction along the whole chain is the hand-written law (up to
    the seeds' own weight variances, a few % in second moment), and the measurement agrees with both."""
    v = Variant(label="plain20 circular", base="plain20 circular", change="", factory=_circular_plain20)
    p = measure_variant(v, seeds=2, input_size=(3, 16, 16), batch=8)
    law = _hand_chain_law(20)
    assert p.predicted_first_to_last_conv_grad() == pytest.approx(law, abs=0.1)
    assert abs(p.first_to_last_conv_grad()[0] - law) <= 0.5 * 0.05 * (len(p.convs) - 1)
    forward = [float(np.mean(layer.pred_act)) for layer in p.convs[1:]]
    assert forward == pytest.approx([0.0] * len(forward), abs=0.15)  # He init after BN-ReLU: n E[w^2] / 2 = 1


def test_zero_init_residual_zeroes_every_branch_conv_gradient() -> None:
    own, zero = variants(models=["resnet18"], zero_init_residual=True)
    assert zero.change == "zero_init_residual" and zero.reference == own.label
    p = measure_variant(zero, seeds=1, input_size=(3, 32, 32), batch=2)
    assert p.finite  # exact zeros are measurements, not overflow
    expected = [f"layer{s}.{b}.conv{c}" for s in range(1, 5) for b in range(2) for c in (1, 2)]
    assert sorted(p.zero_grad_layers) == sorted(expected)
