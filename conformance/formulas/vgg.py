"""Closed form of a VGG from its layer list (Simonyan & Zisserman 2015, Table 1).

``config`` keys: ``cfg`` (ints = 3x3 conv widths, pad 1; "M" = 2x2 max pool, stride 2),
``batch_norm`` (BatchNorm2d after every conv), ``num_classes``. Row names follow
torchvision's layout: ``features.<i>`` numbered in order (conv, [bn], relu per int; one
pool per "M"), ``avgpool`` (adaptive to 7x7), ``classifier.0/3/6`` (Linear) with ReLU at
1/4 and Dropout at 2/5.

Per conv of width ``c`` on ``c_in`` channels at an ``h x w`` map: ``9 c_in c + c``
parameters (bias kept with BN too), ``9 c_in c h w`` MACs; BN adds ``2c``. The classifier
reads ``c_last * 7 * 7`` features: ``25088 * 4096 + 4096 + 4096^2 + 4096 + 4096 n + n``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["plan"]

POOL_SIZE = (7, 7)
HIDDEN = 4096


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    cfg = config["cfg"]
    batch_norm = bool(config.get("batch_norm", False))
    num_classes = int(config["num_classes"])

    t = Tracer(tuple(input_size))
    f = t.scoped("features.")
    index = 0
    for entry in cfg:
        if entry == "M":
            f.maxpool(str(index), kernel=2, stride=2)
            index += 1
            continue
        f.conv(str(index), int(entry), kernel=3, stride=1, padding=1, bias=True)
        index += 1
        if batch_norm:
            f.bn(str(index))
            index += 1
        f.act(str(index), "ReLU")
        index += 1
    t.sync(f)
    t.adaptive_avgpool("avgpool", POOL_SIZE)
    t.flatten()
    c = t.scoped("classifier.")
    c.linear("0", HIDDEN).act("1", "ReLU").dropout("2")
    c.linear("3", HIDDEN).act("4", "ReLU").dropout("5")
    c.linear("6", num_classes)
    t.sync(c)
    return t.plan
