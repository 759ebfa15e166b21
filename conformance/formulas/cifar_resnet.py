"""Closed form of the CIFAR ResNets and plain nets of He et al. 2016 §4.2, from their config.

Config keys (a spec's ``config``): ``depth`` (= 6n + 2) or ``n``, ``plain`` (bool),
``shortcut`` ("A" | "B"), ``widths`` (default (16, 32, 64)), ``num_classes``.

Structure (§4.2; module names of ``cnn_models.cifar_resnet``):

* ``conv1`` 3x3 pad 1 -> 16, ``bn1``;
* stage ``s`` = 1..3: ``n`` blocks of ``conv1`` 3x3 (stride 2 on the first block of stages 2
  and 3), ``bn1``, ``conv2`` 3x3, ``bn2``, widths 16 / 32 / 64;
* shortcut of a residual block that changes the shape: option A is parameter-free (no rows
  with parameters); option B is ``downsample.0`` 1x1/2 conv + ``downsample.1`` BN;
* ``avgpool`` to 1x1, ``fc`` ``64 -> num_classes`` with bias.

Parameter total, option A (and plain), widths (a, b, c), k = num_classes:
``27a + 2a + (2n)(9a^2 + 2a) + 9ab + 2b + (2n-1)(9b^2 + 2b) + 9bc + 2c + (2n-1)(9c^2 + 2c)
+ c k + k``; option B adds ``ab + 2b + bc + 2c``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["WIDTHS", "params", "plan"]

WIDTHS = (16, 32, 64)


def _blocks_per_stage(config: Mapping[str, Any]) -> int:
    if "n" in config:
        return int(config["n"])
    depth = int(config["depth"])
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"config['depth'] must be 6n + 2, got {depth}")
    return (depth - 2) // 6


def params(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> int:
    """The parameter total of the module docstring, one term per stage (no layer rows)."""
    n = _blocks_per_stage(config)
    option_b = not config.get("plain", False) and config.get("shortcut", "A") == "B"
    widths = tuple(config.get("widths", WIDTHS))
    c = widths[0]
    total = 9 * input_size[0] * c + 2 * c  # conv1, bn1
    for s, w in enumerate(widths):
        # first block: 3x3 c->w and 3x3 w->w, each with BN; the other n - 1 blocks: w->w twice
        total += 9 * c * w + 2 * w + 9 * w * w + 2 * w + (n - 1) * (18 * w * w + 4 * w)
        if option_b and (s > 0 or c != w):
            total += c * w + 2 * w  # downsample.0 (1x1, no bias), downsample.1 (BN)
        c = w
    k = int(config["num_classes"])
    return total + c * k + k


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    """Per-layer rows (conv, BN, avgpool, fc) of a CIFAR ResNet / plain net at ``input_size``."""
    n = _blocks_per_stage(config)
    plain = bool(config.get("plain", False))
    shortcut = config.get("shortcut", "A")
    widths = tuple(config.get("widths", WIDTHS))

    t = Tracer(tuple(input_size))
    t.conv("conv1", widths[0], 3, 1, 1, bias=False).bn("bn1")  # (16, H, W)
    c = widths[0]
    for s, width in enumerate(widths):
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            prefix = f"layer{s + 1}.{b}."
            branch = t.fork(prefix)
            branch.conv("conv1", width, 3, stride, 1, bias=False).bn("bn1")
            branch.conv("conv2", width, 3, 1, 1, bias=False).bn("bn2")
            if plain:
                t.sync(branch)
            elif stride == 1 and c == width:
                t.join_add([branch, t.fork()])
            elif shortcut == "B":
                proj = t.fork(f"{prefix}downsample.")
                proj.conv("0", width, 1, stride, 0, bias=False).bn("1")
                t.join_add([branch, proj])
            else:  # option A: subsample x[:, :, ::s, ::s] (a 1x1/s window), pad channels
                pad = t.fork(f"{prefix}downsample").functional_pool(1, stride).channels(width)
                t.join_add([branch, pad])
            c = width
    t.adaptive_avgpool("avgpool", 1).flatten()  # (64,)
    t.linear("fc", int(config["num_classes"]))
    return t.plan
