"""MobileNet v1 (Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", arXiv:1704.04861), as published.

Sources:

* Table 1 (the body): a 3x3 stride-2 stem conv with 32 channels, then 13 depthwise separable
  blocks (3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU) with the
  widths and strides of ``BLOCKS``, average pooling, one fully connected layer. Every conv
  is followed by BN and ReLU (Fig. 3), so convs carry no bias. The table prints "s2" on the
  last depthwise conv; its own input sizes (7x7 before and after) say stride 1, which we use.
* Section 3.3 (width multiplier alpha): every layer's channel count ``c`` becomes
  ``alpha * c``. Rounding, stated exactly: ``max(1, int(c * alpha))`` (floor, at least one
  channel). All of Table 1's widths are powers of two, so ``c * alpha`` is computed exactly in
  floating point and the floor is the floor of the true product. For the paper's
  alpha = 1, 0.75, 0.5, 0.25 every product is an integer, so the rounding never matters for
  Tables 6 and 7. (The paper's TF-slim code clamps at ``min_depth = 8`` instead of 1; that
  only differs below alpha = 0.25.)
* Section 3.4 (resolution multiplier rho): the input size. Table 1 ends in "Avg Pool / s1,
  Pool 7x7" on the 7x7 map of a 224 input, while Table 7 runs the same network at 192, 160
  and 128 px (6x6, 5x5, 4x4 maps), which a fixed 7x7 pool cannot pool. The specs declare
  both readings (``ArchSpec.readings``), selected by ``pool``: ``"global"`` (the default,
  ``AdaptiveAvgPool2d(1)``: any input size) or ``"avg7"`` (``AvgPool2d(7, stride=1)`` as
  Table 1 prints it: the same function at 224 px, and no 1x1 output at other sizes).
  Neither pool has parameters or buffers, so the state_dict is the same.
* The activation: Fig. 3 and Section 3.1 name ReLU; the authors' TF-slim release
  (research/slim/nets/mobilenet_v1.py) applies ReLU6 after every BN, as timm does. The specs
  declare both (``act="relu"``, the default, or ``"relu6"``); with the pool that makes four
  admissible builds (``ArchSpec.reading_combinations``).
* Tables 6 and 7: parameters (4.2M / 2.6M / 1.3M / 0.5M) and mult-adds (569M / 325M / 149M
  / 41M at 224 px; 418M / 290M / 186M at 192 / 160 / 128 px for alpha = 1). Our exact counts,
  BN affine parameters and the classifier included: 4,231,976 / 2,585,560 / 1,331,592 /
  470,072 params (each the paper's figure rounded to one decimal, so ``abs_tol`` 0.05M);
  568.7M / 325.4M / 149.5M / 41.0M and 418.1M / 290.7M / 186.4M mult-adds (conv + FC
  multiply-adds, no BN): the paper rounds all but 290.7M, which it truncates to 290M, so
  ``abs_tol`` is 1M.

torchvision has no MobileNet v1. The layout follows torchvision's MobileNet v2 conventions
(``features.N`` of ``ConvBNAct``, ``classifier = [Dropout, Linear]``) so that v1 and v2
state dicts read alike; block ``features.k`` (k = 1..13) holds ``dw`` and ``pw``.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn as nn

from ._blocks import (
    ConvBNAct,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_probability,
    init_fan_out_normal_,
)
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme, Reading

__all__ = [
    "BLOCKS",
    "STEM",
    "DepthwiseSeparable",
    "MobileNetV1",
    "POOLS",
    "mobilenet_v1",
    "mobilenet_v1_025",
    "mobilenet_v1_050",
    "mobilenet_v1_075",
    "scale_width",
]

# Table 1. Stem: (out_channels, stride) of the full 3x3 conv.
STEM: tuple[int, int] = (32, 2)
# Table 1, the 13 depthwise separable blocks: (pointwise out_channels, depthwise stride).
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *((512, 1),) * 5,
    (1024, 2),
    (1024, 1),
)


# The final pool: "global" (AdaptiveAvgPool2d(1)) or "avg7" (Table 1's "Avg Pool / s1, 7x7").
POOLS = ("global", "avg7")
# The activation after every BN: "relu" (Fig. 3) or "relu6" (the authors' TF-slim release).
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def scale_width(channels: int, alpha: float) -> int:
    """Section 3.3: ``channels`` thinned by ``alpha``, floored, at least 1."""
    return max(1, int(channels * alpha))


class DepthwiseSeparable(nn.Module):
    """Fig. 3 (right): 3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU.

    Parameters ``9 C_in + C_in C_out`` (plus BN ``2 C_in + 2 C_out``) against ``9 C_in C_out``
    for a full 3x3 conv: the ratio ``1/C_out + 1/9`` of Section 3.1.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, activation: type[nn.Module] = nn.ReLU
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, activation=activation)
        self.pw = ConvBNAct(in_channels, out_channels, 1, activation=activation)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(x)  # (N, C_in, H/s, W/s)
        return self.pw(x)  # (N, C_out, H/s, W/s)


class MobileNetV1(nn.Module):
    """Table 1 body, thinned by ``alpha``; average pool; ``[Dropout, Linear]`` head.

    ``pool="global"``: ``AdaptiveAvgPool2d(1)``, any input size. ``pool="avg7"``:
    ``AvgPool2d(7, stride=1)``, Table 1 to the letter: the same at 224 px (7x7 map); on a
    smaller map it raises, on a larger one the pooled map is not 1x1 and the classifier's
    input size does not match. ``act="relu"`` (Fig. 3) or ``"relu6"`` (min(max(x, 0), 6), as the
    authors' TF-slim release builds every layer) after every BatchNorm.
    """

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.0,
        blocks: tuple[tuple[int, int], ...] = BLOCKS,
        stem: tuple[int, int] = STEM,
        pool: str = "global",
        act: str = "relu",
    ) -> None:
        super().__init__()
        alpha = check_positive_float("alpha", alpha)
        check_positive_int("num_classes", num_classes)
        dropout = check_probability("dropout", dropout)
        check_choice("pool", pool, POOLS)
        check_choice("act", act, tuple(ACTIVATIONS))
        activation = ACTIVATIONS[act]
        _check_table("stem", [stem])
        _check_table("blocks", blocks)

        channels = scale_width(stem[0], alpha)
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, stem[1], activation=activation)]  # (N, 32a, H/2, W/2)
        for out, stride in blocks:
            # 224 px: 112 -> 112, 56, 56, 28, 28, 14 (x6), 7, 7
            layers.append(DepthwiseSeparable(channels, scale_width(out, alpha), stride, activation))
            channels = scale_width(out, alpha)
        self.features = nn.Sequential(*layers)  # (N, 1024a, H/32, W/32)
        self.avgpool: nn.Module = (  # (N, 1024a, 1, 1); avg7 only from a 7x7 map
            nn.AdaptiveAvgPool2d(1) if pool == "global" else nn.AvgPool2d(7, stride=1)
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes))
        self.last_channel = channels
        init_fan_out_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 1024a, H/32, W/32)
        x = self.avgpool(x)  # (N, 1024a, 1, 1)
        x = torch.flatten(x, 1)  # (N, 1024a)
        return self.classifier(x)  # (N, num_classes)


def _check_table(name: str, rows: object) -> None:
    if not isinstance(rows, (list, tuple)) or len(rows) == 0:
        raise ValueError(f"{name} must be a non-empty list of (channels, stride) rows, got {rows!r}")
    for i, row in enumerate(rows):
        if (
            not isinstance(row, (list, tuple))
            or len(row) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in row)
        ):
            raise ValueError(f"{name}[{i}] must be 2 positive ints (channels, stride), got {row!r}")




# --- builders ------------------------------------------------------------------------------


def mobilenet_v1(
    *, alpha: float = 1.0, num_classes: int = 1000, dropout: float = 0.0, pool: str = "global", act: str = "relu"
) -> MobileNetV1:
    """1.0 MobileNet-224 (Table 1); ``alpha`` is the width multiplier of Section 3.3, ``pool``
    the final pool (``"global"`` or ``"avg7"``) and ``act`` the activation (``"relu"`` or ``"relu6"``):
    see ``MobileNetV1``."""
    return MobileNetV1(alpha=alpha, num_classes=num_classes, dropout=dropout, pool=pool, act=act)


def mobilenet_v1_075(
    *, num_classes: int = 1000, dropout: float = 0.0, pool: str = "global", act: str = "relu"
) -> MobileNetV1:
    """0.75 MobileNet-224 (Table 6); ``pool``, ``act``: see ``MobileNetV1``."""
    return MobileNetV1(alpha=0.75, num_classes=num_classes, dropout=dropout, pool=pool, act=act)


def mobilenet_v1_050(
    *, num_classes: int = 1000, dropout: float = 0.0, pool: str = "global", act: str = "relu"
) -> MobileNetV1:
    """0.5 MobileNet-224 (Table 6); ``pool``, ``act``: see ``MobileNetV1``."""
    return MobileNetV1(alpha=0.5, num_classes=num_classes, dropout=dropout, pool=pool, act=act)


def mobilenet_v1_025(
    *, num_classes: int = 1000, dropout: float = 0.0, pool: str = "global", act: str = "relu"
) -> MobileNetV1:
    """0.25 MobileNet-224 (Table 6); ``pool``, ``act``: see ``MobileNetV1``."""
    return MobileNetV1(alpha=0.25, num_classes=num_classes, dropout=dropout, pool=pool, act=act)


# --- specs ---------------------------------------------------------------------------------

_INIT = InitScheme(
    conv="kaiming_normal_fan_out",
    linear="normal_0.01",
    authority="convention",
    source=(
        "convention: the paper states no initialisation. The builder draws torchvision's MobileNet v2 "
        "scheme (torchvision/models/mobilenetv2.py MobileNetV2.__init__: kaiming_normal_ fan_out convs, "
        "N(0, 0.01) linear, zero biases, BN 1/0) through _blocks.init_fan_out_normal_; the TF-slim "
        "code (research/slim/nets/mobilenet_v1.py mobilenet_v1_arg_scope) draws truncated normal, stddev 0.09"
    ),
)
# Table 1's "Avg Pool / s1, Pool 7x7, 7x7x1024" against Table 7's 192 / 160 / 128 px inputs.
_OPEN_POINT = (
    "Howard et al. 2017 Table 1 prints 'Avg Pool / s1, Pool 7x7' on the 7x7x1024 map of a 224 input; "
    "Table 7 (Section 3.4) runs the same network at 192, 160, 128 px, whose 6x6, 5x5, 4x4 maps a "
    "7x7 pool cannot pool"
)
# The paper's text names ReLU; the authors' released code clips it at 6.
_ACT_POINT = (
    "Howard et al. 2017 Fig. 3 names ReLU after every BN; the authors' TF-slim release "
    "(research/slim/nets/mobilenet_v1.py) applies ReLU6"
)
_READINGS = (
    Reading(
        name="global_pool",
        kwargs=MappingProxyType({"pool": "global"}),
        source=(
            "Howard et al. 2017 Section 3.2: 'a final average pooling reduces the spatial resolution "
            "to 1 before the fully connected layer', and Table 7; TF-slim research/slim/nets/mobilenet_v1.py "
            "mobilenet_v1() pools with a 7x7 kernel reduced to the map (_reduced_kernel_size_for_small_input), "
            "i.e. over the whole map at 224 px and below"
        ),
        note=f"{_OPEN_POINT}; the default build: AdaptiveAvgPool2d(1), any input size",
        point="final pool",
    ),
    Reading(
        name="avg_pool_7x7",
        kwargs=MappingProxyType({"pool": "avg7"}),
        source="Howard et al. 2017 Table 1, 'Avg Pool / s1, Pool 7x7', read literally: AvgPool2d(7, stride=1)",
        note=f"{_OPEN_POINT}; the same function at 224 px; at 192 px and below the pool has no output",
        point="final pool",
    ),
    Reading(
        name="relu",
        kwargs=MappingProxyType({"act": "relu"}),
        source="Howard et al. 2017 Fig. 3 and Section 3.1: every layer is followed by batchnorm and a ReLU",
        note=f"{_ACT_POINT}; the default build: nn.ReLU",
        point="activation",
    ),
    Reading(
        name="relu6",
        kwargs=MappingProxyType({"act": "relu6"}),
        source=(
            "TF-slim research/slim/nets/mobilenet_v1.py mobilenet_v1_base (the authors' release): "
            "every conv's activation_fn is tf.nn.relu6; timm mobilenetv1_100 builds it so"
        ),
        note=f"{_ACT_POINT}; min(max(x, 0), 6): the same parameters, another function once an activation passes 6",
        point="activation",
    ),
)
_DEVIATIONS = (
    "Table 1 prints 'Conv dw / s2' on the last depthwise conv, but its input-size column "
    "(7x7x1024 before and after) and 'Avg Pool 7x7' need stride 1, as TF-slim's "
    "research/slim/nets/mobilenet_v1.py (the last DepthSepConv of its conv defs has stride 1); "
    "we follow the sizes (stride 1)",
    "init: the paper states none (authority 'convention'); the TF-slim code draws conv weights from a "
    "truncated normal (stddev 0.09), we use torchvision MobileNet v2's kaiming_normal fan_out for "
    "convs, N(0, 0.01) for the FC, BN 1/0",
    "BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1); TF-slim used eps 1e-3, decay 0.9997",
    "padding: PyTorch pads 1 on every side; TF 'SAME' pads stride-2 convs on even inputs only at "
    "the bottom/right, so output sizes agree but the sampling grid is offset by one pixel",
    "the classifier is [Dropout(p), Linear]; the paper names no dropout, so p defaults to 0 "
    "(TF-slim used keep_prob 0.999)",
    "width rounding: max(1, int(c * alpha)); TF-slim clamps at min_depth 8 (differs only for alpha < 0.25)",
)

_PARAMS_NOTE = "exact count with BN affine and the FC is {exact:,}, which the paper rounds to one decimal"
_MACS_NOTE = "mult-adds of conv + FC (no BN); paper rounds to 1M"

# alpha -> (variant name, builder, Table 6/7 params, Table 6/7 mult-adds at 224, exact params)
_VARIANTS = (
    ("mobilenet_v1", mobilenet_v1, 1.0, 4.2e6, 569e6, 4_231_976),
    ("mobilenet_v1_075", mobilenet_v1_075, 0.75, 2.6e6, 325e6, 2_585_560),
    ("mobilenet_v1_050", mobilenet_v1_050, 0.5, 1.3e6, 149e6, 1_331_592),
    ("mobilenet_v1_025", mobilenet_v1_025, 0.25, 0.5e6, 41e6, 470_072),
)
# Table 7: 1.0 MobileNet at reduced resolutions, mult-adds.
_RESOLUTIONS = (
    (192, 418e6, "Howard et al. 2017, Table 7 (1.0 MobileNet-192): 418M; " + _MACS_NOTE),
    (
        160,
        290e6,
        "Howard et al. 2017, Table 7 (1.0 MobileNet-160): 290M; the exact 290,675,200 is "
        "truncated there, not rounded (still within 1M)",
    ),
    (128, 186e6, "Howard et al. 2017, Table 7 (1.0 MobileNet-128): 186M; " + _MACS_NOTE),
)


def _expected(alpha: float, params: float, macs: float, exact: int) -> dict[str, Expected]:
    table = "Table 7" if alpha == 1.0 else "Table 6"
    out = {
        "params": Expected(
            params,
            source=f"Howard et al. 2017, {table} ({alpha:g} MobileNet-224): {params / 1e6:g}M; "
            + _PARAMS_NOTE.format(exact=exact),
            abs_tol=0.05e6,
        ),
        "macs": Expected(
            macs,
            source=f"Howard et al. 2017, {table} ({alpha:g} MobileNet-224): {macs / 1e6:g}M; " + _MACS_NOTE,
            abs_tol=1e6,
            input_size=(3, 224, 224),
        ),
    }
    if alpha == 1.0:
        for size, value, source in _RESOLUTIONS:
            out[f"macs@{size}"] = Expected(value, source=source, abs_tol=1e6, input_size=(3, size, size))
    return out


for _name, _builder, _alpha, _params, _macs, _exact in _VARIANTS:
    register_model(
        ArchSpec(
            name=_name,
            family="mobilenet_v1",
            builder=_builder,
            paper="Howard et al. 2017, MobileNets, Tables 1, 6, 7",
            torchvision=None,
            input_size=(3, 224, 224),
            init=_INIT,
            expected=_expected(_alpha, _params, _macs, _exact),
            config={
                "alpha": _alpha,
                "stem": STEM,
                "blocks": BLOCKS,
                "num_classes": 1000,
            },
            builder_kwargs={},
            deviations=_DEVIATIONS,
            readings=_READINGS,  # the final pool (global or Table 1's 7x7) x the activation (ReLU or ReLU6)
        )
    )
