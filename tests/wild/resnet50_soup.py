"""ResNet-50 v1.5 as an ``nn.Sequential`` soup of numbered children.

Architecture: He et al. 2016 (arXiv:1512.03385), Table 1 (50-layer column: 7x7/2 conv, 3x3/2
max pool, stages of 3, 4, 6, 3 bottleneck blocks of widths 64/128/256/512 expanded x4, global
average pool, fc-1000), Fig. 5 right (1x1 reduce, 3x3, 1x1 expand), §3.3 option B projections
where the shape changes. As torchvision's ``resnet50`` (``torchvision/models/resnet.py``, the
"v1.5" noted in its ``Bottleneck`` docstring), a downsampling block strides its 3x3 conv, not
its first 1x1 conv; spec ``resnet50`` is the same.

Layout: the network is one ``nn.Sequential``: ``0`` conv, ``1`` BN, ``2`` ReLU, ``3`` max pool,
``4``-``7`` the stages (``nn.Sequential`` of blocks), ``8`` ``AdaptiveAvgPool2d(1)``, ``9``
``nn.Flatten``, and ``classifier`` (the fc). A ``Bottleneck`` holds children ``0``-``5``
(conv, BN, conv, BN, conv, BN) and ``shortcut`` (projection conv + BN) where needed; its forward
walks the numbered children. Init as torchvision: He normal fan_out convs, BN 1 / 0, fc default.

Mutant ``build_stride_on_first_1x1``: in stage ``6`` (conv4_x) the first block strides its first
1x1 conv (the paper's original ResNet, "v1") instead of its 3x3 conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Bottleneck", "build", "build_stride_on_first_1x1"]


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, mid: int, stride: int, stride_first: bool = False) -> None:
        super().__init__()
        c_out = 4 * mid
        s1, s2 = (stride, 1) if stride_first else (1, stride)
        parts = [
            nn.Conv2d(c_in, mid, 1, s1, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, mid, 3, s2, 1, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        ]
        for i, part in enumerate(parts):
            self.add_module(str(i), part)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i in range(6):
            y = self._modules[str(i)](y)  # type: ignore[misc]
            if i in (1, 3):
                y = F.relu(y)
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + skip)


def _soup(stride_first_stage: int | None = None) -> nn.Sequential:
    net = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )
    c_in = 64
    for index, (mid, repeats, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=4):
        blocks = []
        for j in range(repeats):
            blocks.append(Bottleneck(c_in, mid, stride if j == 0 else 1,
                                     stride_first=j == 0 and index == stride_first_stage))
            c_in = 4 * mid
        net.append(nn.Sequential(*blocks))
    net.append(nn.AdaptiveAvgPool2d(1))
    net.append(nn.Flatten())
    net.add_module("classifier", nn.Linear(c_in, 1000))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def build() -> nn.Sequential:
    """ResNet-50 v1.5: spec ``resnet50``, torchvision ``resnet50``."""
    return _soup()


def build_stride_on_first_1x1() -> nn.Sequential:
    """Mutant of ``build``: block ``6.0`` strides its first 1x1 conv (ResNet v1) instead of its 3x3."""
    return _soup(stride_first_stage=6)
