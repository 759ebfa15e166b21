"""The CIFAR-10 ResNets of He et al. 2016 §4.2 and their plain counterparts.

Sources
-------
* He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv:1512.03385), §4.2 "CIFAR-10 and Analysis": a 3x3 conv with 16 filters, then three
  stages of ``2n`` 3x3 conv layers on 32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters
  (subsampling by stride-2 convs), global average pooling and a 10-way fc: ``6n + 2``
  weighted layers. Shortcuts are identity everywhere, option A (§3.3): the extra channels are
  zero-padded and the map subsampled, so residual nets have exactly the parameters of their
  plain counterparts. Table 6: n = 3, 5, 7, 9, 18 give 20, 32, 44, 56, 110 layers with
  0.27M, 0.46M, 0.66M, 0.85M and 1.7M parameters (1202 layers: 19.4M).
* §3.4: BN right after each conv and before the activation; weights initialised as in
  He et al. 2015 ("Delving Deep into Rectifiers"), Eq. (10).
* Option A's subsampling keeps every second pixel, as Facebook's ``fb.resnet.torch``
  (``models/resnet.lua``, ``shortcutType 'A'``) does. Where the zero channels go is a point
  the paper leaves open; the residual specs declare both readings (``ArchSpec.readings``),
  selected by ``option_a_pad``: ``"after"`` (the default: the input's channels first, zeros
  after, as ``fb.resnet.torch``'s ``nn.Concat(2)`` of the input and ``nn.MulConstant(0)``)
  or ``"split"`` (half the zeros before the input's channels, half after, as the PyTorch
  re-implementation ``akamaster/pytorch_resnet_cifar10`` ``resnet.py`` pads with
  ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``).

No torchvision counterpart; module names follow torchvision's ResNet (``conv1``, ``bn1``,
``layerS.B.conv1``, ``layerS.B.downsample``, ``fc``). Option B (1x1 projection + BN where
the shape changes, §3.3) is available through ``shortcut="B"`` so that the law
"plain params = residual params - shortcut params" can be tested non-trivially.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import check_choice, check_positive_int
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme, Reading

__all__ = [
    "CIFAR_DEPTHS",
    "CIFAR_WIDTHS",
    "CifarBasicBlock",
    "CifarPlainBlock",
    "CifarResNet",
    "OPTION_A_PADS",
    "OptionAPad",
    "Shortcut",
    "ShortcutA",
    "cifar_plain20",
    "cifar_plain32",
    "cifar_plain44",
    "cifar_plain56",
    "cifar_plain110",
    "cifar_resnet",
    "cifar_resnet20",
    "cifar_resnet32",
    "cifar_resnet44",
    "cifar_resnet56",
    "cifar_resnet110",
    "depth_to_n",
]

Shortcut = Literal["A", "B"]
SHORTCUTS = ("A", "B")
OptionAPad = Literal["after", "split"]
# where option A's zero channels go: all after the input's channels, or split before / after
OPTION_A_PADS = ("after", "split")
CIFAR_WIDTHS = (16, 32, 64)  # filters of the three stages (§4.2); the stem also has 16

# depth: (n, Table 6 params in millions, the paper's rounding) -- He et al. 2016 Table 6.
CIFAR_DEPTHS: Mapping[int, tuple[int, float, float]] = MappingProxyType({
    20: (3, 0.27, 0.005),
    32: (5, 0.46, 0.005),
    44: (7, 0.66, 0.005),
    56: (9, 0.85, 0.005),
    110: (18, 1.7, 0.05),
})  # fmt: skip


def depth_to_n(depth: int) -> int:
    """``n`` of a ``6n + 2``-layer CIFAR net; ValueError naming ``depth`` otherwise."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}")
    return (depth - 2) // 6


class ShortcutA(nn.Module):
    """Option A identity shortcut: keep every ``stride``-th pixel, zero-pad the extra channels.

    ``(N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s))``. With ``pad="after"`` channels
    ``[0, C_in)`` are the input and ``[C_in, C_out)`` zero; with ``pad="split"`` the
    ``C_out - C_in`` zero channels are split, ``(C_out - C_in) // 2`` before the input's and
    the rest after (``planes // 4`` on each side when the width doubles). Parameter-free.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, pad: OptionAPad = "after") -> None:
        super().__init__()
        check_choice("pad", pad, OPTION_A_PADS)
        if out_channels < in_channels:
            raise ValueError(
                f"out_channels: option A can only pad channels, got {in_channels} -> {out_channels}"
            )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (N, C_in, H/s, W/s)
        extra = self.out_channels - self.in_channels
        if not extra:
            return x
        before = extra // 2 if self.pad == "split" else 0
        return F.pad(x, (0, 0, 0, 0, before, extra - before))  # (N, C_out, H/s, W/s)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, pad={self.pad!r}"


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class CifarPlainBlock(nn.Module):
    """Two 3x3 conv-BN layers, ReLU after each, no shortcut: ``relu(bn2(conv2(relu(bn1(conv1 x)))))``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, H/stride, W/stride)
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x))


class CifarBasicBlock(CifarPlainBlock):
    """The plain block plus a shortcut: ``relu(branch(x) + s(x))`` (He et al. 2016 Fig. 2).

    ``s`` is the identity where the shape is kept, else ``downsample``: ``ShortcutA``
    (zero-padding where ``option_a_pad`` says, parameter-free) or, with ``shortcut="B"``,
    a 1x1 stride-s conv + BN (``option_a_pad`` is then only validated).
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: Shortcut = "A",
        option_a_pad: OptionAPad = "after",
    ) -> None:
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_choice("option_a_pad", option_a_pad, OPTION_A_PADS)
        super().__init__(inplanes, planes, stride)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            if shortcut == "A":
                self.downsample = ShortcutA(inplanes, planes, stride, pad=option_a_pad)
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)  # (N, planes, H/stride, W/stride)
        shortcut = x if self.downsample is None else self.downsample(x)  # same shape
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """``6n + 2`` layers: stem conv, 3 stages of ``n`` two-conv blocks, pool, fc (§4.2).

    ``option_a_pad`` places option A's zero channels (``"after"`` or ``"split"``, see
    ``ShortcutA``); a plain net, or one with ``shortcut="B"``, only validates it.
    """

    def __init__(
        self,
        n: int,
        *,
        plain: bool = False,
        shortcut: Shortcut = "A",
        option_a_pad: OptionAPad = "after",
        num_classes: int = 10,
        widths: tuple[int, int, int] = CIFAR_WIDTHS,
    ) -> None:
        super().__init__()
        check_positive_int("n", n)
        check_positive_int("num_classes", num_classes)
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_choice("option_a_pad", option_a_pad, OPTION_A_PADS)
        if not isinstance(plain, bool):
            raise ValueError(f"plain must be a bool, got {plain!r}")
        if not isinstance(widths, tuple) or len(widths) != 3:
            raise ValueError(f"widths must be 3 positive ints, got {widths!r}")
        for i, w in enumerate(widths):
            check_positive_int(f"widths[{i}]", w)

        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Sequential] = []
        c_in = widths[0]
        for s, width in enumerate(widths):
            blocks: list[nn.Module] = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(
                    CifarPlainBlock(c_in, width, stride)
                    if plain
                    else CifarBasicBlock(c_in, width, stride, shortcut=shortcut, option_a_pad=option_a_pad)
                )
                c_in = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[2], num_classes)

        # He et al. 2015 Eq. (10): N(0, 2 / fan_in), fan_in = 9 C_in (see _INIT's source)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32)
        x = self.layer1(x)  # (N, 16, 32, 32)
        x = self.layer2(x)  # (N, 32, 16, 16)
        x = self.layer3(x)  # (N, 64, 8, 8)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 64)
        return self.fc(x)  # (N, num_classes)


# --- builders ---------------------------------------------------------------------------


def cifar_resnet(
    *,
    depth: int,
    plain: bool = False,
    shortcut: Shortcut = "A",
    option_a_pad: OptionAPad = "after",
    num_classes: int = 10,
) -> CifarResNet:
    """A ``depth = 6n + 2`` CIFAR net; ``plain=True`` drops the shortcuts (``shortcut`` and
    ``option_a_pad`` are then only validated: a plain net has none)."""
    return CifarResNet(
        depth_to_n(depth), plain=plain, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes
    )


def cifar_resnet20(
    *, shortcut: Shortcut = "A", option_a_pad: OptionAPad = "after", num_classes: int = 10
) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (n = 3; Table 6: 0.27M); ``option_a_pad``: see ``ShortcutA``."""
    return cifar_resnet(depth=20, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes)


def cifar_resnet32(
    *, shortcut: Shortcut = "A", option_a_pad: OptionAPad = "after", num_classes: int = 10
) -> CifarResNet:
    """ResNet-32 for CIFAR-10 (n = 5; Table 6: 0.46M); ``option_a_pad``: see ``ShortcutA``."""
    return cifar_resnet(depth=32, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes)


def cifar_resnet44(
    *, shortcut: Shortcut = "A", option_a_pad: OptionAPad = "after", num_classes: int = 10
) -> CifarResNet:
    """ResNet-44 for CIFAR-10 (n = 7; Table 6: 0.66M); ``option_a_pad``: see ``ShortcutA``."""
    return cifar_resnet(depth=44, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes)


def cifar_resnet56(
    *, shortcut: Shortcut = "A", option_a_pad: OptionAPad = "after", num_classes: int = 10
) -> CifarResNet:
    """ResNet-56 for CIFAR-10 (n = 9; Table 6: 0.85M); ``option_a_pad``: see ``ShortcutA``."""
    return cifar_resnet(depth=56, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes)


def cifar_resnet110(
    *, shortcut: Shortcut = "A", option_a_pad: OptionAPad = "after", num_classes: int = 10
) -> CifarResNet:
    """ResNet-110 for CIFAR-10 (n = 18; Table 6: 1.7M); ``option_a_pad``: see ``ShortcutA``."""
    return cifar_resnet(depth=110, shortcut=shortcut, option_a_pad=option_a_pad, num_classes=num_classes)


def cifar_plain20(*, num_classes: int = 10) -> CifarResNet:
    """Plain-20 (§4.2, Fig. 6 left): ResNet-20 without shortcuts."""
    return cifar_resnet(depth=20, plain=True, num_classes=num_classes)


def cifar_plain32(*, num_classes: int = 10) -> CifarResNet:
    """Plain-32 (§4.2, Fig. 6 left): ResNet-32 without shortcuts."""
    return cifar_resnet(depth=32, plain=True, num_classes=num_classes)


def cifar_plain44(*, num_classes: int = 10) -> CifarResNet:
    """Plain-44 (§4.2, Fig. 6 left): ResNet-44 without shortcuts."""
    return cifar_resnet(depth=44, plain=True, num_classes=num_classes)


def cifar_plain56(*, num_classes: int = 10) -> CifarResNet:
    """Plain-56 (§4.2, Fig. 6 left): ResNet-56 without shortcuts."""
    return cifar_resnet(depth=56, plain=True, num_classes=num_classes)


def cifar_plain110(*, num_classes: int = 10) -> CifarResNet:
    """Plain-110 (§4.2, Fig. 6 right): ResNet-110 without shortcuts."""
    return cifar_resnet(depth=110, plain=True, num_classes=num_classes)


# --- specs ------------------------------------------------------------------------------

_BUILDERS: Mapping[tuple[str, int], Callable[..., CifarResNet]] = MappingProxyType({
    ("resnet", 20): cifar_resnet20, ("resnet", 32): cifar_resnet32, ("resnet", 44): cifar_resnet44,
    ("resnet", 56): cifar_resnet56, ("resnet", 110): cifar_resnet110,
    ("plain", 20): cifar_plain20, ("plain", 32): cifar_plain32, ("plain", 44): cifar_plain44,
    ("plain", 56): cifar_plain56, ("plain", 110): cifar_plain110,
})  # fmt: skip

_INIT = InitScheme(
    conv="kaiming_normal_fan_in",
    linear="torch_default",
    linear_bias="torch_default",
    bn="ones_zeros",
    authority="paper",  # the convs; the fc: linear_authority
    linear_authority="convention",
    source=(
        "convs (paper): He et al. 2016 §3.4 'initialize the weights as in [13]' and §4.2 'adopt the "
        "weight initialization in [13]', [13] = He et al. 2015, whose Eq. (10) is the forward "
        "condition Var[w] = 2 / (k^2 C_in) (fan_in; also the default of Caffe's MSRAFiller). "
        "He et al. 2015 §2.2 finds Eq. (14) (fan_out) equally sufficient; with 3x3 convs of constant "
        "width the two differ only in the three widening convs. fc (convention): the paper does not "
        "describe the classifier's init; it keeps nn.Linear's default. BN gamma 1 / beta 0"
    ),
)

# He et al. 2016 §3.3 (A) / §4.2 (option A): "zero-padding shortcuts are used for increasing
# dimensions"; the paper does not say where the zero channels go. Residual nets only: a plain
# net has no shortcut.
_OPEN_POINT = "He et al. 2016 §3.3 (A), §4.2: option A zero-pads the extra channels without saying where"
_OPTION_A_READINGS = (
    Reading(
        name="zeros_after",
        kwargs=MappingProxyType({"option_a_pad": "after"}),
        source=(
            "fb.resnet.torch models/resnet.lua shortcut() (shortcutType 'A'): "
            "nn.SpatialAveragePooling(1, 1, stride, stride), then nn.Concat(2) of nn.Identity() and "
            "nn.MulConstant(0): the input's channels first, the zero channels after"
        ),
        point="option A zero channels",
        note=f"{_OPEN_POINT}; the default build: channels [0, C_in) carry the input",
    ),
    Reading(
        name="zeros_split",
        kwargs=MappingProxyType({"option_a_pad": "split"}),
        source=(
            "akamaster/pytorch_resnet_cifar10 resnet.py BasicBlock (option 'A'): "
            "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)): planes // 4 zero "
            "channels before the input's and planes // 4 after"
        ),
        point="option A zero channels",
        note=f"{_OPEN_POINT}; same parameters and state_dict, the input lands on channels "
        "[(C_out - C_in) // 2, ...) of the sum, so the function differs",
    ),
)


def _register_all() -> None:
    for (kind, depth), builder in _BUILDERS.items():
        n, millions, rounding = CIFAR_DEPTHS[depth]
        plain = kind == "plain"
        source = f"He et al. 2016 Table 6 (ResNet-{depth}: {millions}M, rounded to +-{rounding}M)"
        if plain:
            source += "; §4.2: option A residual nets have exactly the parameters of the plain ones"
        register_model(
            ArchSpec(
                name=f"cifar_{kind}{depth}",
                family="cifar_resnet",
                builder=builder,
                paper=f"He et al. 2016, Deep Residual Learning, §4.2 and Table 6 ({kind}-{depth}, n = {n})",
                torchvision=None,
                input_size=(3, 32, 32),
                init=_INIT,
                expected={"params": Expected(millions * 1e6, source=source, abs_tol=rounding * 1e6)},
                config=MappingProxyType({
                    "depth": depth, "n": n, "plain": plain, "shortcut": "A",
                    "widths": CIFAR_WIDTHS, "num_classes": 10,
                }),  # fmt: skip
                num_classes=10,
                deviations=("AdaptiveAvgPool2d(1) for the global average pool (8x8 at 32x32 input)",),
                # where option A's zero channels go (see _OPTION_A_READINGS); plain nets have no shortcut
                readings=() if plain else _OPTION_A_READINGS,
            )
        )


_register_all()

