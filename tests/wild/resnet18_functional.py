"""ResNet-18 with its own names and functional activations; torchvision's function and init.

Architecture: He et al. 2016 (arXiv:1512.03385), Table 1 (18-layer column: 7x7/2 conv, 3x3/2
max pool, four stages of two basic blocks with 64/128/256/512 channels, global average pool,
fc-1000), Fig. 5 left (the basic block), §3.3 option B (a 1x1 projection + BN where the shape
changes). Basic blocks put the stride on their first 3x3 conv, so torchvision's "v1.5" change
(which moves a bottleneck's stride) does not touch ResNet-18: torchvision ``resnet18`` and spec
``resnet18`` compute this function.

Names are not torchvision's: ``stem`` (conv + norm), ``stages[i][j]`` of ``Residual`` blocks with
``a`` and ``b`` (conv + norm each) and ``proj`` (the projection), ``head`` (the fc). Residuals are
summed with ``torch.add`` where a projection runs and with an in-place ``out += identity``
elsewhere; activations are ``F.relu(..., inplace=True)``; ``F.max_pool2d``,
``F.adaptive_avg_pool2d`` and ``torch.flatten`` in ``forward``. Modules are registered in the
order torchvision stores its state_dict (conv1/bn1, conv2/bn2, then downsample), but the
projection runs first.

Init as torchvision (``torchvision/models/resnet.py`` ``ResNet.__init__``): He normal fan_out
(He et al. 2015, Eq. (14)) for convs, BN gamma 1 / beta 0, the fc left at PyTorch's default.

Mutants: ``build_eps_1e3`` (the BN of ``stages.2.1.b`` uses eps 1e-3, not PyTorch's 1e-5) and
``build_unit_normal_init`` (every conv weight drawn from N(0, 1): same function, wrong init).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ConvNorm", "Residual", "ResNet18", "build", "build_eps_1e3", "build_unit_normal_init"]


class ConvNorm(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, eps_b: float = 1e-5) -> None:
        super().__init__()
        self.a = ConvNorm(c_in, c_out, 3, stride)
        self.b = ConvNorm(c_out, c_out, 3, 1, eps=eps_b)
        self.proj = ConvNorm(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            identity = self.proj(x)
            out = self.b(F.relu(self.a(x), inplace=True))
            out = torch.add(out, identity)
        else:
            out = self.b(F.relu(self.a(x), inplace=True))
            out += x
        return F.relu(out, inplace=True)


class ResNet18(nn.Module):
    def __init__(self, odd_eps: tuple[int, int] | None = None, conv_std: float | None = None) -> None:
        super().__init__()
        self.stem = ConvNorm(3, 64, 7, 2)
        stages = []
        c_in = 64
        for i, width in enumerate((64, 128, 256, 512)):
            blocks = []
            for j in range(2):
                eps = 1e-3 if odd_eps == (i, j) else 1e-5
                blocks.append(Residual(c_in, width, 2 if i and not j else 1, eps_b=eps))
                c_in = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(512, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if conv_std is None:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, conv_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x), inplace=True)
        x = F.max_pool2d(x, 3, 2, 1)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.head(x)


def build() -> ResNet18:
    """ResNet-18: spec ``resnet18``, torchvision ``resnet18``."""
    return ResNet18()


def build_eps_1e3() -> ResNet18:
    """Mutant of ``build``: the BN of ``stages.2.1.b`` has eps 1e-3."""
    return ResNet18(odd_eps=(2, 1))


def build_unit_normal_init() -> ResNet18:
    """Init-only mutant of ``build``: conv weights N(0, 1) instead of He fan_out."""
    return ResNet18(conv_std=1.0)
