"""Closed form of MobileNet v2 (Sandler et al. 2018, Tables 1 and 2; torchvision layout).

Reads a spec's ``config`` (``width_mult``, ``inverted_residual_setting`` rows ``(t, c, n,
s)``, ``input_channel``, ``last_channel``, ``round_nearest``, ``num_classes``) and replays it
through the layer formulas, one row per module of torchvision's ``mobilenet_v2`` layout
(``features.0``, ``features.N.conv.K``, ``features.<last>``, ``classifier.{0,1}``). The global
pool is functional there, so it has no row. The rounding rule of the reference code is
restated here, not imported: the multiple of ``d`` nearest to ``v`` (halves up), at least
``d``, bumped by ``d`` if that loses more than 10 % of ``v``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["params", "plan", "round_channels"]


def round_channels(value: float, divisor: int) -> int:
    """MobileNet v2 reference code's ``_make_divisible(value, divisor)``, restated."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_relu6(t: Tracer, name: str, out: int, kernel: int, stride: int, groups: int = 1) -> None:
    t.conv(f"{name}.0", out, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    t.bn(f"{name}.1")
    t.act(f"{name}.2", "ReLU6")


def _inverted_residual(t: Tracer, name: str, out: int, stride: int, expand: int) -> None:
    c_in = t.shape[0]
    hidden = c_in * expand
    k = 0
    if expand != 1:
        _conv_bn_relu6(t, f"{name}.conv.{k}", hidden, 1, 1)
        k += 1
    _conv_bn_relu6(t, f"{name}.conv.{k}", hidden, 3, stride, groups=hidden)
    t.conv(f"{name}.conv.{k + 1}", out, 1, bias=False)
    t.bn(f"{name}.conv.{k + 2}")
    # the residual add (stride 1, c_in == out) changes neither shape nor parameters


def params(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> int:
    """Parameter total as one sum over Table 2's rows (no layer rows): stem 3x3 + BN; per
    block an optional 1x1 expansion + BN, a 3x3 depthwise + BN, a 1x1 projection + BN; the
    last 1x1 + BN; the classifier."""
    mult, d = float(config["width_mult"]), int(config["round_nearest"])
    c = round_channels(config["input_channel"] * mult, d)
    total = 9 * input_size[0] * c + 2 * c
    for expand, ch, n, _s in config["inverted_residual_setting"]:
        out = round_channels(ch * mult, d)
        for _ in range(n):
            hidden = c * expand
            total += (c * hidden + 2 * hidden if expand != 1 else 0) + 11 * hidden + hidden * out + 2 * out
            c = out
    last = round_channels(config["last_channel"] * max(1.0, mult), d)
    k = int(config["num_classes"])
    return total + c * last + 2 * last + last * k + k


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    mult = float(config["width_mult"])
    d = int(config["round_nearest"])
    t = Tracer(tuple(input_size))
    _conv_bn_relu6(t, "features.0", round_channels(config["input_channel"] * mult, d), 3, 2)
    index = 1
    for expand, c, n, s in config["inverted_residual_setting"]:
        out = round_channels(c * mult, d)
        for i in range(n):
            _inverted_residual(t, f"features.{index}", out, s if i == 0 else 1, expand)
            index += 1
    last = round_channels(config["last_channel"] * max(1.0, mult), d)
    _conv_bn_relu6(t, f"features.{index}", last, 1, 1)
    t.functional_global_pool().flatten()  # F.adaptive_avg_pool2d(x, 1) in forward: no module
    t.dropout("classifier.0")
    t.linear("classifier.1", int(config["num_classes"]))
    return t.plan
