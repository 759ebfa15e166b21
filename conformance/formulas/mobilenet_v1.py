"""Closed form of MobileNet v1 (Howard et al. 2017, Table 1; width multiplier, Section 3.3).

Reads a spec's ``config`` (``alpha``, ``stem``, ``blocks``, ``num_classes``) and replays it
through the layer formulas: one row per module of ``cnn_models.mobilenet_v1``'s layout
(``features.0.{0,1,2}`` stem, ``features.k.{dw,pw}.{0,1,2}`` blocks, ``avgpool``,
``classifier.{0,1}``). The width rule is restated here, not imported: ``max(1, floor(c*alpha))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["params", "plan", "width"]


def width(channels: int, alpha: float) -> int:
    """Section 3.3: alpha * channels, floored, at least one channel."""
    return max(1, math.floor(channels * alpha))


def _conv_bn_relu(t: Tracer, name: str, out: int, kernel: int, stride: int, groups: int = 1) -> None:
    t.conv(f"{name}.0", out, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    t.bn(f"{name}.1")
    t.act(f"{name}.2", "ReLU")


def params(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> int:
    """Parameter total as one sum over Table 1's rows: 3x3 stem + BN, then per block a 3x3
    depthwise conv + BN and a 1x1 pointwise conv + BN, then the classifier (no layer rows)."""
    alpha = float(config["alpha"])
    c = width(config["stem"][0], alpha)
    total = 9 * input_size[0] * c + 2 * c
    for out, _stride in config["blocks"]:
        w = width(out, alpha)
        total += 9 * c + 2 * c + c * w + 2 * w
        c = w
    k = int(config["num_classes"])
    return total + c * k + k


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    alpha = float(config["alpha"])
    stem_out, stem_stride = config["stem"]
    t = Tracer(tuple(input_size))
    channels = width(stem_out, alpha)
    _conv_bn_relu(t, "features.0", channels, 3, stem_stride)
    for k, (out, stride) in enumerate(config["blocks"], start=1):
        _conv_bn_relu(t, f"features.{k}.dw", channels, 3, stride, groups=channels)
        channels = width(out, alpha)
        _conv_bn_relu(t, f"features.{k}.pw", channels, 1, 1)
    t.adaptive_avgpool("avgpool", 1)
    t.flatten()
    t.dropout("classifier.0")
    t.linear("classifier.1", int(config["num_classes"]))
    return t.plan
