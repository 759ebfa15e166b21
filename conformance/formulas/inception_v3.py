"""Closed form of Inception v3 from its tables (``cnn_models.inception_v3``: STEM, MIXED, AUX).

``config`` keys: ``stem`` (conv / maxpool steps), ``mixed`` ((name, class name, branches)),
``aux`` (the auxiliary head: tap, pool, convs), ``aux_logits``, ``num_classes``. Every conv
is a ``BasicConv2d``: rows ``<name>.conv`` (no bias, ``kh kw C_in C_out`` weights) and
``<name>.bn`` (``2 C_out``); the ReLU and the pools inside modules are functional (no rows,
but they change the shape: ``avg_pool2d(3, 1, 1)`` keeps it, ``max_pool2d(3, 2)`` gives
``floor((H - 3) / 2) + 1``). A module's branches are concatenated in table order; a
``split`` contributes both of its convs' channels.

MACs are those of an eval-mode forward (torchvision's ``_ops`` convention): the auxiliary
head runs in train mode only, so its rows carry their parameters and 0 MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["mixed", "plan"]


def _conv_block(t: Tracer, name: str, op: tuple[Any, ...]) -> Tracer:
    _, _, out, kernel, stride, padding = op
    t.conv(f"{name}.conv", out, kernel, stride=stride, padding=padding, bias=False)
    return t.bn(f"{name}.bn")


def mixed(t: Tracer, name: str, branches: tuple[tuple[tuple[Any, ...], ...], ...]) -> Tracer:
    """Add one mixed module's rows under ``name`` ("" for a bare module) and concatenate its branches."""
    p = f"{name}." if name else ""
    outs = []
    for branch in branches:
        b = t.fork(p)
        for op in branch:
            if op[0] == "conv":
                _conv_block(b, op[1], op)
            elif op[0] == "avgpool":
                b.functional_pool(op[1], op[2], op[3])
            elif op[0] == "maxpool":
                b.functional_pool(op[1], op[2])
            elif op[0] == "split":
                parts = [_conv_block(b.fork(), conv[1], conv) for conv in op[1:]]
                b.join_concat(parts)
            else:
                raise ValueError(f"{name}: unknown op {op!r}")
        outs.append(b)
    return t.join_concat(outs)


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    num_classes = int(config["num_classes"])
    aux = config["aux"]
    t = Tracer(tuple(input_size))
    for step in config["stem"]:
        if step[0] == "conv":
            _conv_block(t, step[1], step)
        else:
            t.maxpool(step[1], step[2], stride=step[3])
    for name, _kind, branches in config["mixed"]:
        mixed(t, name, branches)
        if name == aux["after"] and config.get("aux_logits"):
            first = len(t.plan.layers)
            a = t.fork(f"{aux['name']}.")
            a.functional_pool(*aux["pool"])
            for conv in aux["convs"]:
                _conv_block(a, conv[1], conv)
            a.with_shape(a.shape[:1]).linear("fc", num_classes)  # after a global average pool
            t.plan.layers[first:] = [row._replace(macs=0) for row in t.plan.layers[first:]]
    t.adaptive_avgpool("avgpool", 1)  # (2048, 1, 1)
    t.dropout("dropout")  # before flattening, as torchvision
    t.flatten()
    t.linear("fc", num_classes)
    return t.plan
