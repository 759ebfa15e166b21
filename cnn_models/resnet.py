"""ResNet, ResNeXt and Wide ResNet for ImageNet, state_dict-compatible with torchvision.

Sources
-------
* He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv:1512.03385): Table 1 (stem, four stages of 64/128/256/512 planes, blocks per stage,
  FLOPs), Fig. 5 (basic and bottleneck blocks), Eq. (2) and §3.3 option B (projection
  shortcut only where the shape changes), §3.4 (BN right after every conv, no conv bias).
* Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural
  Networks" (ResNeXt), CVPR 2017, Table 1 and Fig. 3(c): the bottleneck's 3x3 conv is grouped,
  inner width = cardinality (``groups``) x bottleneck width (``width_per_group`` / 64 x planes).
* Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016, ImageNet WRN-50-2-bottleneck:
  the bottleneck's inner width doubled (``width_per_group=128``), outer widths unchanged.
* torchvision ``torchvision/models/resnet.py`` (0.29): the module names and state_dict layout
  mirrored here (``conv1, bn1, layerS.B.conv1 ... layerS.0.downsample.{0,1}, fc``), the
  initialisation, and the weights metadata (``num_params``, ``_ops``) used as oracles.

Deviations from He et al. 2016, all shared with torchvision:
* ResNet v1.5: a downsampling Bottleneck puts its stride 2 on the 3x3 ``conv2``; the paper
  (and Caffe ResNet v1) strides the first 1x1 ``conv1``. Same parameters, more MACs
  (resnet50: 4.09 vs the paper's 3.8 GMACs).
* ``AdaptiveAvgPool2d(1)`` instead of a fixed 7x7 average pool: any input size works.
* Optional ``zero_init_residual`` (Goyal et al. 2017, §5.1): the last BN of every residual
  branch starts at gamma = 0, so each non-downsampling block starts as ``relu(x)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ._blocks import check_int_list, check_positive_int
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme

__all__ = [
    "BLOCKS",
    "RESNET_CONFIGS",
    "STAGE_PLANES",
    "STEM_PLANES",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]

NormLayer = Callable[[int], nn.Module]

STEM_PLANES = 64  # conv1: 7x7/2, 64 channels (He et al. 2016, Table 1)
STAGE_PLANES = (64, 128, 256, 512)  # planes of layer1..layer4 (Table 1: conv2_x..conv5_x)

# The variants as data. block, blocks per stage (He et al. 2016 Table 1), groups = ResNeXt
# cardinality and width_per_group = bottleneck width at planes 64 (Xie et al. 2017 Table 1).
RESNET_CONFIGS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    #                     block           layers          groups  width_per_group
    "resnet18":         {"block": "basic",      "layers": (2, 2, 2, 2),  "groups": 1,  "width_per_group": 64},
    "resnet34":         {"block": "basic",      "layers": (3, 4, 6, 3),  "groups": 1,  "width_per_group": 64},
    "resnet50":         {"block": "bottleneck", "layers": (3, 4, 6, 3),  "groups": 1,  "width_per_group": 64},
    "resnet101":        {"block": "bottleneck", "layers": (3, 4, 23, 3), "groups": 1,  "width_per_group": 64},
    "resnet152":        {"block": "bottleneck", "layers": (3, 8, 36, 3), "groups": 1,  "width_per_group": 64},
    "resnext50_32x4d":  {"block": "bottleneck", "layers": (3, 4, 6, 3),  "groups": 32, "width_per_group": 4},
    "resnext101_32x8d": {"block": "bottleneck", "layers": (3, 4, 23, 3), "groups": 32, "width_per_group": 8},
    "resnext101_64x4d": {"block": "bottleneck", "layers": (3, 4, 23, 3), "groups": 64, "width_per_group": 4},
    "wide_resnet50_2":  {"block": "bottleneck", "layers": (3, 4, 6, 3),  "groups": 1,  "width_per_group": 128},
    "wide_resnet101_2": {"block": "bottleneck", "layers": (3, 4, 23, 3), "groups": 1,  "width_per_group": 128},
})  # fmt: skip

# torchvision 0.29 weights metadata (the DEFAULT weights of each builder): num_params and
# _ops (labelled GFLOPS, in fact GMACs of conv + linear at 224x224, rounded to 3 decimals).
# The tests read the same numbers live from torchvision; these copies make the spec
# self-describing for the CLI.
_TV_META: Mapping[str, tuple[str, int, float]] = MappingProxyType({
    "resnet18":         ("ResNet18_Weights.IMAGENET1K_V1",          11_689_512,  1.814),
    "resnet34":         ("ResNet34_Weights.IMAGENET1K_V1",          21_797_672,  3.664),
    "resnet50":         ("ResNet50_Weights.IMAGENET1K_V2",          25_557_032,  4.089),
    "resnet101":        ("ResNet101_Weights.IMAGENET1K_V2",         44_549_160,  7.801),
    "resnet152":        ("ResNet152_Weights.IMAGENET1K_V2",         60_192_808, 11.514),
    "resnext50_32x4d":  ("ResNeXt50_32X4D_Weights.IMAGENET1K_V2",   25_028_904,  4.230),
    "resnext101_32x8d": ("ResNeXt101_32X8D_Weights.IMAGENET1K_V2",  88_791_336, 16.414),
    "resnext101_64x4d": ("ResNeXt101_64X4D_Weights.IMAGENET1K_V1",  83_455_272, 15.460),
    "wide_resnet50_2":  ("Wide_ResNet50_2_Weights.IMAGENET1K_V2",   68_883_240, 11.398),
    "wide_resnet101_2": ("Wide_ResNet101_2_Weights.IMAGENET1K_V2", 126_886_696, 22.753),
})  # fmt: skip


def _conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv, padding = dilation (keeps the size at stride 1), no bias (BN follows)."""
    return nn.Conv2d(
        c_in, c_out, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False
    )


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (He et al. 2016 Fig. 5 left): ``relu(bn2(conv2(relu(bn1(conv1 x)))) + s(x))``.

    ``s`` is the identity, or ``downsample`` (1x1 conv + BN, option B) where the block changes
    the shape. The stride sits on ``conv1``. Output channels = ``planes``.
    """

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if groups != 1:
            raise ValueError(f"groups: BasicBlock supports only groups=1, got {groups!r} (use Bottleneck)")
        if base_width != 64:
            raise ValueError(
                f"width_per_group: BasicBlock supports only width_per_group=64, got {base_width!r} "
                "(use Bottleneck)"
            )
        if dilation != 1:
            raise ValueError(f"dilation: BasicBlock supports only dilation=1, got {dilation!r}")
        norm = norm_layer or nn.BatchNorm2d
        # Registration order = torchvision's, so modules() and the seeded init agree.
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, H/stride, W/stride)
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)  # same shape as out
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped), 1x1 expand x4 (He et al. 2016 Fig. 5 right; ResNeXt Fig. 3c).

    Inner width = ``planes * base_width / 64 * groups``; output channels = ``4 * planes``.
    ResNet v1.5 (torchvision): the stride sits on the 3x3 ``conv2``, not on ``conv1``.
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        width = bottleneck_width(planes, base_width, groups)
        if width <= 0:
            raise ValueError(
                f"width_per_group: planes={planes} x width_per_group={base_width} / 64 rounds down "
                f"to an inner width of 0"
            )
        norm = norm_layer or nn.BatchNorm2d
        out = planes * self.expansion
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = norm(width)
        self.conv2 = _conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm(width)
        self.conv3 = _conv1x1(width, out)
        self.bn3 = norm(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (N, width, H/stride, W/stride)
        out = self.bn3(self.conv3(out))  # (N, 4*planes, H/stride, W/stride)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def bottleneck_width(planes: int, width_per_group: int, groups: int) -> int:
    """Inner width of a Bottleneck: ``floor(planes * width_per_group / 64) * groups``."""
    return planes * width_per_group // 64 * groups


BLOCKS: Mapping[str, type[BasicBlock] | type[Bottleneck]] = MappingProxyType(
    {"basic": BasicBlock, "bottleneck": Bottleneck}
)


def _resolve_block(block: object) -> type[BasicBlock] | type[Bottleneck]:
    if isinstance(block, str):
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)!r} or a block class, got {block!r}")
        return BLOCKS[block]
    if isinstance(block, type) and issubclass(block, (BasicBlock, Bottleneck)):
        return block
    raise ValueError(f"block must be BasicBlock, Bottleneck (or 'basic'/'bottleneck'), got {block!r}")


class ResNet(nn.Module):
    """The ImageNet ResNet trunk: stem, four stages of residual blocks, pool, classifier.

    ``block`` (``BasicBlock``/``Bottleneck`` or ``"basic"``/``"bottleneck"``) and ``layers``
    (blocks per stage, 4 positive ints) define the depth; ``groups`` and ``width_per_group``
    the ResNeXt / wide variants (Bottleneck only); ``replace_stride_with_dilation`` (3 bools,
    for layer2..layer4) trades a stage's stride for dilation (Bottleneck only).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck] | str,
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        block_cls = _resolve_block(block)
        layers = check_int_list("layers", layers, length=4, minimum=1)
        check_positive_int("num_classes", num_classes)
        check_positive_int("groups", groups)
        check_positive_int("width_per_group", width_per_group)
        if not isinstance(zero_init_residual, bool):
            raise ValueError(f"zero_init_residual must be a bool, got {zero_init_residual!r}")
        dilate = _check_dilation(replace_stride_with_dilation)
        if issubclass(block_cls, BasicBlock):
            if groups != 1:
                raise ValueError(f"groups: BasicBlock supports only groups=1, got {groups!r} (use Bottleneck)")
            if width_per_group != 64:
                raise ValueError(
                    f"width_per_group: BasicBlock supports only width_per_group=64, got {width_per_group!r}"
                )
            if any(dilate):
                raise ValueError(
                    f"replace_stride_with_dilation: BasicBlock supports no dilation, got {list(dilate)!r}"
                )
        elif bottleneck_width(STAGE_PLANES[0], width_per_group, groups) <= 0:
            raise ValueError(f"width_per_group={width_per_group!r} is too small: layer1 inner width 0")

        self._norm = norm_layer or nn.BatchNorm2d
        self._groups = groups
        self._width_per_group = width_per_group
        self._inplanes = STEM_PLANES
        self._dilation = 1

        self.conv1 = nn.Conv2d(3, STEM_PLANES, 7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm(STEM_PLANES)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block_cls, STAGE_PLANES[0], layers[0], stride=1, dilate=False)
        self.layer2 = self._stage(block_cls, STAGE_PLANES[1], layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._stage(block_cls, STAGE_PLANES[2], layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._stage(block_cls, STAGE_PLANES[3], layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_PLANES[3] * block_cls.expansion, num_classes)

        self._init_weights(zero_init_residual)

    def _stage(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int, dilate: bool
    ) -> nn.Sequential:
        """One stage: its first block may change the shape (stride, widths), the rest keep it."""
        first_dilation = self._dilation
        if dilate:  # keep the resolution, widen the kernels' reach instead
            self._dilation *= stride
            stride = 1
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self._inplanes != out:  # option B: project only where shapes differ
            downsample = nn.Sequential(_conv1x1(self._inplanes, out, stride), self._norm(out))
        common: dict[str, Any] = {
            "groups": self._groups, "base_width": self._width_per_group, "norm_layer": self._norm,
        }
        blocks_: list[nn.Module] = [
            block(self._inplanes, planes, stride, downsample, dilation=first_dilation, **common)
        ]
        self._inplanes = out
        blocks_ += [block(out, planes, dilation=self._dilation, **common) for _ in range(1, blocks)]
        return nn.Sequential(*blocks_)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He et al. 2015 normal init with fan_out (torchvision), BN gamma 1 / beta 0; the fc
        # keeps nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Goyal et al. 2017 §5.1: the branch's last BN starts at gamma = 0
            for m in self.modules():
                last: nn.Module | None = (
                    m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                )
                weight = getattr(last, "weight", None)
                if isinstance(weight, torch.Tensor):  # a norm_layer without affine has none
                    nn.init.zeros_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 64, H/2, W/2)
        x = self.maxpool(x)  # (N, 64, H/4, W/4)
        x = self.layer1(x)  # (N, 64e, H/4, W/4), e = block expansion
        x = self.layer2(x)  # (N, 128e, H/8, W/8)
        x = self.layer3(x)  # (N, 256e, H/16, W/16)
        x = self.layer4(x)  # (N, 512e, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 512e)
        return self.fc(x)  # (N, num_classes)


def _check_dilation(value: Sequence[bool] | None) -> tuple[bool, bool, bool]:
    if value is None:
        return (False, False, False)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 3:
        raise ValueError(f"replace_stride_with_dilation must be None or 3 bools (layer2..layer4), got {value!r}")
    if not all(isinstance(v, bool) for v in value):
        raise ValueError(f"replace_stride_with_dilation must hold bools, got {list(value)!r}")
    return (value[0], value[1], value[2])


def _build(
    name: str,
    num_classes: int,
    zero_init_residual: bool,
    replace_stride_with_dilation: Sequence[bool] | None,
    norm_layer: NormLayer | None,
) -> ResNet:
    cfg = RESNET_CONFIGS[name]
    return ResNet(
        cfg["block"],
        cfg["layers"],
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        groups=cfg["groups"],
        width_per_group=cfg["width_per_group"],
        replace_stride_with_dilation=replace_stride_with_dilation,
        norm_layer=norm_layer,
    )


# --- builders: keyword-only, typed; the architecture comes from RESNET_CONFIGS -----------


def resnet18(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNet-18 (He et al. 2016 Table 1): BasicBlock, [2, 2, 2, 2]."""
    return _build("resnet18", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnet34(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNet-34 (He et al. 2016 Table 1): BasicBlock, [3, 4, 6, 3]."""
    return _build("resnet34", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnet50(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNet-50 v1.5 (He et al. 2016 Table 1): Bottleneck, [3, 4, 6, 3]."""
    return _build("resnet50", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnet101(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNet-101 v1.5 (He et al. 2016 Table 1): Bottleneck, [3, 4, 23, 3]."""
    return _build("resnet101", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnet152(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNet-152 v1.5 (He et al. 2016 Table 1): Bottleneck, [3, 8, 36, 3]."""
    return _build("resnet152", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnext50_32x4d(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNeXt-50 32x4d (Xie et al. 2017 Table 1): cardinality 32, bottleneck width 4."""
    return _build("resnext50_32x4d", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnext101_32x8d(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNeXt-101 32x8d (Xie et al. 2017 §5.1): cardinality 32, bottleneck width 8."""
    return _build("resnext101_32x8d", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def resnext101_64x4d(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """ResNeXt-101 64x4d (Xie et al. 2017 Table 5): cardinality 64, bottleneck width 4."""
    return _build("resnext101_64x4d", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def wide_resnet50_2(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """Wide ResNet-50-2 (torchvision's form of Zagoruyko & Komodakis 2016): inner width x2."""
    return _build("wide_resnet50_2", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


def wide_resnet101_2(
    *, num_classes: int = 1000, zero_init_residual: bool = False,
    replace_stride_with_dilation: Sequence[bool] | None = None, norm_layer: NormLayer | None = None,
) -> ResNet:
    """Wide ResNet-101-2 (torchvision's form of Zagoruyko & Komodakis 2016): inner width x2."""
    return _build("wide_resnet101_2", num_classes, zero_init_residual, replace_stride_with_dilation, norm_layer)


# --- specs ------------------------------------------------------------------------------

_BUILDERS: Mapping[str, Callable[..., ResNet]] = MappingProxyType({
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    "resnet152": resnet152, "resnext50_32x4d": resnext50_32x4d, "resnext101_32x8d": resnext101_32x8d,
    "resnext101_64x4d": resnext101_64x4d, "wide_resnet50_2": wide_resnet50_2,
    "wide_resnet101_2": wide_resnet101_2,
})  # fmt: skip

_PAPERS = {
    "resnet": "He et al. 2016, Deep Residual Learning for Image Recognition, Table 1",
    "resnext": "Xie et al. 2017, Aggregated Residual Transformations (ResNeXt), Table 1",
    "wide_resnet": "Zagoruyko & Komodakis 2016, Wide Residual Networks, ImageNet WRN-50-2-bottleneck",
}

_INIT = InitScheme(
    conv="kaiming_normal_fan_out",
    linear="torch_default",
    linear_bias="torch_default",
    bn="ones_zeros",
    authority="torchvision",
    source=(
        "torchvision/models/resnet.py ResNet.__init__: kaiming_normal_(mode='fan_out', nonlinearity='relu') "
        "for convs (He et al. 2015, Eq. 14, backward form), BN weight 1 / bias 0, fc left at "
        "nn.Linear's default; zero_init_residual zeroes bn2 (BasicBlock) / bn3 (Bottleneck)"
    ),
)

_V15 = (
    "ResNet v1.5 (torchvision): a downsampling Bottleneck strides its 3x3 conv2; He et al. 2016 "
    "stride the first 1x1 conv1 (same params, more MACs: torchvision _ops vs paper Table 1 FLOPs)"
)
_POOL = "AdaptiveAvgPool2d(1) instead of the paper's fixed 7x7 average pool (same at 224x224)"


def _register_all() -> None:
    for name, builder in _BUILDERS.items():
        cfg = RESNET_CONFIGS[name]
        weights, n_params, gmacs = _TV_META[name]
        family_paper = "resnext" if name.startswith("resnext") else (
            "wide_resnet" if name.startswith("wide") else "resnet"
        )
        deviations = [_POOL]
        if cfg["block"] == "bottleneck":
            deviations.insert(0, _V15)
        register_model(
            ArchSpec(
                name=name,
                family="resnet",
                builder=builder,
                paper=_PAPERS[family_paper],
                torchvision=name,
                input_size=(3, 224, 224),
                # five stride-2 stages take 48x40 to 2x2 through odd sizes (3 and 5), so every
                # padding is exercised and train-mode BN still sees 8 values per channel in layer4,
                # at under half the float64 work of 64x64
                numerics_input_size=(3, 48, 40),
                init=_INIT,
                expected={
                    "params": Expected(n_params, source=f"torchvision {weights}.meta['num_params']"),
                    "macs": Expected(
                        round(gmacs * 1e9),
                        source=f"torchvision {weights}.meta['_ops'] (GMACs, 3 decimals)",
                        abs_tol=0.5e6,
                        input_size=(3, 224, 224),
                    ),
                },
                config=MappingProxyType(
                    {**cfg, "num_classes": 1000, "replace_stride_with_dilation": (False, False, False)}
                ),
                num_classes=1000,
                deviations=tuple(deviations),
                zero_init_residual_bns=("bn2",) if cfg["block"] == "basic" else ("bn3",),
            )
        )


_register_all()
