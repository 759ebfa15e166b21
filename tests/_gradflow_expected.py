"""Expected values the gradient-flow tests share, written out from He et al. 2015 (the laws of
conformance/gradflow/theory.py).

Independent of conformance/gradflow/theory.py on purpose: a test compares the engine's
predictions and measurements with these hand-written laws.
"""

from __future__ import annotations

import math

KAPPA = math.pi / (math.pi - 1)  # P8/P9: backward gain of conv-BN-ReLU per layer


def spec_plain_slope(init: str, width: int) -> float:
    """He et al. 2015: per-layer log of n Var[w] / 2 for a 3x3 conv-ReLU layer, n = 9 C."""
    return {
        "he_fan_in": 0.0,
        "he_fan_out": 0.0,
        "xavier": -math.log(2),
        "naive": math.log(4.5 * width),
        "small": math.log(4.5e-4 * width),
        "torch_default": -math.log(6),
    }[init]
