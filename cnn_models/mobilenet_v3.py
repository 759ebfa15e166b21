"""MobileNet v3 Large and Small (Howard et al. 2019, "Searching for MobileNetV3",
arXiv:1905.02244), weight-compatible with torchvision.

Sources:

* Tables 1 (Large) and 2 (Small): the stem (3x3 conv, 16 channels, stride 2, h-swish), the
  bottleneck rows ``(in, kernel, exp, out, SE, NL, s)`` of ``LARGE`` / ``SMALL``, a 1x1 conv
  to ``6 * out`` channels, pooling, then two "1x1 NBN" layers (960 -> 1280 -> k for Large,
  576 -> 1024 -> k for Small) which act on a 1x1 map, i.e. fully connected layers.
* Section 5.3 and Fig. 4 (the block): [1x1 expand + BN + NL] (omitted when exp = in),
  depthwise k x k + BN + NL, [squeeze-and-excite: global pool, 1x1 conv to exp/4 channels,
  ReLU, 1x1 conv back, hard-sigmoid, rescale], linear 1x1 projection + BN; residual when the
  stride is 1 and in = out. NL is ReLU ("RE") or h-swish ("HS", ``nn.Hardswish``).
* Section 6.1.1 (width multiplier): channel counts become ``make_divisible(c * width, 8)``;
  the SE squeeze width is ``make_divisible(exp // 4, 8)``.
* torchvision ``models/mobilenetv3.py``: module names and nesting (``features.N.block.K``,
  ``block.K.fc1`` / ``fc2`` for SE, ``avgpool``, ``classifier.{0,3}``), BatchNorm eps 1e-3 and
  momentum 0.01, Dropout(0.2) between the two classifier layers, its init. Expected
  parameters: 5,483,032 (Large) and 2,542,856 (Small), torchvision weights meta.

torchvision's ``reduced_tail`` and ``dilated`` options (detection/segmentation backbones)
are not offered here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

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
    "LARGE",
    "SMALL",
    "InvertedResidualV3",
    "MobileNetV3",
    "SqueezeExcite",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
]

Row = tuple[int, int, int, int, bool, str, int]

# Table 1 (MobileNetV3-Large). Columns: in, kernel, exp, out, SE, NL, s.
LARGE: tuple[Row, ...] = (
    # in, k, exp, out, SE, NL, s
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
LARGE_LAST = 1280  # Table 1: conv2d 1x1 NBN, 1280

# Table 2 (MobileNetV3-Small).
SMALL: tuple[Row, ...] = (
    # in, k, exp, out, SE, NL, s
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
)
SMALL_LAST = 1024  # Table 2: conv2d 1x1 NBN, 1024

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
    activation: Callable[..., nn.Module] | None = None,
) -> ConvBNAct:
    """ConvBNAct with torchvision's (TF's) BatchNorm settings for v3: eps 1e-3, momentum 0.01."""
    return ConvBNAct(
        c_in, c_out, kernel, stride, groups=groups, activation=activation, bn_eps=1e-3, bn_momentum=0.01
    )


class SqueezeExcite(nn.Module):
    """Section 5.3: x * hsigmoid(fc2(relu(fc1(avgpool(x))))), fc1/fc2 are 1x1 convs with bias."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.avgpool(x)  # (N, C, 1, 1)
        s = self.activation(self.fc1(s))  # (N, C/4, 1, 1)
        s = self.scale_activation(self.fc2(s))  # (N, C, 1, 1)
        return s * x  # (N, C, H, W)


class InvertedResidualV3(nn.Module):
    """Fig. 4: [expand] -> depthwise -> [SE] -> linear projection, residual when shapes match.

    ``block`` indices follow torchvision: expand (if exp != in), depthwise, SE (if used),
    projection (``Sequential(conv, bn)``, no activation).
    """

    def __init__(
        self,
        in_channels: int,
        kernel: int,
        expanded: int,
        out_channels: int,
        use_se: bool,
        activation: str,
        stride: int,
    ) -> None:
        super().__init__()
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(_conv_bn(in_channels, expanded, 1, activation=act))  # (N, exp, H, W)
        layers.append(
            _conv_bn(expanded, expanded, kernel, stride, groups=expanded, activation=act)
        )  # (N, exp, H/s, W/s)
        if use_se:
            layers.append(SqueezeExcite(expanded, make_divisible(expanded // 4, 8)))
        layers.append(_conv_bn(expanded, out_channels, 1, activation=None))  # (N, out, H/s, W/s)
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


def check_setting(name: str, value: object) -> list[Row]:
    """Rows (in, kernel, exp, out, SE, NL, s): positive ints, odd kernels, a bool, "RE"/"HS";
    each row's ``in`` must be the previous row's ``out``."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty list of (in, k, exp, out, SE, NL, s) rows, got {value!r}")
    rows: list[Row] = []
    for i, row in enumerate(value):
        ok = isinstance(row, Sequence) and not isinstance(row, str) and len(row) == 7
        if ok:
            c_in, k, exp, out, se, nl, s = row
            ints = (c_in, k, exp, out, s)
            ok = (
                all(not isinstance(v, bool) and isinstance(v, int) and v > 0 for v in ints)
                and k % 2 == 1
                and isinstance(se, bool)
                and nl in _ACTIVATIONS
            )
        if not ok:
            raise ValueError(
                f"{name}[{i}] must be (in, odd kernel, exp, out, stride: positive ints; SE: bool; "
                f"NL: 'RE' or 'HS') as (in, k, exp, out, SE, NL, s), got {row!r}"
            )
        r: Row = (int(row[0]), int(row[1]), int(row[2]), int(row[3]), bool(row[4]), str(row[5]), int(row[6]))
        if rows and r[0] != rows[-1][3]:
            raise ValueError(f"{name}[{i}]: input channels {r[0]} != previous row's output {rows[-1][3]}")
        rows.append(r)
    return rows


class MobileNetV3(nn.Module):
    """Table 1 / 2 body with torchvision's layout; ``width_mult`` thins every layer."""

    def __init__(
        self,
        *,
        setting: Sequence[Sequence[object]],
        last_channel: int,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        rows = check_setting("setting", setting)
        check_positive_int("last_channel", last_channel)
        check_positive_int("num_classes", num_classes)
        width_mult = check_positive_float("width_mult", width_mult)
        dropout = check_probability("dropout", dropout)

        def scale(c: int) -> int:
            return make_divisible(c * width_mult, 8)

        layers: list[nn.Module] = [
            _conv_bn(3, scale(rows[0][0]), 3, 2, activation=nn.Hardswish)  # (N, 16, H/2, W/2)
        ]
        for c_in, k, exp, out, se, nl, s in rows:
            layers.append(InvertedResidualV3(scale(c_in), k, scale(exp), scale(out), se, nl, s))
        last_in = scale(rows[-1][3])
        # Large at 224 px: 112 (16), 56 (24), 28 (40), 14 (80, 112), 7 (160), then 1x1 to 960
        layers.append(_conv_bn(last_in, 6 * last_in, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)  # (N, 6 out, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # (N, 6 out, 1, 1)
        self.last_channel = scale(last_channel)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, self.last_channel),  # Table 1 "conv2d 1x1, NBN" on a 1x1 map
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(self.last_channel, num_classes),
        )
        init_fan_out_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 6 out, H/32, W/32)
        x = self.avgpool(x)  # (N, 6 out, 1, 1)
        x = torch.flatten(x, 1)  # (N, 6 out)
        return self.classifier(x)  # (N, num_classes)




def mobilenet_v3_large(*, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Large (Table 1), torchvision's layout and init."""
    return MobileNetV3(
        setting=LARGE, last_channel=LARGE_LAST, num_classes=num_classes, width_mult=width_mult, dropout=dropout
    )


def mobilenet_v3_small(*, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Small (Table 2), torchvision's layout and init."""
    return MobileNetV3(
        setting=SMALL, last_channel=SMALL_LAST, num_classes=num_classes, width_mult=width_mult, dropout=dropout
    )


_DEVIATIONS = (
    "torchvision's layout, not the paper's TF code: the two final '1x1 NBN' convs are Linear "
    "layers (identical on the pooled 1x1 map), with Dropout(0.2) between them",
    "the SE squeeze width is make_divisible(exp // 4, 8) (torchvision), the paper says exp / 4",
)

for _name, _builder, _setting, _last, _params, _ops, _table, _paper in (
    ("mobilenet_v3_large", mobilenet_v3_large, LARGE, LARGE_LAST, 5_483_032, 0.217, "Table 1", "5.4M, 219M"),
    ("mobilenet_v3_small", mobilenet_v3_small, SMALL, SMALL_LAST, 2_542_856, 0.057, "Table 2", "2.5M, 56M"),
):
    register_model(
        ArchSpec(
            name=_name,
            family="mobilenet_v3",
            builder=_builder,
            paper=f"Howard et al. 2019, Searching for MobileNetV3, {_table}",
            torchvision=_name,
            input_size=(3, 224, 224),
            init=InitScheme(
                conv="kaiming_normal_fan_out",
                linear="normal_0.01",
                authority="torchvision",
                source="torchvision/models/mobilenetv3.py MobileNetV3.__init__: kaiming_normal_ fan_out convs, "
                "N(0, 0.01) linears, zero biases, BN 1/0",
            ),
            expected={
                "params": Expected(_params, source="torchvision weights meta num_params"),
                "macs": Expected(
                    _ops * 1e9,
                    source=f"torchvision weights meta _ops ({_ops} 'GFLOPS': GMACs of conv + linear, "
                    f"3 decimals); the paper's Table 3 says {_paper} (params, MAdds)",
                    abs_tol=0.0005e9,
                    input_size=(3, 224, 224),
                ),
            },
            config={
                "setting": _setting,
                "last_channel": _last,
                "width_mult": 1.0,
                "round_nearest": 8,
                "num_classes": 1000,
            },
            builder_kwargs={},
            deviations=_DEVIATIONS,
        )
    )
