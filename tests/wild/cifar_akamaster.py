"""CIFAR-10 ResNet-20/32/56 as the widely used PyTorch re-implementation writes them.

Architecture: He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385),
§4.2: a 3x3 conv with 16 filters, three stages of ``2n`` 3x3 convs with 16, 32 and 64 filters,
global average pooling, a 10-way fc; identity shortcuts with option A (§3.3) where the shape
changes. Init: §4.2 adopts He et al. 2015 ("Delving Deep into Rectifiers"), applied here, as
in that re-implementation, by ``init.kaiming_normal_`` to every Conv2d *and* Linear weight.

The style imitated is ``akamaster/pytorch_resnet_cifar10`` (``resnet.py``), described, not
copied: a ``BasicBlock`` whose option-A shortcut is a ``LambdaLayer`` that keeps every second
pixel and pads ``planes // 4`` zero channels on each side of the input's
(``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``), an empty
``nn.Sequential`` as the identity shortcut, the classifier named ``linear``, and the pool as
``F.avg_pool2d(out, out.size()[3])`` in ``forward``. That is the ``"split"`` reading of where
option A's zero channels go (spec readings of ``cifar_resnet20/32/56``).

Mutant ``build_odd_subsample``: the shortcut of ``layer2.0`` keeps the odd pixels
(``x[:, :, 1::2, 1::2]``) instead of the even ones, so its samples no longer sit where the
stride-2 conv of the residual branch samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

__all__ = ["BasicBlock", "LambdaLayer", "ResNet", "build", "build_odd_subsample", "build_resnet32",
           "build_resnet56"]


def _weights_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    """Wraps a parameter-free function of the input as a module."""

    def __init__(self, lambd: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lambd(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, offset: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, offset::2, offset::2], (0, 0, 0, 0, pad, pad), "constant", 0)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock], num_blocks: list[int], num_classes: int = 10,
                 odd_at: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.in_planes = 16
        self.odd_at = odd_at

        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1, stage=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2, stage=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2, stage=3)
        self.linear = nn.Linear(64, num_classes)

        self.apply(_weights_init)

    def _make_layer(self, block: type[BasicBlock], planes: int, num_blocks: int, stride: int,
                    stage: int) -> nn.Sequential:
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for i, s in enumerate(strides):
            offset = 1 if self.odd_at == (stage, i) else 0
            layers.append(block(self.in_planes, planes, s, offset))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def build() -> ResNet:
    """ResNet-20 (n = 3): spec ``cifar_resnet20``, reading ``option_a_pad="split"``."""
    return ResNet(BasicBlock, [3, 3, 3])


def build_resnet32() -> ResNet:
    """ResNet-32 (n = 5): spec ``cifar_resnet32``."""
    return ResNet(BasicBlock, [5, 5, 5])


def build_resnet56() -> ResNet:
    """ResNet-56 (n = 9): spec ``cifar_resnet56``."""
    return ResNet(BasicBlock, [9, 9, 9])


def build_odd_subsample() -> ResNet:
    """Mutant of ``build``: ``layer2.0``'s shortcut subsamples ``x[:, :, 1::2, 1::2]``."""
    return ResNet(BasicBlock, [3, 3, 3], odd_at=(2, 0))
