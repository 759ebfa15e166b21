"""Closed form of the ImageNet ResNet family (ResNet, ResNeXt, Wide ResNet), from its config.

Config keys (a spec's ``config``, the same data ``cnn_models.resnet`` builds from):
``block`` ("basic" | "bottleneck"), ``layers`` (4 ints), ``groups``, ``width_per_group``,
``num_classes`` and optionally ``replace_stride_with_dilation`` (3 bools, default all False).

Structure (He et al. 2016 Table 1 and Fig. 5; Xie et al. 2017 Fig. 3c; torchvision's names):

* stem ``conv1`` 7x7/2 pad 3 -> 64, ``bn1``, ``maxpool`` 3x3/2 pad 1;
* stage ``s`` = 1..4 has ``layers[s-1]`` blocks of ``planes = 64 * 2**(s-1)``, output
  ``planes * e`` (e = 1 basic, 4 bottleneck); stage 1 stride 1, the others stride 2 on their
  first block (or dilation x2 instead, when ``replace_stride_with_dilation`` says so);
* basic block: ``conv1`` 3x3/s, ``bn1``, ``conv2`` 3x3, ``bn2``;
* bottleneck (v1.5): ``conv1`` 1x1 -> w, ``bn1``, ``conv2`` 3x3/s groups g dilation d pad d,
  ``bn2``, ``conv3`` 1x1 -> 4 planes, ``bn3``, with ``w = floor(planes * width_per_group / 64) * g``;
* ``downsample.0`` 1x1/s conv + ``downsample.1`` BN on the first block of a stage whose
  stride is not 1 or whose channels change (option B), else the identity;
* ``avgpool`` to 1x1, ``fc`` ``512 e -> num_classes`` with bias.

Convs have no bias (BN follows). Rows come in forward order: a block's branch, then its
downsample (the order in which torchvision's modules run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layers import Plan, Tracer

__all__ = ["EXPANSION", "STAGE_PLANES", "STEM_PLANES", "plan"]

STEM_PLANES = 64
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}


def _basic(t: Tracer, prefix: str, c_in: int, planes: int, stride: int, dilation: int) -> int:
    branch = t.fork(prefix)
    branch.conv("conv1", planes, 3, stride, dilation, bias=False, dilation=dilation).bn("bn1")
    branch.conv("conv2", planes, 3, 1, dilation, bias=False, dilation=dilation).bn("bn2")
    _shortcut(t, branch, prefix, c_in, planes, stride)
    return planes


def _bottleneck(
    t: Tracer, prefix: str, c_in: int, planes: int, stride: int, dilation: int, groups: int, wpg: int
) -> int:
    width = planes * wpg // 64 * groups
    out = planes * EXPANSION["bottleneck"]
    branch = t.fork(prefix)
    branch.conv("conv1", width, 1, bias=False).bn("bn1")
    branch.conv("conv2", width, 3, stride, dilation, groups=groups, bias=False, dilation=dilation).bn("bn2")
    branch.conv("conv3", out, 1, bias=False).bn("bn3")
    _shortcut(t, branch, prefix, c_in, out, stride)
    return out


def _shortcut(t: Tracer, branch: Tracer, prefix: str, c_in: int, c_out: int, stride: int) -> None:
    if stride != 1 or c_in != c_out:  # option B projection, only where the shape changes
        proj = t.fork(f"{prefix}downsample.")
        proj.conv("0", c_out, 1, stride, 0, bias=False).bn("1")
        t.join_add([branch, proj])
    else:
        t.join_add([branch, t.fork()])


def plan(config: Mapping[str, Any], input_size: tuple[int, int, int]) -> Plan:
    """Per-layer rows (conv, BN, pools, fc) of a ResNet config at ``input_size`` (C, H, W)."""
    block = config["block"]
    if block not in EXPANSION:
        raise ValueError(f"config['block'] must be one of {sorted(EXPANSION)}, got {block!r}")
    layers = tuple(config["layers"])
    groups = int(config.get("groups", 1))
    wpg = int(config.get("width_per_group", 64))
    dilate = tuple(config.get("replace_stride_with_dilation") or (False, False, False))

    t = Tracer(tuple(input_size))
    t.conv("conv1", STEM_PLANES, 7, 2, 3, bias=False).bn("bn1")  # (64, H/2, W/2)
    t.maxpool("maxpool", 3, 2, 1)  # (64, H/4, W/4)
    c, dilation = STEM_PLANES, 1
    for s, (planes, blocks) in enumerate(zip(STAGE_PLANES, layers, strict=True)):
        stride, first_dilation = (1 if s == 0 else 2), dilation
        if s > 0 and dilate[s - 1]:
            dilation *= stride
            stride = 1
        for b in range(blocks):
            prefix = f"layer{s + 1}.{b}."
            st, d = (stride, first_dilation) if b == 0 else (1, dilation)
            if block == "basic":
                c = _basic(t, prefix, c, planes, st, d)
            else:
                c = _bottleneck(t, prefix, c, planes, st, d, groups, wpg)
    t.adaptive_avgpool("avgpool", 1).flatten()  # (512 e,)
    t.linear("fc", int(config["num_classes"]))
    return t.plan
