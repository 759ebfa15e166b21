"""GoogLeNet (Inception v1): torchvision's variant and a paper-faithful one.

Sources:

* Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842): Table 1
  (layer types, output sizes and the Inception module widths #1x1, #3x3 reduce, #3x3,
  #5x5 reduce, #5x5, pool proj), Figure 2(b) (the module: four branches concatenated along
  channels, every conv followed by ReLU), Figure 3 (LocalRespNorm after the first max pool
  and after the 3x3 stem conv), Section 5 (auxiliary classifiers: 5x5/3 average pool, 1x1
  conv to 128, FC-1024, 70 % dropout, linear; dropout 40 % before the final linear).
* torchvision ``torchvision/models/googlenet.py`` (0.29), whose layout ``googlenet`` mirrors
  key for key: ``BasicConv2d`` = conv (no bias) + BatchNorm2d(eps=0.001) + ReLU, the
  "5x5" branch built with a 3x3 kernel (a known, kept deviation: pytorch/vision issue 906),
  max pools with ``ceil_mode=True``, ``maxpool4`` 2x2 where the paper has 3x3 (same 7x7
  output), no LRN, dropout 0.2, auxiliary heads pooling adaptively to 4x4, init
  ``trunc_normal_(std=0.01, a=-2, b=2)`` for conv and linear weights (linear biases keep
  PyTorch's default), BN 1/0.
* Caffe's BVLC GoogLeNet prototxt for the LRN hyper-parameters the paper does not give
  (local_size 5, alpha 1e-4, beta 0.75, k 1; placed as ``pool1/norm1`` and ``conv2/norm2``).

Architectures are data: a ``layout`` mapping (body steps, module widths, the branch-3 kernel,
BN or bias, LRN, auxiliary taps) that both the builder and the closed form in
``conformance/formulas/googlenet.py`` read.

Forward: in eval mode, or without auxiliary heads, the logits tensor. In train mode with
``aux_logits=True`` a ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` namedtuple,
as torchvision returns (note the order: aux2 before aux1).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import check_choice, check_positive_int, check_probability
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme

__all__ = [
    "INCEPTION_WIDTHS",
    "PAPER_LAYOUT",
    "TABLE1",
    "TORCHVISION_LAYOUT",
    "BasicConv2d",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "googlenet",
    "googlenet_paper",
]

# --- architecture tables ----------------------------------------------------------------

# Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_WIDTHS: Mapping[str, tuple[int, int, int, int, int, int]] = MappingProxyType({
    "inception3a": (64, 96, 128, 16, 32, 32),  # 28x28x256
    "inception3b": (128, 128, 192, 32, 96, 64),  # 28x28x480
    "inception4a": (192, 96, 208, 16, 48, 64),  # 14x14x512
    "inception4b": (160, 112, 224, 24, 64, 64),  # 14x14x512
    "inception4c": (128, 128, 256, 24, 64, 64),  # 14x14x512
    "inception4d": (112, 144, 288, 32, 64, 64),  # 14x14x528
    "inception4e": (256, 160, 320, 32, 128, 128),  # 14x14x832
    "inception5a": (256, 160, 320, 32, 128, 128),  # 7x7x832
    "inception5b": (384, 192, 384, 48, 128, 128),  # 7x7x1024
})

# Body steps, in forward order (shapes at a 224x224 input):
#   ("conv", name, out_channels, kernel, stride, padding)  conv block (+BN) + ReLU
#   ("maxpool", name, kernel, stride)                      ceil_mode=True, no padding
#   ("lrn", name)                                          LocalResponseNorm (paper only)
#   ("inception", name)                                    widths from INCEPTION_WIDTHS
_INCEPTIONS_3 = (("inception", "inception3a"), ("inception", "inception3b"))  # (N, 480, 28, 28)
_INCEPTIONS_4 = tuple(("inception", f"inception4{c}") for c in "abcde")  # (N, 832, 14, 14)
_INCEPTIONS_5 = (("inception", "inception5a"), ("inception", "inception5b"))  # (N, 1024, 7, 7)

TORCHVISION_BODY: tuple[tuple[Any, ...], ...] = (
    ("conv", "conv1", 64, 7, 2, 3),  # (N, 64, 112, 112)
    ("maxpool", "maxpool1", 3, 2),  # (N, 64, 56, 56)
    ("conv", "conv2", 64, 1, 1, 0),  # (N, 64, 56, 56)
    ("conv", "conv3", 192, 3, 1, 1),  # (N, 192, 56, 56)
    ("maxpool", "maxpool2", 3, 2),  # (N, 192, 28, 28)
    *_INCEPTIONS_3,
    ("maxpool", "maxpool3", 3, 2),  # (N, 480, 14, 14)
    *_INCEPTIONS_4,
    ("maxpool", "maxpool4", 2, 2),  # (N, 832, 7, 7): torchvision's 2x2
    *_INCEPTIONS_5,
)

PAPER_BODY: tuple[tuple[Any, ...], ...] = (
    ("conv", "conv1", 64, 7, 2, 3),  # (N, 64, 112, 112)
    ("maxpool", "maxpool1", 3, 2),  # (N, 64, 56, 56)
    ("lrn", "lrn1"),
    ("conv", "conv2", 64, 1, 1, 0),  # (N, 64, 56, 56)
    ("conv", "conv3", 192, 3, 1, 1),  # (N, 192, 56, 56)
    ("lrn", "lrn2"),
    ("maxpool", "maxpool2", 3, 2),  # (N, 192, 28, 28)
    *_INCEPTIONS_3,
    ("maxpool", "maxpool3", 3, 2),  # (N, 480, 14, 14)
    *_INCEPTIONS_4,
    ("maxpool", "maxpool4", 3, 2),  # (N, 832, 7, 7): Table 1's 3x3/2
    *_INCEPTIONS_5,
)

TORCHVISION_LAYOUT: Mapping[str, Any] = MappingProxyType({
    "body": TORCHVISION_BODY,
    "widths": INCEPTION_WIDTHS,
    "branch3_kernel": 3,  # vision issue 906: 3x3 where the paper has 5x5
    "batch_norm": True,  # conv without bias + BatchNorm2d(eps=bn_eps); False: conv with bias
    "bn_eps": 0.001,
    "lrn": None,
    # auxiliary heads: (name, the module whose output they read, its channels)
    "aux_taps": (("aux1", "inception4a", 512), ("aux2", "inception4d", 528)),
    "aux_pool": ("adaptive", 4),  # F.adaptive_avg_pool2d(x, (4, 4))
    "aux_channels": 128,
    "aux_hidden": 1024,
    "init": "trunc_normal_0.01",  # conv + linear weights trunc_normal(0.01, -2, 2)
})

PAPER_LAYOUT: Mapping[str, Any] = MappingProxyType({
    "body": PAPER_BODY,
    "widths": INCEPTION_WIDTHS,
    "branch3_kernel": 5,
    "batch_norm": False,
    "bn_eps": 0.001,
    "lrn": (5, 1e-4, 0.75, 1.0),  # size, alpha, beta, k (Caffe BVLC GoogLeNet)
    "aux_taps": (("aux1", "inception4a", 512), ("aux2", "inception4d", 528)),
    "aux_pool": ("avg", 5, 3),  # 5x5 average pool, stride 3: 14x14 -> 4x4
    "aux_channels": 128,
    "aux_hidden": 1024,
    # the paper gives no init (DistBelief). With no BN, 0.01-std weights shrink the signal's
    # second moment 25-100x per layer; He fan_out convs + N(0, 0.01) linears, zero biases (torchvision's
    # scheme for its no-BN VGG) keep it trainable.
    "init": "kaiming_normal_fan_out",
})

# Paper Table 1's per-row "params" (in units of 1,024) and "ops" (millions of
# multiply-adds) columns, and the output sizes, for the rows the tests check. The params
# column does not follow from the widths for several modules (e.g. 4c: 463K printed,
# 497.5K computed) and the first conv prints 2.7K / 34M where a 7x7x3x64 conv has 9.4K /
# 118M: tests/test_googlenet.py records which entries hold.
TABLE1: Mapping[str, tuple[tuple[int, ...], float, float]] = MappingProxyType({
    # name: ((C, H, W) output, params (K = 1024), ops (M))
    "conv1": ((64, 112, 112), 2.7, 34),
    "maxpool1": ((64, 56, 56), 0, 0),
    "conv3": ((192, 56, 56), 112, 360),  # with conv2, the 1x1 "3x3 reduce"
    "maxpool2": ((192, 28, 28), 0, 0),
    "inception3a": ((256, 28, 28), 159, 128),
    "inception3b": ((480, 28, 28), 380, 304),
    "maxpool3": ((480, 14, 14), 0, 0),
    "inception4a": ((512, 14, 14), 364, 73),
    "inception4b": ((512, 14, 14), 437, 88),
    "inception4c": ((512, 14, 14), 463, 100),
    "inception4d": ((528, 14, 14), 580, 119),
    "inception4e": ((832, 14, 14), 840, 170),
    "maxpool4": ((832, 7, 7), 0, 0),
    "inception5a": ((832, 7, 7), 1072, 54),
    "inception5b": ((1024, 7, 7), 1388, 71),
    "avgpool": ((1024, 1, 1), 0, 0),
    "fc": ((1000,), 1000, 1),
})

_INIT_SCHEMES = ("trunc_normal_0.01", "kaiming_normal_fan_out")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
    """Train-mode output with auxiliary heads (field names and order as torchvision's)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


# --- blocks -----------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """conv -> BatchNorm2d -> ReLU (``batch_norm=True``: conv without bias), or conv (with bias) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        *,
        batch_norm: bool = True,
        bn_eps: float = 0.001,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    """Figure 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> k x k | 3x3 max pool -> 1x1, concatenated in that order.

    ``branch3_kernel`` is 5 in the paper and 3 in torchvision (vision issue 906). Output
    channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``; spatial size unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        branch3_kernel: int = 3,
        batch_norm: bool = True,
        bn_eps: float = 0.001,
    ) -> None:
        super().__init__()
        for arg, value in (("in_channels", in_channels), ("ch1x1", ch1x1), ("ch3x3red", ch3x3red),
                           ("ch3x3", ch3x3), ("ch5x5red", ch5x5red), ("ch5x5", ch5x5),
                           ("pool_proj", pool_proj)):
            check_positive_int(arg, value)
        check_choice("branch3_kernel", branch3_kernel, (3, 5))
        block = partial(BasicConv2d, batch_norm=batch_norm, bn_eps=bn_eps)
        self.branch1 = block(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            block(in_channels, ch3x3red, 1),
            block(ch3x3red, ch3x3, 3, padding=1),
        )
        self.branch3 = nn.Sequential(
            block(in_channels, ch5x5red, 1),
            block(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            block(in_channels, pool_proj, 1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)  # (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: pool to 4x4 -> 1x1 conv to 128 -> FC-1024 + ReLU -> dropout -> linear.

    ``pool`` is ``("adaptive", 4)`` (torchvision) or ``("avg", 5, 3)`` (the paper: a 5x5
    average pool of stride 3, which gives 4x4 only from the 14x14 maps of a 224 input).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        dropout: float = 0.7,
        pool: tuple[Any, ...] = ("adaptive", 4),
        channels: int = 128,
        hidden: int = 1024,
        batch_norm: bool = True,
        bn_eps: float = 0.001,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        check_probability("dropout", dropout)
        check_choice("pool", pool[0], ("adaptive", "avg"))
        self.pool = tuple(pool)
        self.conv = BasicConv2d(in_channels, channels, 1, batch_norm=batch_norm, bn_eps=bn_eps)
        self.fc1 = nn.Linear(channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool[0] == "adaptive":
            x = F.adaptive_avg_pool2d(x, (self.pool[1], self.pool[1]))  # (N, C, 4, 4)
        else:
            x = F.avg_pool2d(x, kernel_size=self.pool[1], stride=self.pool[2])  # (N, C, 4, 4) at 14x14
        x = self.conv(x)  # (N, 128, 4, 4)
        x = torch.flatten(x, 1)  # (N, 2048)
        x = F.relu(self.fc1(x), inplace=True)  # (N, 1024)
        x = self.dropout(x)
        return self.fc2(x)  # (N, num_classes)


# --- the network ------------------------------------------------------------------------


class GoogLeNet(nn.Module):
    """A GoogLeNet built from a ``layout`` (``TORCHVISION_LAYOUT`` or ``PAPER_LAYOUT``).

    Modules are registered in torchvision's order (body, ``aux1``, ``aux2``, ``avgpool``,
    ``dropout``, ``fc``), so state_dict keys come out in the same order too.
    """

    def __init__(
        self,
        layout: Mapping[str, Any] = TORCHVISION_LAYOUT,
        *,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_probability("dropout", dropout)
        check_probability("dropout_aux", dropout_aux)
        self.aux_logits = bool(aux_logits)
        self.transform_input = bool(transform_input)
        conv = {"batch_norm": layout["batch_norm"], "bn_eps": layout["bn_eps"]}
        self._body: list[str] = []
        channels = 3
        for step in layout["body"]:
            kind, name = step[0], step[1]
            module: nn.Module
            if kind == "conv":
                _, _, out, kernel, stride, padding = step
                module = BasicConv2d(channels, out, kernel, stride, padding, **conv)
                channels = out
            elif kind == "maxpool":
                module = nn.MaxPool2d(kernel_size=step[2], stride=step[3], ceil_mode=True)
            elif kind == "lrn":
                size, alpha, beta, k = layout["lrn"]
                module = nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
            elif kind == "inception":
                module = Inception(channels, *layout["widths"][name],
                                   branch3_kernel=layout["branch3_kernel"], **conv)
                channels = module.out_channels
            else:
                raise ValueError(f"layout['body']: unknown step kind {kind!r} in {step!r}")
            self.add_module(name, module)
            self._body.append(name)
        self._taps: dict[str, str] = {}
        for aux_name, after, aux_in in layout["aux_taps"]:
            self._taps[after] = aux_name
            head = (
                InceptionAux(aux_in, num_classes, dropout=dropout_aux, pool=layout["aux_pool"],
                             channels=layout["aux_channels"], hidden=layout["aux_hidden"], **conv)
                if self.aux_logits
                else None
            )
            self.add_module(aux_name, head)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)
        self.init_scheme = check_choice("layout['init']", layout["init"], _INIT_SCHEMES)
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights by ``layout["init"]``; BN weight 1, bias 0 in both schemes.

        ``"trunc_normal_0.01"`` (torchvision GoogLeNet): conv and linear weights
        trunc_normal(0, 0.01, a=-2, b=2); biases keep PyTorch's default draw.
        ``"kaiming_normal_fan_out"``: conv weights He normal (fan_out, ReLU), linear weights
        N(0, 0.01), every bias 0.
        """
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            elif self.init_scheme == "trunc_normal_0.01":
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
            else:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        # maps ImageNet-normalised input to the (x - 0.5) / 0.5 scaling the ported weights expect
        channels = [
            x[:, i : i + 1] * (std / 0.5) + (mean - 0.5) / 0.5
            for i, (mean, std) in enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True))
        ]
        return torch.cat(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = self._transform(x)
        aux: dict[str, torch.Tensor] = {}
        for name in self._body:  # shapes: see TORCHVISION_BODY / PAPER_BODY
            x = getattr(self, name)(x)
            head_name = self._taps.get(name)
            if head_name is not None and self.training:
                head = getattr(self, head_name)
                if head is not None:
                    aux[head_name] = head(x)
        x = self.avgpool(x)  # (N, 1024, 1, 1)
        x = torch.flatten(x, 1)  # (N, 1024)
        x = self.dropout(x)
        x = self.fc(x)  # (N, num_classes)
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux.get("aux2"), aux.get("aux1"))
        return x


def googlenet(
    *,
    num_classes: int = 1000,
    aux_logits: bool = False,
    transform_input: bool = False,
    init_weights: bool = True,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """torchvision's GoogLeNet (BN, 3x3 "5x5" branch); auxiliary heads off unless asked for.

    torchvision's own ``googlenet(weights=None)`` builds the heads by default; its
    ``num_params`` (6,624,904) counts the model without them, which is our default.
    """
    return GoogLeNet(TORCHVISION_LAYOUT, num_classes=num_classes, aux_logits=aux_logits,
                     transform_input=transform_input, init_weights=init_weights,
                     dropout=dropout, dropout_aux=dropout_aux)


def googlenet_paper(
    *,
    num_classes: int = 1000,
    aux_logits: bool = False,
    init_weights: bool = True,
    dropout: float = 0.4,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet as in Szegedy et al. 2015, Table 1: 5x5 branch, biased convs, no BN, LRN in the stem.

    The paper gives no initialisation; ``init_weights`` draws He fan_out convs (see
    ``PAPER_LAYOUT["init"]``).
    """
    return GoogLeNet(PAPER_LAYOUT, num_classes=num_classes, aux_logits=aux_logits,
                     transform_input=False, init_weights=init_weights,
                     dropout=dropout, dropout_aux=dropout_aux)


# --- specs ------------------------------------------------------------------------------

register_model(
    ArchSpec(
        name="googlenet",
        family="googlenet",
        builder=googlenet,
        paper="Szegedy et al. 2015, Table 1 (torchvision variant)",
        torchvision="googlenet",
        input_size=(3, 224, 224),
        init=InitScheme(
            conv="trunc_normal_0.01",
            linear="trunc_normal_0.01",
            conv_bias="zeros",  # no conv has a bias
            linear_bias="torch_default",  # torchvision re-draws linear weights only
            bn="ones_zeros",
            authority="torchvision",
            source="torchvision/models/googlenet.py GoogLeNet.__init__ (init_weights=True)",
        ),
        expected={
            "params": Expected(
                6_624_904,
                source="torchvision 0.29 GoogLeNet_Weights.IMAGENET1K_V1.meta['num_params'] (no aux heads)",
            ),
            "macs": Expected(
                1.498e9,
                source=(
                    "torchvision 0.29 GoogLeNet_Weights.IMAGENET1K_V1.meta['_ops'] (GMACs of conv+linear, 3 decimals)"
                ),
                abs_tol=0.0005e9,
                input_size=(3, 224, 224),
            ),
        },
        config=MappingProxyType({
            **TORCHVISION_LAYOUT,
            "num_classes": 1000,
            "aux_logits": False,
        }),
        builder_kwargs={"aux_logits": False},
        # torchvision's googlenet(weights=None) builds aux heads and warns about init by default
        torchvision_kwargs={"aux_logits": False, "init_weights": True},
        deviations=(
            "branch3 uses a 3x3 conv where the paper has 5x5 (torchvision, pytorch/vision issue 906)",
            "BatchNorm2d(eps=0.001) after every conv, convs without bias (torchvision; the paper predates BN)",
            "no LocalResponseNorm in the stem (paper Figure 3 has two)",
            "maxpool4 is 2x2/2 (ceil mode) where Table 1 has 3x3/2; same 7x7 output at 224",
            "dropout 0.2 before the classifier where the paper has 40 %",
            "auxiliary heads off by default; when on they pool adaptively to 4x4 (paper: 5x5 avg pool, stride 3)",
            "global average pool is AdaptiveAvgPool2d(1) (paper: 7x7/1 avg pool; identical at 224)",
        ),
    )
)

register_model(
    ArchSpec(
        name="googlenet_paper",
        family="googlenet",
        builder=googlenet_paper,
        paper="Szegedy et al. 2015, Table 1 and Figure 3",
        torchvision=None,
        input_size=(3, 224, 224),
        init=InitScheme(
            conv="kaiming_normal_fan_out",
            linear="normal_0.01",
            conv_bias="zeros",
            linear_bias="zeros",
            bn="ones_zeros",  # no BN in this model
            authority="convention",  # Szegedy et al. 2015 state no initialisation
            source="the paper gives none (DistBelief); torchvision/models/vgg.py's no-BN scheme "
            "(PAPER_LAYOUT['init'] says why)",
        ),
        expected={
            # Table 1 prints no total, and its per-row params column is inconsistent (see
            # TABLE1), so the oracle is the closed form over Table 1's widths, done by hand:
            #   stem   conv1 7*7*3*64+64 = 9,472; conv2 64*64+64 = 4,160;
            #          conv3 9*64*192+192 = 110,784
            #   modules (weights + biases, 5x5 branch): 3a 163,696; 3b 388,736; 4a 376,176;
            #          4b 449,160; 4c 510,104; 4d 605,376; 4e 868,352; 5a 1,043,456; 5b 1,444,080
            #   fc     1024*1000+1000 = 1,025,000
            "params": Expected(
                6_998_552,
                source="closed form over Szegedy et al. 2015 Table 1 widths (5x5 branch, biased convs, "
                "no BN, no aux heads), summed by hand in cnn_models/googlenet.py",
            ),
        },
        config=MappingProxyType({
            **PAPER_LAYOUT,
            "num_classes": 1000,
            "aux_logits": False,
        }),
        builder_kwargs={"aux_logits": False},
        deviations=(
            "auxiliary classifiers off by default (aux_logits=True builds the paper's two heads, "
            "which need the 14x14 maps of a 224 input)",
            "global average pool is AdaptiveAvgPool2d(1) (paper: 7x7/1 avg pool; identical at 224)",
            "max pools use ceil_mode=True (as Caffe) to reproduce Table 1's output sizes",
            "LRN hyper-parameters from Caffe's BVLC GoogLeNet (the paper gives none)",
            "initialisation: the paper gives none; He fan_out convs, N(0, 0.01) linears, zero biases",
            "no test-time cropping/ensembling (paper Section 7)",
        ),
    )
)
