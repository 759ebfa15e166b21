"""MobileNet v1 as one ``nn.Sequential`` of ``conv_bn`` / ``conv_dw`` helper blocks.

Architecture: Howard et al. 2017, "MobileNets" (arXiv:1704.04861), Table 1, row by row: a
3x3/2 conv to 32 channels, 13 depthwise separable layers (3x3 depthwise + BN + ReLU, 1x1
pointwise + BN + ReLU, Fig. 3), "Avg Pool / s1, Pool 7x7" taken literally as ``nn.AvgPool2d(7)``
(so the network takes 224x224 inputs only: the 7x7 map of Table 1), then ``x.view(-1, 1024)``
and the 1000-way fully connected layer. Table 1 prints "s2" on the last depthwise conv while its
own sizes (7x7 in and out) say stride 1; stride 1 here, as spec ``mobilenet_v1``.

The spec's model ends in ``Dropout(p=0)`` then ``Linear``: dropout with p = 0 is the identity in
train and eval mode, so this head, without dropout, computes the same function. Weights keep
PyTorch's default initialisation, as the popular re-implementations of this layout do: the
paper states no initialisation, and the spec's is declared a convention.

Mutants: ``build_half_groups`` (the depthwise conv of block 7 uses ``groups=256``, not 512: a
grouped conv, not a depthwise one) and ``build_max_pool`` (the final pool is ``nn.MaxPool2d(7)``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MobileNet", "build", "build_half_groups", "build_max_pool", "conv_bn", "conv_dw"]


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


def conv_dw(inp: int, oup: int, stride: int, groups: int | None = None) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp if groups is None else groups, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class MobileNet(nn.Module):
    def __init__(self, seventh_groups: int | None = None, pool: type[nn.Module] = nn.AvgPool2d) -> None:
        super().__init__()
        self.model = nn.Sequential(
            conv_bn(3, 32, 2),
            conv_dw(32, 64, 1),
            conv_dw(64, 128, 2),
            conv_dw(128, 128, 1),
            conv_dw(128, 256, 2),
            conv_dw(256, 256, 1),
            conv_dw(256, 512, 2),
            conv_dw(512, 512, 1, groups=seventh_groups),
            conv_dw(512, 512, 1),
            conv_dw(512, 512, 1),
            conv_dw(512, 512, 1),
            conv_dw(512, 512, 1),
            conv_dw(512, 1024, 2),
            conv_dw(1024, 1024, 1),
            pool(7),
        )
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.model(x)
        x = x.view(-1, 1024)
        x = self.fc(x)
        return x


def build() -> MobileNet:
    """1.0 MobileNet-224: spec ``mobilenet_v1``, reading ``pool="avg7"`` (224x224 inputs only)."""
    return MobileNet()


def build_half_groups() -> MobileNet:
    """Mutant of ``build``: block 7 (``model.7``) has a 3x3 conv with groups=256 where Table 1 has depthwise."""
    return MobileNet(seventh_groups=256)


def build_max_pool() -> MobileNet:
    """Mutant of ``build``: ``model.14`` is a 7x7 max pool where Table 1 has an average pool."""
    return MobileNet(pool=nn.MaxPool2d)
