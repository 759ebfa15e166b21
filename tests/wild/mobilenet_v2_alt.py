"""MobileNet v2 in another hand: flat ``conv`` Sequentials and ``nn.Hardtanh(0, 6)`` as ReLU6.

Architecture: Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
(arXiv:1801.04381), Table 2 (3x3/2 conv to 32, the bottleneck rows ``(t, c, n, s)`` below, 1x1
conv to 1280, global average pool, classifier) and Table 1 / Fig. 4 (the block: 1x1 expansion
by ``t`` + BN + ReLU6, omitted for ``t = 1``; 3x3 depthwise + BN + ReLU6 with the row's stride on
its first repeat; a *linear* 1x1 projection + BN; the input added back where stride is 1 and the
widths agree). Width multiplier 1, so every width is Table 2's. As torchvision's
``mobilenet_v2`` (``torchvision/models/mobilenetv2.py``) and spec ``mobilenet_v2``: BN eps 1e-5,
dropout 0.2 before the fc; its init (He normal fan_out convs, BN 1 / 0, fc N(0, 0.01), zero bias).

Written differently: ``InvertedResidual.conv`` is one flat ``nn.Sequential`` of convs, BNs and
``nn.Hardtanh(0, 6)`` modules (ReLU6 is ``hardtanh`` clipped to [0, 6]); the residual flag is
decided from the shapes at call time; the body is one ``nn.Sequential`` named ``body``, the pool
``x.mean((-2, -1))``, dropout ``F.dropout`` in ``forward``, the fc ``fc``.

Mutant ``build_relu6_after_projection``: ``body.7`` (the second block of the 32-channel row)
clips its projection with a ReLU6, breaking the linear bottleneck of Sandler et al. §3.2.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["InvertedResidual", "MobileNetV2Alt", "build", "build_relu6_after_projection"]

# Sandler et al. 2018, Table 2: expansion t, output channels c, repeats n, first stride s.
ROWS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, t: int, clip_projection: bool = False) -> None:
        super().__init__()
        mid = inp * t
        layers: list[nn.Module] = []
        if mid != inp:
            layers += [nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.Hardtanh(0.0, 6.0)]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
                   nn.Hardtanh(0.0, 6.0), nn.Conv2d(mid, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        if clip_projection:
            layers.append(nn.Hardtanh(0.0, 6.0))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if y.shape == x.shape else y


class MobileNetV2Alt(nn.Module):
    def __init__(self, clipped_block: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.Hardtanh(0.0, 6.0)]
        c = 32
        for t, out, repeats, stride in ROWS:
            for i in range(repeats):
                layers.append(InvertedResidual(c, out, stride if i == 0 else 1, t,
                                               clip_projection=len(layers) == clipped_block))
                c = out
        layers += [nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.Hardtanh(0.0, 6.0)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(1280, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x).mean((-2, -1))
        return self.fc(F.dropout(x, 0.2, self.training))


def build() -> MobileNetV2Alt:
    """MobileNet v2 (width 1.0): spec ``mobilenet_v2``, torchvision ``mobilenet_v2``."""
    return MobileNetV2Alt()


def build_relu6_after_projection() -> MobileNetV2Alt:
    """Mutant of ``build``: block ``body.7`` ends in a ReLU6 after its projection BN."""
    return MobileNetV2Alt(clipped_block=7)
