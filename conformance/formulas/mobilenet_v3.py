"""Closed form of MobileNet v3 Large/Small (Howard et al. 2019, Tables 1 and 2; torchvision
layout).

Reads a spec's ``config`` (``setting`` rows ``(in, kernel, exp, out, SE, NL, s)``,
``last_channel``, ``width_mult``, ``round_nearest``, ``num_classes``) and replays it through
the layer formulas, one row per module of torchvision's ``mobilenet_v3_*`` layout
(``features.0``, ``features.N.block.K``, squeeze-and-excite ``block.K.{avgpool,fc1,
activation,fc2,scale_activation}``, ``features.<last>``, ``avgpool``, ``classifier.{0..3}``).
Channel rounding is the MobileNet v2 rule restated in ``mobilenet_v2.round_channels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer
from .mobilenet_v2 import round_channels

__all__ = ["params", "plan"]

_NL = {"RE": "ReLU", "HS": "Hardswish"}


def _conv_bn(t: Tracer, name: str, out: int, kernel: int, stride: int, groups: int, act: str | None) -> None:
    t.conv(f"{name}.0", out, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    t.bn(f"{name}.1")
    if act is not None:
        t.act(f"{name}.2", act)


def _squeeze_excite(t: Tracer, name: str, squeeze: int) -> None:
    """Global pool -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> hard-sigmoid -> rescale x."""
    se = t.fork(name + ".")
    se.adaptive_avgpool("avgpool", 1)
    se.conv("fc1", squeeze, 1, bias=True)
    se.act("activation", "ReLU")
    se.conv("fc2", t.shape[0], 1, bias=True)
    se.act("scale_activation", "Hardsigmoid")
    t.join_scale(se)


def params(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> int:
    """Parameter total as one sum over Table 1/2's rows (no layer rows): stem 3x3 + BN; per
    row an optional 1x1 expansion + BN, a kxk depthwise + BN, an optional squeeze-and-excite
    (two 1x1 convs with bias), a 1x1 projection + BN; the last 1x1 + BN; two linear layers."""
    mult, d = float(config["width_mult"]), int(config["round_nearest"])

    def scale(ch: int) -> int:
        return round_channels(ch * mult, d)

    rows = list(config["setting"])
    c = scale(rows[0][0])
    total = 9 * input_size[0] * c + 2 * c
    for c_in, k, exp, out, use_se, _nl, _s in rows:
        c_in, exp, out = scale(c_in), scale(exp), scale(out)
        if exp != c_in:
            total += c_in * exp + 2 * exp
        total += k * k * exp + 2 * exp
        if use_se:
            squeeze = round_channels(exp // 4, 8)
            total += 2 * exp * squeeze + squeeze + exp
        total += exp * out + 2 * out
        c = out
    last, hidden, classes = 6 * c, scale(int(config["last_channel"])), int(config["num_classes"])
    return total + c * last + 2 * last + last * hidden + hidden + hidden * classes + classes


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    mult = float(config["width_mult"])
    d = int(config["round_nearest"])

    def scale(c: int) -> int:
        return round_channels(c * mult, d)

    rows = list(config["setting"])
    t = Tracer(tuple(input_size))
    _conv_bn(t, "features.0", scale(rows[0][0]), 3, 2, 1, "Hardswish")
    for n, (c_in, k, exp, out, use_se, nl, s) in enumerate(rows, start=1):
        c_in, exp, out = scale(c_in), scale(exp), scale(out)
        name, i = f"features.{n}.block", 0
        if exp != c_in:
            _conv_bn(t, f"{name}.{i}", exp, 1, 1, 1, _NL[nl])
            i += 1
        _conv_bn(t, f"{name}.{i}", exp, k, s, exp, _NL[nl])
        i += 1
        if use_se:
            _squeeze_excite(t, f"{name}.{i}", round_channels(exp // 4, 8))
            i += 1
        _conv_bn(t, f"{name}.{i}", out, 1, 1, 1, None)
    last_in = t.shape[0]
    _conv_bn(t, f"features.{len(rows) + 1}", 6 * last_in, 1, 1, 1, "Hardswish")
    t.adaptive_avgpool("avgpool", 1)
    t.flatten()
    t.linear("classifier.0", scale(int(config["last_channel"])))
    t.act("classifier.1", "Hardswish")
    t.dropout("classifier.2")
    t.linear("classifier.3", int(config["num_classes"]))
    return t.plan
