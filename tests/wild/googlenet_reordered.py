"""GoogLeNet (torchvision's variant) whose Inception modules run their branches out of order.

Architecture: Szegedy et al. 2015, "Going Deeper with Convolutions" (arXiv:1409.4842), Table 1
(stem, nine Inception modules with the widths below, global average pool, dropout, fc-1000) and
Fig. 2(b) (four branches concatenated along channels: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3
max pool -> 1x1), in the variant torchvision's ``googlenet`` builds (``torchvision/models/
googlenet.py``, aux heads off): every conv without bias and followed by ``BatchNorm2d(eps=0.001)``
and ReLU, a 3x3 conv where the paper's third branch has 5x5 (documented in torchvision's
``Inception`` code), max pools with ``ceil_mode=True``, a 2x2 fourth max pool, no LRN, dropout
0.2 before the fc, ``transform_input=False``; spec ``googlenet``. Init as torchvision:
``trunc_normal_(std=0.01, a=-2, b=2)`` for conv and fc weights, the fc bias left at PyTorch's
default, BN 1 / 0.

Written differently: each ``Mixed`` module registers its branches in the natural order
(``p1``, ``p3``, ``p5``, ``pp``) but *computes* them in the order pool-projection, 3x3, "5x5",
1x1 (branches 4, 2, 3, 1), then concatenates them in the published order. The stem is a
``ModuleList`` of ``Unit``s (conv ``c`` + norm ``n``), the modules a ``ModuleDict`` keyed
``3a`` ... ``5b``, the fc ``logits``; pools and dropout are functional, the global pool is
``torch.mean`` over the spatial dims.

Mutant ``build_swapped_concat``: ``mixed.4c`` concatenates its 3x3 and "5x5" branch outputs in
swapped order (1x1, "5x5", 3x3, pool).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["GoogLeNetReordered", "Mixed", "Unit", "build", "build_swapped_concat"]

# Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class Unit(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.c = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.n = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.n(self.c(x)))


class Mixed(nn.Module):
    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int],
                 concat: tuple[int, int, int, int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        n1, r3, n3, r5, n5, proj = widths
        self.p1 = Unit(c_in, n1, 1)
        self.p3 = nn.Sequential(Unit(c_in, r3, 1), Unit(r3, n3, 3, padding=1))
        self.p5 = nn.Sequential(Unit(c_in, r5, 1), Unit(r5, n5, 3, padding=1))  # torchvision's 3x3
        self.pp = Unit(c_in, proj, 1)
        self.concat = concat
        self.out_channels = n1 + n3 + n5 + proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pp(F.max_pool2d(x, 3, 1, 1, ceil_mode=True))
        three = self.p3(x)
        five = self.p5(x)
        one = self.p1(x)
        parts = (one, three, five, pooled)
        return torch.cat([parts[i] for i in self.concat], dim=1)


class GoogLeNetReordered(nn.Module):
    def __init__(self, swapped: str | None = None) -> None:
        super().__init__()
        self.stem = nn.ModuleList([Unit(3, 64, 7, 2, 3), Unit(64, 64, 1), Unit(64, 192, 3, padding=1)])
        mixed = {}
        c = 192
        for key, widths in TABLE1.items():
            mixed[key] = Mixed(c, widths, (0, 2, 1, 3) if key == swapped else (0, 1, 2, 3))
            c = mixed[key].out_channels
        self.mixed = nn.ModuleDict(mixed)
        self.logits = nn.Linear(c, 1000)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.stem[0](x), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.stem[2](self.stem[1](x)), 3, 2, ceil_mode=True)
        for key, module in self.mixed.items():
            x = module(x)
            if key == "3b":
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            elif key == "4e":
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        x = torch.mean(x, dim=(2, 3))
        x = F.dropout(x, 0.2, self.training)
        return self.logits(x)


def build() -> GoogLeNetReordered:
    """GoogLeNet as torchvision builds it (aux heads off): spec ``googlenet``, torchvision ``googlenet``."""
    return GoogLeNetReordered()


def build_swapped_concat() -> GoogLeNetReordered:
    """Mutant of ``build``: ``mixed.4c`` concatenates (1x1, "5x5", 3x3, pool)."""
    return GoogLeNetReordered(swapped="4c")
