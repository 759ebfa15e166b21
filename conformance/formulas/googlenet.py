"""Closed form of a GoogLeNet from its layout (Szegedy et al. 2015, Table 1).

``config`` is a layout from ``cnn_models.googlenet`` (``TORCHVISION_LAYOUT`` or
``PAPER_LAYOUT``) plus ``num_classes`` and ``aux_logits``: body steps (conv / maxpool /
lrn / inception), the module widths (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool
proj), the branch-3 kernel (3 in torchvision, 5 in the paper), BN (conv without bias, BN
``2c``) or biased convs, and the auxiliary heads' taps.

An Inception module on ``C`` channels at ``h x w``, with ``k`` the branch-3 kernel, has
``C (c1 + r3 + r5 + pp) + 9 r3 c3 + k^2 r5 c5`` weights (plus a bias or a BN pair per output
channel of each of its six convs), ``h w`` times as many MACs, and outputs
``c1 + c3 + c5 + pp`` channels, branches concatenated in the order 1, 2, 3, 4.

Rows carry torchvision's qualified names (``inception4a.branch2.1.conv``, ``aux1.fc1``).
ReLUs are functional in this layout, so they have no rows. MACs are those of an eval-mode
forward (torchvision's ``_ops`` convention): auxiliary heads run in train mode only, so
their rows (present when ``aux_logits``; compare with a train-mode layer table) carry their
parameters and 0 MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer, pool2d_out

__all__ = ["inception", "plan"]


def _conv_block(t: Tracer, name: str, out: int, kernel: int, stride: int, padding: int, batch_norm: bool) -> Tracer:
    """``BasicConv2d``: rows ``<name>.conv`` (+ ``<name>.bn``); the ReLU is functional."""
    t.conv(f"{name}.conv", out, kernel, stride=stride, padding=padding, bias=not batch_norm)
    if batch_norm:
        t.bn(f"{name}.bn")
    return t


def inception(
    t: Tracer,
    name: str,
    widths: tuple[int, int, int, int, int, int],
    *,
    branch3_kernel: int = 3,
    batch_norm: bool = True,
) -> Tracer:
    """Add one Inception module's rows under ``name`` and concatenate its branches into ``t``."""
    c1, r3, c3, r5, c5, pp = widths
    p = f"{name}." if name else ""  # name "" for a bare module (rows "branch1.conv", ...)
    b1 = t.fork(p)
    _conv_block(b1, "branch1", c1, 1, 1, 0, batch_norm)
    b2 = t.fork(f"{p}branch2.")
    _conv_block(b2, "0", r3, 1, 1, 0, batch_norm)
    _conv_block(b2, "1", c3, 3, 1, 1, batch_norm)
    b3 = t.fork(f"{p}branch3.")
    _conv_block(b3, "0", r5, 1, 1, 0, batch_norm)
    _conv_block(b3, "1", c5, branch3_kernel, 1, branch3_kernel // 2, batch_norm)
    b4 = t.fork(f"{p}branch4.")
    b4.maxpool("0", 3, stride=1, padding=1, ceil_mode=True)
    _conv_block(b4, "1", pp, 1, 1, 0, batch_norm)
    return t.join_concat([b1, b2, b3, b4])  # (c1 + c3 + c5 + pp, h, w)


def _aux_head(t: Tracer, name: str, layout: Mapping[str, Any], num_classes: int) -> None:
    c, h, w = t.shape
    pool = layout["aux_pool"]
    if pool[0] == "adaptive":  # F.adaptive_avg_pool2d: no module, no row
        size = (c, pool[1], pool[1])
    else:  # F.avg_pool2d(kernel, stride)
        size = (c, pool2d_out(h, pool[1], pool[2]), pool2d_out(w, pool[1], pool[2]))
    a = t.fork(f"{name}.").with_shape(size)
    _conv_block(a, "conv", layout["aux_channels"], 1, 1, 0, layout["batch_norm"])
    a.flatten()
    a.linear("fc1", layout["aux_hidden"]).dropout("dropout").linear("fc2", num_classes)


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    num_classes = int(config["num_classes"])
    batch_norm = bool(config["batch_norm"])
    taps = {after: name for name, after, _ in config["aux_taps"]} if config.get("aux_logits") else {}

    t = Tracer(tuple(input_size))
    for step in config["body"]:
        kind, name = step[0], step[1]
        if kind == "conv":
            _, _, out, kernel, stride, padding = step
            _conv_block(t, name, out, kernel, stride, padding, batch_norm)
        elif kind == "maxpool":
            t.maxpool(name, step[2], stride=step[3], ceil_mode=True)
        elif kind == "lrn":
            t.act(name, "LocalResponseNorm")
        elif kind == "inception":
            inception(t, name, config["widths"][name], branch3_kernel=config["branch3_kernel"],
                      batch_norm=batch_norm)
        else:
            raise ValueError(f"config['body']: unknown step kind {kind!r} in {step!r}")
        if name in taps:
            first = len(t.plan.layers)
            _aux_head(t, taps[name], config, num_classes)
            t.plan.layers[first:] = [row._replace(macs=0) for row in t.plan.layers[first:]]
    t.adaptive_avgpool("avgpool", 1)  # (1024, 1, 1)
    t.flatten()
    t.dropout("dropout")
    t.linear("fc", num_classes)
    return t.plan
