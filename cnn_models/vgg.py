"""VGG 11/13/16/19, with and without batch norm.

Sources:

* Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
  Recognition", ICLR 2015 (arXiv:1409.1556): Table 1 (configurations A, B, D, E: 3x3 convs,
  stride 1, padding 1, 2x2 max pools of stride 2, FC-4096, FC-4096, FC-1000) and Table 2
  (parameter counts in millions: 133 for A, 133 for B, 138 for D, 144 for E).
* torchvision ``torchvision/models/vgg.py`` (0.29), whose layout we mirror so state_dicts are
  interchangeable: ``features.N`` numbered conv [bn] relu ... maxpool, ``avgpool =
  AdaptiveAvgPool2d((7, 7))`` (not in the paper: it lets any input size >= 32 reach the
  classifier), ``classifier = Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
  Dropout, Linear(4096, n)``. BN variants (``vgg*_bn``) are torchvision's, not the paper's.
* Init (torchvision): conv ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` with
  bias 0, BN weight 1 bias 0, linear ``N(0, 0.01)`` with bias 0.

Configurations C (1x1 convs) and A-LRN of the paper are not built.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import torch
import torch.nn as nn

from ._blocks import check_positive_int, check_probability, init_fan_out_normal_
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme

__all__ = ["CFGS", "VGG", "make_features", "vgg", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
           "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

CfgEntry = int | str

# VGG paper, Table 1: an int is a 3x3 conv (stride 1, padding 1) to that many channels,
# "M" a 2x2 max pool of stride 2. Letters are the paper's column names.
CFGS: MappingProxyType[str, tuple[CfgEntry, ...]] = MappingProxyType({
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # VGG11
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # VGG13
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"),  # VGG16
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),  # VGG19
})

POOL_SIZE = (7, 7)  # torchvision's AdaptiveAvgPool2d output: the 7x7 maps of a 224 input
HIDDEN = 4096  # the paper's FC-4096 layers


def check_cfg(cfg: object) -> tuple[CfgEntry, ...]:
    """A VGG layer list: positive ints (conv widths) and "M" (max pool), at least one conv."""
    if not isinstance(cfg, Sequence) or isinstance(cfg, str):
        raise ValueError(f"cfg must be a list of conv widths and 'M', got {cfg!r}")
    for i, entry in enumerate(cfg):
        if entry == "M":
            continue
        if isinstance(entry, bool) or not isinstance(entry, int) or entry <= 0:
            raise ValueError(f"cfg[{i}] must be a positive int (conv width) or 'M', got {entry!r}")
    if not any(isinstance(e, int) for e in cfg):
        raise ValueError(f"cfg must contain at least one conv width, got {list(cfg)!r}")
    return tuple(cfg)


def make_features(cfg: Sequence[CfgEntry], *, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The ``features`` stack: per int ``c``: Conv2d(3x3, pad 1) [BatchNorm2d] ReLU; per "M": MaxPool2d(2, 2)."""
    cfg = check_cfg(cfg)
    check_positive_int("in_channels", in_channels)
    layers: list[nn.Module] = []
    channels = in_channels
    for entry in cfg:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # (N, C, H/2, W/2)
            continue
        assert isinstance(entry, int)
        # with BN the conv keeps its bias, as torchvision does (state_dict compatibility)
        layers.append(nn.Conv2d(channels, entry, kernel_size=3, padding=1))  # (N, entry, H, W)
        if batch_norm:
            layers.append(nn.BatchNorm2d(entry))
        layers.append(nn.ReLU(inplace=True))
        channels = entry
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features -> AdaptiveAvgPool2d(7x7) -> flatten -> 3-layer classifier.

    The classifier's input width is ``C * 7 * 7`` with ``C`` the last conv's width in
    ``features`` (512 for every paper configuration, which is torchvision's fixed value).
    """

    def __init__(
        self,
        features: nn.Sequential,
        *,
        num_classes: int = 1000,
        dropout: float = 0.5,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_probability("dropout", dropout)
        convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("features must contain at least one Conv2d")
        channels = convs[-1].out_channels
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(POOL_SIZE)
        self.classifier = nn.Sequential(
            nn.Linear(channels * POOL_SIZE[0] * POOL_SIZE[1], HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(HIDDEN, num_classes),
        )
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's VGG init: He (fan_out) convs, BN 1/0, N(0, 0.01) linears, zero biases."""
        init_fan_out_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 512, H/32, W/32) for the paper's configurations
        x = self.avgpool(x)  # (N, 512, 7, 7)
        x = torch.flatten(x, 1)  # (N, 25088)
        return self.classifier(x)  # (N, num_classes)


def vgg(
    cfg: Sequence[CfgEntry],
    *,
    batch_norm: bool = False,
    num_classes: int = 1000,
    dropout: float = 0.5,
    init_weights: bool = True,
) -> VGG:
    """A VGG from any layer list (ints and "M"); the named variants below use ``CFGS``."""
    check_positive_int("num_classes", num_classes)  # before any allocation
    check_probability("dropout", dropout)
    return VGG(
        make_features(cfg, batch_norm=batch_norm),
        num_classes=num_classes,
        dropout=dropout,
        init_weights=init_weights,
    )


def vgg11(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration A (paper Table 1; torchvision ``vgg11``)."""
    return vgg(CFGS["A"], batch_norm=False, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg11_bn(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration A with batch norm (paper Table 1; torchvision ``vgg11_bn``)."""
    return vgg(CFGS["A"], batch_norm=True, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg13(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration B (paper Table 1; torchvision ``vgg13``)."""
    return vgg(CFGS["B"], batch_norm=False, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg13_bn(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration B with batch norm (paper Table 1; torchvision ``vgg13_bn``)."""
    return vgg(CFGS["B"], batch_norm=True, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg16(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration D (paper Table 1; torchvision ``vgg16``)."""
    return vgg(CFGS["D"], batch_norm=False, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg16_bn(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration D with batch norm (paper Table 1; torchvision ``vgg16_bn``)."""
    return vgg(CFGS["D"], batch_norm=True, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg19(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration E (paper Table 1; torchvision ``vgg19``)."""
    return vgg(CFGS["E"], batch_norm=False, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


def vgg19_bn(*, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True) -> VGG:
    """VGG configuration E with batch norm (paper Table 1; torchvision ``vgg19_bn``)."""
    return vgg(CFGS["E"], batch_norm=True, num_classes=num_classes, dropout=dropout, init_weights=init_weights)


# --- specs ------------------------------------------------------------------------------

_INIT = InitScheme(
    conv="kaiming_normal_fan_out",
    linear="normal_0.01",
    conv_bias="zeros",
    linear_bias="zeros",
    bn="ones_zeros",
    authority="torchvision",
    source="torchvision/models/vgg.py VGG.__init__ (init_weights=True)",
)

# name, paper column, BN?, torchvision weights enum, meta num_params, meta _ops (GMACs at
# 224), paper Table 2 params (millions, rounded; no-BN models only)
_VARIANTS: tuple[tuple[str, str, bool, str, int, float, int | None], ...] = (
    ("vgg11", "A", False, "VGG11_Weights", 132_863_336, 7.609, 133),
    ("vgg11_bn", "A", True, "VGG11_BN_Weights", 132_868_840, 7.609, None),
    ("vgg13", "B", False, "VGG13_Weights", 133_047_848, 11.308, 133),
    ("vgg13_bn", "B", True, "VGG13_BN_Weights", 133_053_736, 11.308, None),
    ("vgg16", "D", False, "VGG16_Weights", 138_357_544, 15.47, 138),
    ("vgg16_bn", "D", True, "VGG16_BN_Weights", 138_365_992, 15.47, None),
    ("vgg19", "E", False, "VGG19_Weights", 143_667_240, 19.632, 144),
    ("vgg19_bn", "E", True, "VGG19_BN_Weights", 143_678_248, 19.632, None),
)

_BUILDERS = {
    "vgg11": vgg11, "vgg11_bn": vgg11_bn, "vgg13": vgg13, "vgg13_bn": vgg13_bn,
    "vgg16": vgg16, "vgg16_bn": vgg16_bn, "vgg19": vgg19, "vgg19_bn": vgg19_bn,
}

for _name, _letter, _bn, _enum, _params, _gmacs, _paper_m in _VARIANTS:
    _expected = {
        "params": Expected(_params, source=f"torchvision 0.29 {_enum}.IMAGENET1K_V1.meta['num_params']"),
        "macs": Expected(
            _gmacs * 1e9,
            source=f"torchvision 0.29 {_enum}.IMAGENET1K_V1.meta['_ops'] (GMACs of conv+linear, 3 decimals)",
            abs_tol=0.0005e9,
            input_size=(3, 224, 224),
        ),
    }
    if _paper_m is not None:
        _expected["params_paper"] = Expected(
            _paper_m * 1e6,
            source=f"Simonyan & Zisserman 2015, Table 2, configuration {_letter} (millions, rounded)",
            abs_tol=0.5e6,
        )
    _deviations = ["AdaptiveAvgPool2d((7, 7)) before the classifier (torchvision; the paper has none)"]
    if _bn:
        _deviations.append("BatchNorm2d after every conv (torchvision; the paper predates BN); convs keep their bias")
    register_model(
        ArchSpec(
            name=_name,
            family="vgg",
            builder=_BUILDERS[_name],
            paper=f"Simonyan & Zisserman 2015, Table 1 configuration {_letter}",
            torchvision=_name,
            input_size=(3, 224, 224),
            init=_INIT,
            expected=_expected,
            config=MappingProxyType({
                "cfg": CFGS[_letter],
                "batch_norm": _bn,
                "num_classes": 1000,
                "dropout": 0.5,
            }),
            deviations=tuple(_deviations),
        )
    )
