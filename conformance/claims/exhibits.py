"""Exhibits: the tutorial's own models and the papers' hand-arithmetic modules, built here.

These are *not* reference architectures (they stay outside the ``cnn_models`` registry): they
are what the claims in ``catalogue`` measure. Each comes with its closed form, written with
``conformance.formulas.layers.Tracer`` from the same hyper-parameters, never from the module.

Sources (facts only; the code is ours):

* the tutorial's VGG class, its ``Inception(in, ch1x1, ch3x3, ch5x5, pool_proj)`` and its
  MobileNet (``Block`` modules calling ``F.relu``), rebuilt from the facts of its code so that
  they behave as its code does, down to the torchsummary tables it prints (its ResNets are
  torchvision's, as it says, and are built from torchvision);
* Szegedy et al. 2015 (GoogLeNet), Fig. 2: the naive module (1x1, 3x3, 5x5 convs and a 3x3
  max pool, concatenated) and the module with 1x1 reductions;
* Howard et al. 2017 (MobileNets), Fig. 2 and Eq. 5 (depthwise separable vs standard conv),
  Table 4 ("Conv MobileNet": every depthwise separable block a full 3x3 conv);
* Simonyan & Zisserman 2015 (VGG), Table 1 configuration C (1x1 convs in the last three
  stages), Section 2.3 (three stacked 3x3 convs vs one 7x7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnn_models.mobilenet_v1 import BLOCKS as MOBILENET_BLOCKS
from cnn_models.vgg import CFGS

from ..formulas.googlenet import inception as inception_form
from ..formulas.layers import Plan, Tracer

__all__ = [
    "PAPER_MOBILENET_STEM",
    "TUTORIAL_MOBILENET_STEM",
    "VGG_C",
    "VGG_D",
    "Block",
    "ConvMobileNet",
    "InceptionModule",
    "TutorialInception",
    "TutorialMobileNet",
    "TutorialVGG",
    "conv_mobilenet_plan",
    "conv_stack",
    "separable_pair",
    "tutorial_inception_plan",
    "tutorial_mobilenet_plan",
    "vgg_c_features",
    "vgg_c_plan",
]


VGG_D = CFGS["D"]  # Simonyan & Zisserman 2015, Table 1, configuration D (VGG16)


# --- the tutorial's VGG -----------------------------------------------------------------------


class TutorialVGG(nn.Module):
    """The tutorial's VGG class: configuration D (``cnn_models.vgg.CFGS["D"]``) as ``features``
    (3x3 convs, padding 1, each followed by ``ReLU(inplace=True)``; 2x2 max pools of stride 2),
    ``avgpool = AdaptiveAvgPool2d((7, 7))``, ``classifier`` Linear(512*7*7, 4096), ReLU,
    Dropout, Linear(4096, 4096), ReLU, Dropout, Linear(4096, n). PyTorch's default init.
    """

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for entry in VGG_D:
            if entry == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # (N, c, H/2, W/2)
            else:
                layers += [nn.Conv2d(c, int(entry), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c = int(entry)
        self.features = nn.Sequential(*layers)  # (N, 512, 7, 7) at 224 in
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))  # (N, n_classes)


# --- the tutorial's Inception class ---------------------------------------------------------

def _conv_relu(c_in: int, c_out: int, kernel: int, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.ReLU(inplace=True)]


class TutorialInception(nn.Module):
    """The tutorial's module: every reduction is ``ch1x1`` wide and the "5x5" branch is 3x3.

    branch1: 1x1 in->ch1x1; branch2: 1x1 in->ch1x1, 3x3 ch1x1->ch3x3; branch3: 1x1
    in->ch1x1, 3x3 ch1x1->ch5x5; branch4: 3x3/1 max pool, 1x1 in->pool_proj; ReLU after every
    conv; outputs concatenated (``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_relu(in_channels, ch1x1, 1))
        self.branch2 = nn.Sequential(*_conv_relu(in_channels, ch1x1, 1), *_conv_relu(ch1x1, ch3x3, 3, 1))
        self.branch3 = nn.Sequential(*_conv_relu(in_channels, ch1x1, 1), *_conv_relu(ch1x1, ch5x5, 3, 1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *_conv_relu(in_channels, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


def tutorial_inception_plan(args: Sequence[int], size: int = 28) -> Plan:
    """Closed form: the paper's module formula with both reductions set to ``ch1x1`` and a 3x3 branch 3."""
    c_in, ch1x1, ch3x3, ch5x5, pool_proj = args
    t = Tracer((c_in, size, size))
    inception_form(t, "", (ch1x1, ch1x1, ch3x3, ch1x1, ch5x5, pool_proj), branch3_kernel=3, batch_norm=False)
    t.plan.out_shape = t.shape
    return t.plan


class InceptionModule(nn.Module):
    """GoogLeNet Fig. 2 with bias-free convs (the hand arithmetic counts weights only).

    ``reduce=None``: the naive module (a) -- 1x1, 3x3 and 5x5 convs on the input and a 3x3/1
    max pool whose output passes through. ``reduce=r``: module (b) -- 1x1 reductions to ``r``
    before the 3x3 and 5x5 convs and a 1x1 projection after the pool, each to ``width``.
    """

    def __init__(self, in_channels: int, width: int, reduce: int | None = None) -> None:
        super().__init__()
        conv = nn.Conv2d
        self.b1 = conv(in_channels, width, 1, bias=False)
        self.b3: nn.Module
        self.b5: nn.Module
        self.pool: nn.Module
        if reduce is None:
            self.b3 = conv(in_channels, width, 3, padding=1, bias=False)
            self.b5 = conv(in_channels, width, 5, padding=2, bias=False)
            self.pool = nn.MaxPool2d(3, stride=1, padding=1)  # passes in_channels through
        else:
            self.b3 = nn.Sequential(conv(in_channels, reduce, 1, bias=False),
                                    conv(reduce, width, 3, padding=1, bias=False))
            self.b5 = nn.Sequential(conv(in_channels, reduce, 1, bias=False),
                                    conv(reduce, width, 5, padding=2, bias=False))
            self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv(in_channels, width, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)  # (N, sum of branches, H, W)


# --- stacks and the depthwise separable pair -------------------------------------------------


def conv_stack(channels: Sequence[int], kernel: int, *, padding: int = 0) -> nn.Sequential:
    """Bias-free ``kernel x kernel`` convs chained through ``channels`` (c0 -> c1 -> ...)."""
    return nn.Sequential(*(nn.Conv2d(a, b, kernel, padding=padding, bias=False)
                           for a, b in zip(channels, channels[1:], strict=False)))


def separable_pair(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Howard et al. Fig. 2(b)+(c): depthwise ``kernel`` conv (groups = c_in), then 1x1 pointwise."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
    )


# --- the tutorial's MobileNet ---------------------------------------------------------------

# (stride, padding) of the tutorial's stem Conv2d(3, 32, 3): stride 1, no padding (as the tutorial gives it);
# the paper's Table 1 stem is "Conv / s2" (PyTorch: stride 2, padding 1).
TUTORIAL_MOBILENET_STEM: tuple[int, int] = (1, 0)
PAPER_MOBILENET_STEM: tuple[int, int] = (2, 1)


class Block(nn.Module):
    """The tutorial's depthwise separable block: depthwise 3x3 conv (stride ``stride``, pad 1,
    groups = ``in_planes``) + BN, pointwise 1x1 conv + BN, each followed by ``F.relu``.

    The ReLUs are functions, not modules, so torchsummary prints no ReLU row for them and its
    forward/backward size counts four tensors per block plus the block's own output row.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, in_planes, 3, stride, 1, groups=in_planes, bias=False)  # depthwise
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv2 = nn.Conv2d(in_planes, out_planes, 1, 1, 0, bias=False)  # pointwise
        self.bn2 = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, in_planes, H/s, W/s)
        return F.relu(self.bn2(self.conv2(out)))  # (N, out_planes, H/s, W/s)


class TutorialMobileNet(nn.Module):
    """The tutorial's MobileNet as it behaves: the same modules, in the same order, under the
    same names (``conv1``, ``bn1``, ``layers.<k>`` of ``Block``, ``avgpool``, ``linear``), with
    ``F.relu`` after the stem and inside each block.

    stem Conv2d(3, 32, 3, stride ``stem[0]``, padding ``stem[1]``, no bias) + BN; the 13 blocks of
    ``cnn_models.mobilenet_v1.BLOCKS`` (Howard et al. 2017 Table 1's widths and strides, the
    tutorial's ``cfg``); head ``"tutorial"``: AvgPool2d(2), flatten, Linear(7*7*1024, n) (which
    needs the 14x14 last maps of a 224 input); ``"global"``: a global average pool and
    Linear(1024, n). ``stem=PAPER_MOBILENET_STEM, head="global"`` undoes both departures from
    the paper.
    """

    def __init__(self, *, num_classes: int = 1000, stem: tuple[int, int] = TUTORIAL_MOBILENET_STEM,
                 head: str = "tutorial") -> None:
        super().__init__()
        if head not in ("tutorial", "global"):
            raise ValueError(f"head must be 'tutorial' or 'global', got {head!r}")
        self.conv1 = nn.Conv2d(3, 32, 3, stride=stem[0], padding=stem[1], bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks: list[nn.Module] = []
        c = 32
        for out, stride in MOBILENET_BLOCKS:
            blocks.append(Block(c, out, stride))
            c = out
        self.layers = nn.Sequential(*blocks)
        if head == "tutorial":
            self.avgpool: nn.Module = nn.AvgPool2d(2)
            self.linear = nn.Linear(7 * 7 * c, num_classes)
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.linear = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, 32, 222, 222) at 224 in, tutorial stem
        out = self.avgpool(self.layers(out))  # (N, 1024, 7, 7): 14x14 maps halved
        return self.linear(out.view(out.size(0), -1))  # (N, num_classes)


def _trace_mobilenet(t: Tracer, stem: tuple[int, int], blocks: Sequence[tuple[int, int]], separable: bool) -> int:
    t.conv("stem", 32, 3, stem[0], stem[1], bias=False).bn("stem.bn")
    c = 32
    for k, (out, stride) in enumerate(blocks, start=1):
        if separable:
            t.conv(f"block{k}.dw", c, 3, stride, 1, groups=c, bias=False).bn(f"block{k}.dw.bn")
            t.conv(f"block{k}.pw", out, 1, bias=False).bn(f"block{k}.pw.bn")
        else:
            t.conv(f"block{k}.conv", out, 3, stride, 1, bias=False).bn(f"block{k}.bn")
        c = out
    return c


def tutorial_mobilenet_plan(
    input_size: tuple[int, int, int] = (3, 224, 224),
    *,
    num_classes: int = 1000,
    stem: tuple[int, int] = TUTORIAL_MOBILENET_STEM,
    head: str = "tutorial",
) -> Plan:
    """Closed form of ``TutorialMobileNet`` (rows: stem, block<k>.dw/pw, pool, fc)."""
    t = Tracer(input_size)
    c = _trace_mobilenet(t, stem, MOBILENET_BLOCKS, separable=True)
    if head == "tutorial":
        t.avgpool("pool", 2)
        if t.shape != (c, 7, 7):
            raise ValueError(f"the tutorial's Linear(7*7*{c}, n) needs ({c}, 7, 7) maps after AvgPool2d(2), "
                             f"got {t.shape}")
    else:
        t.adaptive_avgpool("pool", 1)
    t.flatten().linear("fc", num_classes)
    return t.plan


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvMobileNet(nn.Module):
    """Howard et al. Table 4's "Conv MobileNet": each separable block a full 3x3 conv+BN+ReLU."""

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu(3, 32, 3, 2, 1)]  # (N, 32, 112, 112)
        c = 32
        for out, stride in MOBILENET_BLOCKS:
            layers.append(_conv_bn_relu(c, out, 3, stride, 1))  # (N, out, H/s, W/s)
            c = out
        self.features = nn.Sequential(*layers)  # (N, 1024, 7, 7)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))  # (N, num_classes)


def conv_mobilenet_plan(input_size: tuple[int, int, int] = (3, 224, 224), *, num_classes: int = 1000) -> Plan:
    t = Tracer(input_size)
    _trace_mobilenet(t, (2, 1), MOBILENET_BLOCKS, separable=False)
    t.adaptive_avgpool("pool", 1).flatten().linear("fc", num_classes)
    return t.plan


# --- VGG configuration C (1x1 convs), which the registry does not build ---------------------

# Simonyan & Zisserman 2015, Table 1, column C: (width, kernel) per conv, "M" a 2x2/2 max pool.
VGG_C: tuple[tuple[int, int] | Literal["M"], ...] = (
    (64, 3), (64, 3), "M", (128, 3), (128, 3), "M", (256, 3), (256, 3), (256, 1), "M",
    (512, 3), (512, 3), (512, 1), "M", (512, 3), (512, 3), (512, 1), "M",
)  # fmt: skip


def vgg_c_features() -> nn.Sequential:
    """Configuration C's conv stack (pad 1 for 3x3, 0 for 1x1, biased convs, ReLU), for
    ``torchvision.models.VGG(features)``, which adds the pool and the FC-4096-4096-1000 head."""
    layers: list[nn.Module] = []
    c = 3
    for entry in VGG_C:
        if isinstance(entry, str):
            layers.append(nn.MaxPool2d(2, 2))  # (N, c, H/2, W/2)
            continue
        width, kernel = entry
        layers += [nn.Conv2d(c, width, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
        c = width
    return nn.Sequential(*layers)


def vgg_c_plan(input_size: tuple[int, int, int] = (3, 224, 224), *, num_classes: int = 1000) -> Plan:
    t = Tracer(input_size)
    for i, entry in enumerate(VGG_C):
        if isinstance(entry, str):
            t.maxpool(f"pool{i}", 2, 2)
        else:
            width, kernel = entry
            t.conv(f"conv{i}", width, kernel, 1, kernel // 2, bias=True)
    t.adaptive_avgpool("avgpool", 7).flatten()
    t.linear("fc6", 4096).linear("fc7", 4096).linear("fc8", num_classes)
    return t.plan
