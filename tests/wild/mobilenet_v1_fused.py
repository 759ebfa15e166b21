"""MobileNet v1 with each conv + BN + ReLU as *one* module holding its own tensors.

Architecture: Howard et al. 2017, "MobileNets" (arXiv:1704.04861), Table 1 (3x3/2 stem conv to
32 channels, 13 depthwise separable layers of Fig. 3, global average pool, fc to 1000), the last
depthwise conv at stride 1 as Table 1's sizes say; spec ``mobilenet_v1``.

``ConvBNAct`` keeps the conv weight as ``weight``, the BN affine parameters as ``bn_weight`` and
``bn_bias`` and the running statistics as buffers ``bn_mean`` and ``bn_var``; its forward is
``F.conv2d`` -> ``F.batch_norm`` (momentum 0.1, eps 1e-5, PyTorch's BN defaults) -> ``F.relu``.
The 27 units sit in one ``nn.ModuleList`` (``layers``); the global pool is ``x.mean((2, 3))``.
Init: the spec's declared convention (torchvision ``models/mobilenetv2.py``'s scheme: He normal
fan_out convs, BN 1 / 0, fc N(0, 0.01) with zero bias).

Mutant ``build_missing_relu``: unit ``layers.11`` (the depthwise conv of block 6) has no ReLU,
so the pointwise conv after it reads a linear output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ConvBNAct", "MobileNetFused", "build", "build_missing_relu"]

# Table 1: (pointwise output channels, depthwise stride) of the 13 separable layers.
SEPARABLE = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
             (512, 1), (512, 1), (1024, 2), (1024, 1))


class ConvBNAct(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in // groups, kernel, kernel))
        self.bn_weight = nn.Parameter(torch.ones(c_out))
        self.bn_bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer("bn_mean", torch.zeros(c_out))
        self.register_buffer("bn_var", torch.ones(c_out))
        self.stride, self.padding, self.groups, self.act = stride, kernel // 2, groups, act
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.groups)
        x = F.batch_norm(x, self.bn_mean, self.bn_var, self.bn_weight, self.bn_bias, self.training, 0.1, 1e-5)
        return F.relu(x) if self.act else x


class MobileNetFused(nn.Module):
    def __init__(self, linear_unit: int | None = None) -> None:
        super().__init__()
        units = [ConvBNAct(3, 32, 3, 2)]
        c = 32
        for out, stride in SEPARABLE:
            units.append(ConvBNAct(c, c, 3, stride, groups=c, act=len(units) != linear_unit))
            units.append(ConvBNAct(c, out, 1, act=len(units) != linear_unit))
            c = out
        self.layers = nn.ModuleList(units)
        self.fc = nn.Linear(c, 1000)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.layers:
            x = unit(x)
        return self.fc(x.mean((2, 3)))


def build() -> MobileNetFused:
    """1.0 MobileNet-224: spec ``mobilenet_v1`` (global pool: any input size)."""
    return MobileNetFused()


def build_missing_relu() -> MobileNetFused:
    """Mutant of ``build``: ``layers.11`` (depthwise conv of separable layer 6) ends without its ReLU."""
    return MobileNetFused(linear_unit=11)
