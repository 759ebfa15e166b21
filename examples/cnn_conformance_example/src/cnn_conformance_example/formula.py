"""Closed form of LeNet-5 from its config (LeCun et al. 1998, Fig. 2): the gate's oracle.

``config`` keys (``lenet.CONFIG``): ``in_channels``, ``c1``, ``c3``, ``c5`` (feature maps),
``f6`` (units), ``kernel`` (5), ``pool`` (2), ``num_classes``. Rows carry the model's
qualified module names: ``c1``, ``s2``, ``c3``, ``s4``, ``c5`` (5x5 convs with bias, 2x2 max
pools), ``f6`` and ``output`` (Linear). At 32x32: C1 6x28x28, S2 6x14x14, C3 16x10x10,
S4 16x5x5, C5 120x1x1; parameters 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.formulas.layers import Plan, Tracer

__all__ = ["plan"]


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    k, p = int(config["kernel"]), int(config["pool"])
    t = Tracer(tuple(input_size))
    t.conv("c1", int(config["c1"]), kernel=k).act("relu").maxpool("s2", kernel=p, stride=p)
    t.conv("c3", int(config["c3"]), kernel=k).act("relu").maxpool("s4", kernel=p, stride=p)
    t.conv("c5", int(config["c5"]), kernel=k).act("relu").flatten()
    t.linear("f6", int(config["f6"])).act("relu")
    t.linear("output", int(config["num_classes"]))
    return t.plan
