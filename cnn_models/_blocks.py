"""Small pieces shared by several families, plus argument validation helpers.

``ConvBNAct`` is a ``Sequential`` of (conv, bn, activation) so that its state_dict keys are
``N.0.weight`` / ``N.1.running_mean``, the layout torchvision's ``Conv2dNormActivation``
uses in MobileNet v2/v3 and that our MobileNet v1 shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn as nn

__all__ = [
    "ConvBNAct",
    "init_fan_out_normal_",
    "check_choice",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_int_list",
    "make_divisible",
]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without dropping below 90 % of it.

    The rule of the MobileNet v2 reference code (TF ``_make_divisible``), which torchvision
    follows: channel counts stay hardware friendly and never shrink by more than 10 %.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """conv(k, stride, groups, no bias) -> BatchNorm -> activation (or none)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        activation: Callable[..., nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


def init_fan_out_normal_(model: nn.Module, linear_std: float = 0.01) -> None:
    """torchvision's VGG / MobileNet initialisation, in module order (so the draws match).

    Conv weights N(0, 2/fan_out) (He et al. 2015, Eq. 14; ``kaiming_normal_(mode="fan_out")``,
    whose default gain is ReLU's), BatchNorm gamma 1 and beta 0, Linear weights
    N(0, ``linear_std``^2), every bias 0. Declared as ``InitScheme(conv="kaiming_normal_fan_out",
    linear="normal_0.01")``.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


# --- argument validation: every builder checks its arguments and names the bad one --------


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if value != value or value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_int_list(name: str, value: object, length: int | None = None, minimum: int = 1) -> list[int]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{name} must be a list of ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {list(value)!r}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{name}[{i}] must be an int >= {minimum}, got {v!r}")
    return list(value)


def check_choice(name: str, value: object, choices: Sequence[object]) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)!r}, got {value!r}")
    return value
