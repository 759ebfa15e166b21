"""MobileNet v2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", arXiv:1801.04381), weight-compatible with torchvision.

Sources:

* Table 2 (the body): a 3x3 stride-2 stem conv with 32 channels, then inverted residual
  bottlenecks given as rows ``(t, c, n, s)`` (``INVERTED_RESIDUAL_SETTING``), a 1x1 conv to
  1280 channels, global average pooling and a classifier. Table 1 / Fig. 4 (the block):
  1x1 expansion by ``t`` + BN + ReLU6 (omitted when ``t = 1``), 3x3 depthwise conv with
  stride ``s`` + BN + ReLU6, linear 1x1 projection + BN; the input is added back when the
  stride is 1 and the channel counts match. Only the first block of a row has stride ``s``.
* Width multiplier (Section 6.1, and the reference code's ``_make_divisible``): every
  channel count ``c`` becomes ``make_divisible(c * width_mult, 8)``; the last conv keeps
  1280 channels for width multipliers below 1 (``1280 * max(1, width_mult)``).
* torchvision ``models/mobilenetv2.py``: module names and nesting (``features.N``,
  ``features.N.conv.K``, ``classifier.1``), so state dicts load both ways; Dropout(0.2)
  before the classifier; the functional global pool in ``forward``; its weight init.
  Expected parameters: 3,504,872 (torchvision weights meta ``num_params``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import (
    ConvBNAct,
    check_positive_float,
    check_positive_int,
    check_probability,
    init_fan_out_normal_,
    make_divisible,
)
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme

__all__ = [
    "INVERTED_RESIDUAL_SETTING",
    "InvertedResidual",
    "MobileNetV2",
    "mobilenet_v2",
]

# Table 2 of the paper. Columns: t (expansion factor), c (output channels), n (repeats),
# s (stride of the first repeat).
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
INPUT_CHANNEL = 32  # Table 2, first row: conv2d 3x3, 32, stride 2
LAST_CHANNEL = 1280  # Table 2, the conv2d 1x1 before the pool


class InvertedResidual(nn.Module):
    """Table 1: [1x1 expand + BN + ReLU6] -> 3x3 depthwise + BN + ReLU6 -> 1x1 linear + BN.

    ``conv`` is a Sequential whose indices are torchvision's: with expansion,
    ``conv.0`` expand, ``conv.1`` depthwise, ``conv.2`` projection, ``conv.3`` its BN;
    without (t = 1) the depthwise is ``conv.0``, the projection ``conv.1``, its BN ``conv.2``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        check_positive_int("expand_ratio", expand_ratio)
        hidden = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=nn.ReLU6))  # (N, tC, H, W)
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),  # (N, tC, H/s, W/s)
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # (N, C_out, H/s, W/s), linear
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride
        self.out_channels = out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


def check_inverted_residual_setting(
    name: str, value: object
) -> list[tuple[int, int, int, int]]:
    """A non-empty list of rows of 4 positive ints (t, c, n, s); ValueError naming ``name``."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty list of (t, c, n, s) rows, got {value!r}")
    rows = []
    for i, row in enumerate(value):
        if (
            not isinstance(row, Sequence)
            or isinstance(row, str)
            or len(row) != 4
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in row)
        ):
            raise ValueError(f"{name}[{i}] must be 4 positive ints (t, c, n, s), got {row!r}")
        t, c, n, s = row
        rows.append((t, c, n, s))
    return rows


class MobileNetV2(nn.Module):
    """Table 2 body with torchvision's module layout; ``width_mult`` thins every layer."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: Sequence[Sequence[int]] | None = None,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        width_mult = check_positive_float("width_mult", width_mult)
        check_positive_int("round_nearest", round_nearest)
        dropout = check_probability("dropout", dropout)
        setting = check_inverted_residual_setting(
            "inverted_residual_setting",
            INVERTED_RESIDUAL_SETTING if inverted_residual_setting is None else inverted_residual_setting,
        )

        channels = make_divisible(INPUT_CHANNEL * width_mult, round_nearest)
        self.last_channel = make_divisible(LAST_CHANNEL * max(1.0, width_mult), round_nearest)
        layers: list[nn.Module] = [
            ConvBNAct(3, channels, 3, 2, activation=nn.ReLU6)  # (N, 32, H/2, W/2)
        ]
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        # 224 px, default table: 112 (16), 56 (24), 28 (32), 14 (64, 96), 7 (160, 320)
        layers.append(ConvBNAct(channels, self.last_channel, 1, activation=nn.ReLU6))  # (N, 1280, H/32, W/32)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_fan_out_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 1280, H/32, W/32)
        x = F.adaptive_avg_pool2d(x, (1, 1))  # (N, 1280, 1, 1)
        x = torch.flatten(x, 1)  # (N, 1280)
        return self.classifier(x)  # (N, num_classes)




def mobilenet_v2(
    *,
    num_classes: int = 1000,
    width_mult: float = 1.0,
    inverted_residual_setting: Sequence[Sequence[int]] | None = None,
    round_nearest: int = 8,
    dropout: float = 0.2,
) -> MobileNetV2:
    """MobileNet v2 (Table 2), torchvision's ``mobilenet_v2`` layout and init."""
    return MobileNetV2(
        num_classes=num_classes,
        width_mult=width_mult,
        inverted_residual_setting=inverted_residual_setting,
        round_nearest=round_nearest,
        dropout=dropout,
    )


register_model(
    ArchSpec(
        name="mobilenet_v2",
        family="mobilenet_v2",
        builder=mobilenet_v2,
        paper="Sandler et al. 2018, MobileNetV2, Tables 1 and 2",
        torchvision="mobilenet_v2",
        input_size=(3, 224, 224),
        init=InitScheme(
            conv="kaiming_normal_fan_out",
            linear="normal_0.01",
            authority="torchvision",
            source="torchvision/models/mobilenetv2.py MobileNetV2.__init__: kaiming_normal_ fan_out convs, "
            "N(0, 0.01) linear, zero biases, BN 1/0",
        ),
        expected={
            "params": Expected(3_504_872, source="torchvision MobileNet_V2_Weights meta num_params"),
            "macs": Expected(
                0.301e9,
                source="torchvision MobileNet_V2_Weights meta _ops (0.301 'GFLOPS': GMACs of conv + "
                "linear, rounded to 3 decimals); the paper's Table 4 says 300M",
                abs_tol=0.0005e9,
                input_size=(3, 224, 224),
            ),
        },
        config={
            "width_mult": 1.0,
            "inverted_residual_setting": INVERTED_RESIDUAL_SETTING,
            "input_channel": INPUT_CHANNEL,
            "last_channel": LAST_CHANNEL,
            "round_nearest": 8,
            "num_classes": 1000,
        },
        builder_kwargs={},
        deviations=(
            "torchvision's layout and init, not the paper's TF code: Dropout(0.2) before the "
            "classifier, BN eps 1e-5 / momentum 0.1, kaiming fan_out init",
        ),
    )
)
