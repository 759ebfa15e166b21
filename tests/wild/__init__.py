"""A zoo of implementations "from the wild": the function of one of our specs, written unlike ours.

Each module holds zero-argument factories. ``IMPLEMENTATIONS`` lists the ones that compute a
spec's function exactly (tests/test_wild_function.py proves it by copying weights in stored
order and comparing outputs; tests/test_gate_wild.py asks the gate for its verdict);
``MUTANTS`` the one-place departures from them, each with the text a good gate's failures must
contain (``cause``: a module path of the candidate or an attribute word); ``REJECTED`` models
that claim a spec with several departures.

Sources of the architectures are in each module's docstring (papers, torchvision's and timm's
modules); the code is ours, written in the styles those implementations use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import torch.nn as nn

from . import (
    cifar_akamaster,
    cifar_functional,
    googlenet_reordered,
    mobilenet_v1_fused,
    mobilenet_v1_sequential,
    mobilenet_v2_alt,
    resnet18_functional,
    resnet50_soup,
    timm_zoo,
)

__all__ = ["IMPLEMENTATIONS", "MUTANTS", "REJECTED", "Implementation", "Mutant", "Rejected", "implementation"]

Factory = Callable[[], nn.Module]
CIFAR = (3, 32, 32)
IMAGENET_SMALL = (3, 64, 64)


@dataclass(frozen=True)
class Implementation:
    """``build`` computes spec ``spec`` built with ``reading`` (builder kwargs of the reading it
    implements; empty: the default build), and torchvision's ``torchvision`` builder when set."""

    name: str
    build: Factory
    spec: str
    differs: str  # how it is written unlike cnn_models
    reading: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    torchvision: str | None = None
    input_size: tuple[int, int, int] = IMAGENET_SMALL  # where test_wild_function compares outputs
    batch: int = 2
    needs: str | None = None  # an importable module the factory needs (a test extra)


@dataclass(frozen=True)
class Mutant:
    """One change to implementation ``of``. ``kind``: ``"function"`` (another function: outputs
    differ on the same weights), ``"shape"`` (a parameter's shape changes, so weights cannot be
    copied), ``"init"`` (the same function, another initialisation)."""

    name: str
    build: Factory
    of: str
    change: str
    cause: tuple[str, ...]  # each must appear (case-insensitively) in the gate's failures
    kind: Literal["function", "shape", "init"] = "function"


@dataclass(frozen=True)
class Rejected:
    """A model that claims ``spec`` with several departures; ``causes`` as ``Mutant.cause``."""

    name: str
    build: Factory
    spec: str
    departures: tuple[str, ...]
    cause: tuple[str, ...]


IMPLEMENTATIONS: tuple[Implementation, ...] = (
    Implementation(
        "akamaster_resnet20", cifar_akamaster.build, "cifar_resnet20",
        "LambdaLayer option-A shortcut padding zeros on both sides, F.avg_pool2d in forward, fc named linear, "
        "kaiming_normal_ on the fc too",
        reading=MappingProxyType({"option_a_pad": "split"}), input_size=CIFAR,
    ),
    Implementation(
        "akamaster_resnet32", cifar_akamaster.build_resnet32, "cifar_resnet32", "as akamaster_resnet20, n = 5",
        reading=MappingProxyType({"option_a_pad": "split"}), input_size=CIFAR,
    ),
    Implementation(
        "akamaster_resnet56", cifar_akamaster.build_resnet56, "cifar_resnet56", "as akamaster_resnet20, n = 9",
        reading=MappingProxyType({"option_a_pad": "split"}), input_size=CIFAR,
    ),
    Implementation(
        "functional_cifar_resnet20", cifar_functional.build, "cifar_resnet20",
        "no layer modules: ParameterLists, root buffers, F.conv2d / F.batch_norm, torch.cat with zeros, "
        "x.mean((2, 3)), x @ w.t() + b",
        input_size=CIFAR,
    ),
    Implementation(
        "mobilenet_v1_sequential", mobilenet_v1_sequential.build, "mobilenet_v1",
        "one nn.Sequential of conv_bn / conv_dw helpers ending in AvgPool2d(7), x.view(-1, 1024), no dropout, "
        "PyTorch's default init",
        reading=MappingProxyType({"pool": "avg7"}), input_size=(3, 224, 224), batch=1,
    ),
    Implementation(
        "mobilenet_v1_fused", mobilenet_v1_fused.build, "mobilenet_v1",
        "one ConvBNAct module per conv+BN+ReLU holding weight, bn_weight, bn_bias, bn_mean, bn_var; "
        "F.conv2d -> F.batch_norm -> F.relu; x.mean((2, 3))",
    ),
    Implementation(
        "resnet18_functional", resnet18_functional.build, "resnet18",
        "stem / stages[i][j].a, .b, .proj / head; projection runs first; torch.add and in-place +=; "
        "functional relu, max pool, adaptive pool",
        torchvision="resnet18",
    ),
    Implementation(
        "resnet50_soup", resnet50_soup.build, "resnet50",
        "one nn.Sequential with numbered children; blocks walk numbered children; shortcut; classifier",
        torchvision="resnet50",
    ),
    Implementation(
        "googlenet_reordered", googlenet_reordered.build, "googlenet",
        "branches computed in the order 4, 2, 3, 1 and concatenated 1, 2, 3, 4; ModuleList / ModuleDict; "
        "functional pools and dropout; torch.mean pool",
        torchvision="googlenet",
    ),
    Implementation(
        "mobilenet_v2_alt", mobilenet_v2_alt.build, "mobilenet_v2",
        "flat conv Sequentials, nn.Hardtanh(0, 6) for ReLU6, residual decided by shapes, x.mean pool, "
        "F.dropout in forward",
        torchvision="mobilenet_v2",
    ),
    Implementation(
        "timm_mobilenetv1_relu", timm_zoo.build_mobilenetv1, "mobilenet_v1",
        "timm EfficientNet builder (conv_stem, BatchNormAct2d, DepthwiseSeparableConv), act_layer='relu', "
        "timm's TF-style init",
        needs="timm",
    ),
    Implementation(
        "timm_mobilenetv1_relu6", timm_zoo.build_mobilenetv1_relu6, "mobilenet_v1",
        "timm's default mobilenetv1_100: as timm_mobilenetv1_relu, with ReLU6 (the TF-slim release's reading)",
        reading=MappingProxyType({"act": "relu6"}), needs="timm",
    ),
    Implementation(
        "timm_resnet18", timm_zoo.build_resnet18, "resnet18", "timm ResNet, zero_init_last=False",
        torchvision="resnet18", needs="timm",
    ),
    Implementation(
        "timm_resnet50", timm_zoo.build_resnet50, "resnet50", "timm ResNet, zero_init_last=False",
        torchvision="resnet50", needs="timm",
    ),
)

MUTANTS: tuple[Mutant, ...] = (
    Mutant("akamaster_odd_subsample", cifar_akamaster.build_odd_subsample, "akamaster_resnet20",
           "layer2.0's option-A shortcut keeps x[:, :, 1::2, 1::2]", ("layer2.0",)),
    Mutant("functional_add_after_relu", cifar_functional.build_add_after_relu, "functional_cifar_resnet20",
           "stage 2, block 2: relu(branch) + shortcut instead of relu(branch + shortcut)", ("relu",)),
    Mutant("sequential_half_groups", mobilenet_v1_sequential.build_half_groups, "mobilenet_v1_sequential",
           "model.7.0 is a 3x3 conv with groups=256, not depthwise (512)", ("groups",), kind="shape"),
    Mutant("sequential_max_pool", mobilenet_v1_sequential.build_max_pool, "mobilenet_v1_sequential",
           "model.14 is MaxPool2d(7), not AvgPool2d(7)", ("model.14", "max")),
    Mutant("fused_missing_relu", mobilenet_v1_fused.build_missing_relu, "mobilenet_v1_fused",
           "layers.11 (depthwise conv of separable layer 6) has no ReLU", ("relu",)),
    Mutant("resnet18_bn_eps", resnet18_functional.build_eps_1e3, "resnet18_functional",
           "stages.2.1.b.norm has eps 1e-3", ("eps",)),
    Mutant("resnet18_unit_normal_init", resnet18_functional.build_unit_normal_init, "resnet18_functional",
           "every conv weight N(0, 1)", ("stem.conv",), kind="init"),
    Mutant("resnet50_stride_on_first_1x1", resnet50_soup.build_stride_on_first_1x1, "resnet50_soup",
           "block 6.0 strides its first 1x1 conv (ResNet v1), not its 3x3", ("stride",)),
    Mutant("googlenet_swapped_concat", googlenet_reordered.build_swapped_concat, "googlenet_reordered",
           "mixed.4c concatenates (1x1, 5x5, 3x3, pool)", ("mixed.4c",)),
    Mutant("mobilenet_v2_relu6_after_projection", mobilenet_v2_alt.build_relu6_after_projection,
           "mobilenet_v2_alt", "body.7's projection is followed by ReLU6 (no linear bottleneck)", ("relu6",)),
    Mutant("timm_mobilenetv1_relu6_one_relu", timm_zoo.build_mobilenetv1_relu6_one_relu, "timm_mobilenetv1_relu6",
           "blocks.3.2.bn1's activation is ReLU in a ReLU6 net: a mix no reading admits", ("blocks.3.2.bn1",)),
    Mutant("timm_resnet18_zero_init_last", timm_zoo.build_resnet18_zero_init_last, "timm_resnet18",
           "timm's default zero_init_last=True: every layerS.B.bn2 gamma starts at 0", ("bn2",), kind="init"),
)


def _tutorial_mobilenet() -> nn.Module:
    from conformance.claims.exhibits import TutorialMobileNet

    return TutorialMobileNet()


REJECTED: tuple[Rejected, ...] = (
    Rejected(
        "tutorial_mobilenet", _tutorial_mobilenet, "mobilenet_v1",
        ("stem conv stride 1 (spec 2)", "AvgPool2d(2) head instead of a global pool"),
        ("conv1", "stride", "avgpool"),
    ),
)


def implementation(name: str) -> Implementation:
    """The implementation called ``name`` (KeyError naming the known ones otherwise)."""
    for impl in IMPLEMENTATIONS:
        if impl.name == name:
            return impl
    raise KeyError(f"no wild implementation {name!r}; known: {[i.name for i in IMPLEMENTATIONS]}")
