"""Inception v3, torchvision's layout.

Sources:

* Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016
  (arXiv:1512.00567): Table 1 (the outline: a 299x299 input, a conv stem, 3 modules of
  Figure 5 at 35x35, a grid reduction, 5 modules of Figure 6 (n = 7: 1x7 / 7x1
  factorisation) at 17x17, a reduction, 2 modules of Figure 7 (expanded 1x3 / 3x1 filter
  banks) at 8x8, global pooling, linear), Section 4 (one auxiliary classifier on the 17x17
  grid), Section 1 (about 5 billion multiply-adds, fewer than 25 million parameters).
* torchvision ``torchvision/models/inception.py`` (0.29), mirrored key for key: module names
  ``Conv2d_1a_3x3`` ... ``Mixed_7c``, ``AuxLogits`` (registered between ``Mixed_6e`` and
  ``Mixed_7a``), ``avgpool``, ``dropout`` (p = 0.5, applied before flattening), ``fc``;
  every conv a ``BasicConv2d`` (no bias, BatchNorm2d(eps=0.001), ReLU); pools in the
  modules are functional (``avg_pool2d(3, 1, 1)`` with padding counted, ``max_pool2d(3, 2)``).
  The widths are torchvision's (those of the TF-slim checkpoint it ports), not a reading of
  the paper's figures. Init: conv and linear weights ``trunc_normal_(std, a=-2, b=2)`` with
  std 0.1, except ``AuxLogits.fc`` (0.001); torchvision also tags ``AuxLogits.conv1`` with
  0.01, but on the ``BasicConv2d`` wrapper, which its init loop never reads, so that conv is
  drawn with 0.1 too: we reproduce what torchvision does, not what it tags. Linear biases
  keep PyTorch's default draw; BN 1/0.

Each mixed module is a table of branches (``MIXED``): a branch is a chain of ops, each
``("conv", name, out, kernel, stride, padding)``, ``("avgpool", k, s, p)``,
``("maxpool", k, s)`` or ``("split", conv_a, conv_b)`` (two convs on the same input,
concatenated). Branches are concatenated in table order. The builder and the closed form in
``conformance/formulas/inception_v3.py`` read the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import check_positive_int, check_probability
from ._registry import register_model
from ._spec import ArchSpec, Expected, InitScheme
from .googlenet import BasicConv2d

__all__ = [
    "AUX",
    "BLOCKS",
    "MIXED",
    "STEM",
    "Inception3",
    "InceptionA",
    "InceptionAux",
    "InceptionB",
    "InceptionBlock",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionOutputs",
    "inception_v3",
    "inception_a",
    "inception_b",
    "inception_c",
    "inception_d",
    "inception_e",
]

Op = tuple[Any, ...]
Branch = tuple[Op, ...]

# --- module tables ------------------------------------------------------------------------


def _conv(name: str, out: int, kernel: Any = 1, stride: int = 1, padding: Any = 0) -> Op:
    return ("conv", name, out, kernel, stride, padding)


def inception_a(pool_features: int) -> tuple[Branch, ...]:
    """Figure 5 (35x35): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""
    check_positive_int("pool_features", pool_features)
    return (
        (_conv("branch1x1", 64),),
        (_conv("branch5x5_1", 48), _conv("branch5x5_2", 64, 5, 1, 2)),
        (_conv("branch3x3dbl_1", 64), _conv("branch3x3dbl_2", 96, 3, 1, 1), _conv("branch3x3dbl_3", 96, 3, 1, 1)),
        (("avgpool", 3, 1, 1), _conv("branch_pool", pool_features)),
    )


def inception_b() -> tuple[Branch, ...]:
    """Grid reduction 35 -> 17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""
    return (
        (_conv("branch3x3", 384, 3, 2),),
        (_conv("branch3x3dbl_1", 64), _conv("branch3x3dbl_2", 96, 3, 1, 1), _conv("branch3x3dbl_3", 96, 3, 2)),
        (("maxpool", 3, 2),),
    )


def inception_c(channels_7x7: int) -> tuple[Branch, ...]:
    """Figure 6 with n = 7 (17x17): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x2 | avg pool -> 1x1."""
    c7 = check_positive_int("channels_7x7", channels_7x7)
    return (
        (_conv("branch1x1", 192),),
        (_conv("branch7x7_1", c7), _conv("branch7x7_2", c7, (1, 7), 1, (0, 3)),
         _conv("branch7x7_3", 192, (7, 1), 1, (3, 0))),
        (_conv("branch7x7dbl_1", c7), _conv("branch7x7dbl_2", c7, (7, 1), 1, (3, 0)),
         _conv("branch7x7dbl_3", c7, (1, 7), 1, (0, 3)), _conv("branch7x7dbl_4", c7, (7, 1), 1, (3, 0)),
         _conv("branch7x7dbl_5", 192, (1, 7), 1, (0, 3))),
        (("avgpool", 3, 1, 1), _conv("branch_pool", 192)),
    )


def inception_d() -> tuple[Branch, ...]:
    """Grid reduction 17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""
    return (
        (_conv("branch3x3_1", 192), _conv("branch3x3_2", 320, 3, 2)),
        (_conv("branch7x7x3_1", 192), _conv("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
         _conv("branch7x7x3_3", 192, (7, 1), 1, (3, 0)), _conv("branch7x7x3_4", 192, 3, 2)),
        (("maxpool", 3, 2),),
    )


def inception_e() -> tuple[Branch, ...]:
    """Figure 7 (8x8): 1x1 | 1x1 -> [1x3, 3x1] | 1x1 -> 3x3 -> [1x3, 3x1] | avg pool -> 1x1."""
    return (
        (_conv("branch1x1", 320),),
        (_conv("branch3x3_1", 384),
         ("split", _conv("branch3x3_2a", 384, (1, 3), 1, (0, 1)), _conv("branch3x3_2b", 384, (3, 1), 1, (1, 0)))),
        (_conv("branch3x3dbl_1", 448), _conv("branch3x3dbl_2", 384, 3, 1, 1),
         ("split", _conv("branch3x3dbl_3a", 384, (1, 3), 1, (0, 1)),
          _conv("branch3x3dbl_3b", 384, (3, 1), 1, (1, 0)))),
        (("avgpool", 3, 1, 1), _conv("branch_pool", 192)),
    )


# Stem (shapes at 299x299): ("conv", name, out, kernel, stride, padding) / ("maxpool", name, k, s)
STEM: tuple[Op, ...] = (
    ("conv", "Conv2d_1a_3x3", 32, 3, 2, 0),  # (N, 32, 149, 149)
    ("conv", "Conv2d_2a_3x3", 32, 3, 1, 0),  # (N, 32, 147, 147)
    ("conv", "Conv2d_2b_3x3", 64, 3, 1, 1),  # (N, 64, 147, 147)
    ("maxpool", "maxpool1", 3, 2),  # (N, 64, 73, 73)
    ("conv", "Conv2d_3b_1x1", 80, 1, 1, 0),  # (N, 80, 73, 73)
    ("conv", "Conv2d_4a_3x3", 192, 3, 1, 0),  # (N, 192, 71, 71)
    ("maxpool", "maxpool2", 3, 2),  # (N, 192, 35, 35)
)

# Mixed modules: (name, class name, branches)
MIXED: tuple[tuple[str, str, tuple[Branch, ...]], ...] = (
    ("Mixed_5b", "InceptionA", inception_a(32)),  # (N, 256, 35, 35)
    ("Mixed_5c", "InceptionA", inception_a(64)),  # (N, 288, 35, 35)
    ("Mixed_5d", "InceptionA", inception_a(64)),  # (N, 288, 35, 35)
    ("Mixed_6a", "InceptionB", inception_b()),  # (N, 768, 17, 17)
    ("Mixed_6b", "InceptionC", inception_c(128)),  # (N, 768, 17, 17)
    ("Mixed_6c", "InceptionC", inception_c(160)),
    ("Mixed_6d", "InceptionC", inception_c(160)),
    ("Mixed_6e", "InceptionC", inception_c(192)),  # (N, 768, 17, 17)
    ("Mixed_7a", "InceptionD", inception_d()),  # (N, 1280, 8, 8)
    ("Mixed_7b", "InceptionE", inception_e()),  # (N, 2048, 8, 8)
    ("Mixed_7c", "InceptionE", inception_e()),  # (N, 2048, 8, 8)
)

# Auxiliary head on Mixed_6e's 17x17x768 output: avg pool 5x5/3 -> conv0 1x1 (128) ->
# conv1 5x5 (768) -> adaptive avg pool 1x1 -> fc.
AUX: Mapping[str, Any] = MappingProxyType({
    "name": "AuxLogits",
    "after": "Mixed_6e",
    "pool": (5, 3),
    "convs": (_conv("conv0", 128), _conv("conv1", 768, 5)),
    "fc_std": 0.001,
})

CONV_STD = 0.1  # torchvision's default ``stddev`` for conv and linear weights


class InceptionOutputs(NamedTuple):
    """Train-mode output with the auxiliary head (field names as torchvision's)."""

    logits: torch.Tensor
    aux_logits: torch.Tensor | None


# --- modules ------------------------------------------------------------------------------


def branch_out_channels(branch: Branch, in_channels: int) -> int:
    """Channels a branch outputs: its last conv's (a split's two summed), or the input's for a pool."""
    channels = in_channels
    for op in branch:
        if op[0] == "conv":
            channels = op[2]
        elif op[0] == "split":
            channels = op[1][2] + op[2][2]
    return channels


class InceptionBlock(nn.Module):
    """A mixed module built from a branch table (see the module docstring).

    The subclasses ``InceptionA`` ... ``InceptionE`` only name the module type (as
    torchvision's classes do): build them from their table, ``InceptionA(288, inception_a(64))``.
    """

    def __init__(self, in_channels: int, branches: tuple[Branch, ...]) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        self.branches = branches
        for branch in branches:
            channels = in_channels
            for op in branch:
                convs = (op,) if op[0] == "conv" else op[1:] if op[0] == "split" else ()
                for _, name, out, kernel, stride, padding in convs:  # a split's convs share the input
                    self.add_module(name, BasicConv2d(channels, out, kernel, stride, padding, bn_eps=0.001))
                channels = branch_out_channels((op,), channels)
        self.out_channels = sum(branch_out_channels(b, in_channels) for b in branches)

    def _run(self, branch: Branch, x: torch.Tensor) -> torch.Tensor:
        for op in branch:
            if op[0] == "conv":
                x = getattr(self, op[1])(x)
            elif op[0] == "avgpool":
                x = F.avg_pool2d(x, kernel_size=op[1], stride=op[2], padding=op[3])
            elif op[0] == "maxpool":
                x = F.max_pool2d(x, kernel_size=op[1], stride=op[2])
            else:  # split: two convs on the same input, concatenated
                x = torch.cat([getattr(self, op[1][1])(x), getattr(self, op[2][1])(x)], 1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._run(b, x) for b in self.branches], 1)  # (N, out_channels, H', W')


class InceptionA(InceptionBlock):
    """Figure 5 module (table: ``inception_a``)."""


class InceptionB(InceptionBlock):
    """35 -> 17 grid reduction (table: ``inception_b``)."""


class InceptionC(InceptionBlock):
    """Figure 6 module, n = 7 (table: ``inception_c``)."""


class InceptionD(InceptionBlock):
    """17 -> 8 grid reduction (table: ``inception_d``)."""


class InceptionE(InceptionBlock):
    """Figure 7 module (table: ``inception_e``)."""


BLOCKS: Mapping[str, type[InceptionBlock]] = MappingProxyType({
    "InceptionA": InceptionA, "InceptionB": InceptionB, "InceptionC": InceptionC,
    "InceptionD": InceptionD, "InceptionE": InceptionE,
})


class InceptionAux(nn.Module):
    """avg pool 5x5/3 -> conv0 1x1 (128) -> conv1 5x5 (768) -> global avg pool -> fc."""

    conv0: BasicConv2d  # added from AUX["convs"]
    conv1: BasicConv2d

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        channels = in_channels
        for _, name, out, kernel, stride, padding in AUX["convs"]:
            self.add_module(name, BasicConv2d(channels, out, kernel, stride, padding, bn_eps=0.001))
            channels = out
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=AUX["pool"][0], stride=AUX["pool"][1])  # (N, 768, 5, 5) at 17x17
        x = self.conv0(x)  # (N, 128, 5, 5)
        x = self.conv1(x)  # (N, 768, 1, 1)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)  # (N, 768)
        return self.fc(x)  # (N, num_classes)


class Inception3(nn.Module):
    """Stem, 11 mixed modules, optional auxiliary head, global pool, dropout, fc."""

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_probability("dropout", dropout)
        self.aux_logits = bool(aux_logits)
        self.transform_input = bool(transform_input)
        self._body: list[str] = []
        channels = 3
        for step in STEM:
            if step[0] == "conv":
                _, name, out, kernel, stride, padding = step
                self.add_module(name, BasicConv2d(channels, out, kernel, stride, padding, bn_eps=0.001))
                channels = out
            else:
                _, name, kernel, stride = step
                self.add_module(name, nn.MaxPool2d(kernel_size=kernel, stride=stride))
            self._body.append(name)
        self.AuxLogits: nn.Module | None = None
        for name, kind, branches in MIXED:
            block = BLOCKS[kind](channels, branches)
            self.add_module(name, block)
            self._body.append(name)
            channels = block.out_channels
            if name == AUX["after"] and self.aux_logits:  # registered where torchvision has it
                self.AuxLogits = InceptionAux(channels, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """trunc_normal(std, -2, 2) conv and linear weights (std 0.1; AuxLogits.fc 0.001); BN 1/0."""
        aux_fc = self.AuxLogits.fc if self.AuxLogits is not None else None
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = AUX["fc_std"] if m is aux_fc else CONV_STD
                nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2.0, b=2.0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        # ImageNet-normalised input -> the (x - 0.5) / 0.5 scaling of the ported TF weights
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return torch.cat([x[:, i : i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | InceptionOutputs:
        if self.transform_input:
            x = self._transform(x)
        aux = None
        for name in self._body:  # shapes: see STEM / MIXED
            x = getattr(self, name)(x)
            if name == AUX["after"] and self.AuxLogits is not None and self.training:
                aux = self.AuxLogits(x)
        x = self.avgpool(x)  # (N, 2048, 1, 1)
        x = self.dropout(x)
        x = torch.flatten(x, 1)  # (N, 2048)
        x = self.fc(x)  # (N, num_classes)
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


def inception_v3(
    *,
    num_classes: int = 1000,
    aux_logits: bool = True,
    transform_input: bool = False,
    init_weights: bool = True,
    dropout: float = 0.5,
) -> Inception3:
    """torchvision's Inception v3 (auxiliary head on by default, as torchvision's and its meta)."""
    return Inception3(num_classes=num_classes, aux_logits=aux_logits, transform_input=transform_input,
                      init_weights=init_weights, dropout=dropout)


register_model(
    ArchSpec(
        name="inception_v3",
        family="inception_v3",
        builder=inception_v3,
        paper="Szegedy et al. 2016, Table 1 and Figures 5-7 (torchvision variant)",
        torchvision="inception_v3",
        input_size=(3, 299, 299),
        init=InitScheme(
            conv="trunc_normal_0.1",
            linear="trunc_normal_0.1",
            overrides=(("AuxLogits.fc", "trunc_normal_0.001"),),
            conv_bias="zeros",  # no conv has a bias
            linear_bias="torch_default",
            bn="ones_zeros",
            authority="torchvision",
            source="torchvision/models/inception.py Inception3.__init__ (init_weights=True)",
        ),
        expected={
            "params": Expected(
                27_161_264,
                source="torchvision 0.29 Inception_V3_Weights.IMAGENET1K_V1.meta['num_params'] (aux head included)",
            ),
            "macs": Expected(
                5.713e9,
                source="torchvision 0.29 Inception_V3_Weights.IMAGENET1K_V1.meta['_ops'] (GMACs of conv+linear "
                "in eval mode, aux head not run, 3 decimals)",
                abs_tol=0.0005e9,
                input_size=(3, 299, 299),
            ),
        },
        config=MappingProxyType({
            "stem": STEM,
            "mixed": MIXED,
            "aux": AUX,
            "num_classes": 1000,
            "aux_logits": True,
        }),
        builder_kwargs={"aux_logits": True},
        torchvision_kwargs={"aux_logits": True, "init_weights": True},  # init_weights=None warns
        numerics_input_size=(3, 75, 75),  # torchvision meta min_size; 64 is too small
        # the aux head needs 299x299 in train mode; tests/test_inception_v3.py covers it alone
        numerics_kwargs={"aux_logits": False},
        deviations=(
            "widths are torchvision's (TF-slim checkpoint), e.g. a max pool where Table 1 lists a "
            "3x3/2 conv after the 73x73 stage",
            "AuxLogits.conv1 is tagged std 0.01 in torchvision but drawn with 0.1 (its init loop never reads the tag)",
            "BatchNorm2d(eps=0.001) after every conv, also in the auxiliary head (the paper's 'BN-auxiliary')",
        ),
    )
)
