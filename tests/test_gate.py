"""The gate's power: deliberately broken variants are rejected, faithful ones accepted.

Each broken variant takes one of our reference models and introduces exactly one kind of
deviation a careless contributor could make. The gate must reject it *and* name the module
where the deviation sits. Faithful implementations that share no code with ours (torchvision's
own models, timm's ResNets) must pass every check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

import cnn_models
from conformance.check import check_candidate

Mutation = Callable[[], nn.Module]


@dataclass(frozen=True)
class Broken:
    kind: str  # the kind of one-place deviation (see test_catalogue_covers_every_deviation_kind)
    spec: str  # the architecture it claims to be
    build: Mutation
    where: str  # text the failure must contain: the offending module


def _m(name: str, **kwargs: object) -> nn.Module:
    return cnn_models.get_model(name, **kwargs)


def _swap(model: nn.Module, path: str, new: nn.Module) -> nn.Module:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
    return model


def wrong_kernel() -> nn.Module:
    return _swap(_m("resnet18"), "layer1.0.conv2", nn.Conv2d(64, 64, 5, padding=2, bias=False))


def wrong_stride() -> nn.Module:
    m = _m("resnet18")
    m.layer3[0].conv1.stride = (1, 1)
    m.layer3[0].downsample[0].stride = (1, 1)
    return m


def wrong_padding() -> nn.Module:
    return _swap(_m("resnet18"), "conv1", nn.Conv2d(3, 64, 7, stride=2, padding=2, bias=False))


def wrong_pool_size() -> nn.Module:
    return _swap(_m("resnet18"), "maxpool", nn.MaxPool2d(2, 2))


def wrong_pool_type() -> nn.Module:
    return _swap(_m("googlenet"), "maxpool1", nn.AvgPool2d(3, 2, ceil_mode=True))


def wrong_ceil_mode() -> nn.Module:
    m = _m("googlenet")
    m.maxpool1.ceil_mode = False
    return m


def wrong_activation() -> nn.Module:
    return _swap(_m("resnet18"), "layer2.1.relu", nn.GELU())


def wrong_activation_relu6() -> nn.Module:
    return _swap(_m("mobilenet_v2"), "features.2.conv.0.2", nn.ReLU(inplace=True))


def extra_bias() -> nn.Module:
    return _swap(_m("resnet18"), "conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=True))


def wrong_bn_eps() -> nn.Module:
    m = _m("resnet18")
    m.layer1[0].bn1.eps = 1e-3
    return m


def wrong_bn_momentum() -> nn.Module:
    m = _m("resnet18")
    m.bn1.momentum = 0.01
    return m


def bn_without_affine() -> nn.Module:
    return _swap(_m("resnet18"), "layer4.1.bn2", nn.BatchNorm2d(512, affine=False))


def wrong_dropout() -> nn.Module:
    m = _m("googlenet")
    m.dropout.p = 0.5
    return m


class _NoShortcut(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        for name, child in block.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))  # the "+ x" is missing


def missing_shortcut() -> nn.Module:
    m = _m("resnet18")
    m.layer1[1] = _NoShortcut(m.layer1[1])
    return m


class _WithShortcut(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x


def extra_shortcut() -> nn.Module:
    m = _m("cifar_plain20")
    first = next(n for n, mod in m.named_modules() if n.count(".") == 1 and n.startswith("layer1"))
    block = m.get_submodule(first)

    class Extra(type(block)):  # type: ignore[misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + x

    block.__class__ = Extra
    return m


def wrong_concat_order() -> nn.Module:
    m = _m("googlenet")
    mod = m.inception3a

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([mod.branch2(x), mod.branch1(x), mod.branch3(x), mod.branch4(x)], 1)

    mod.forward = forward  # type: ignore[method-assign]
    return m


def naive_init() -> nn.Module:
    m = _m("resnet18")
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.normal_(0.0, 1.0)
    return m


def fan_in_init() -> nn.Module:
    m = _m("resnet50")
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_in", nonlinearity="relu")
    return m


def bn_gamma_init() -> nn.Module:
    m = _m("mobilenet_v2")
    nn.init.constant_(m.features[0][1].weight, 0.5)
    return m


def wrong_width() -> nn.Module:
    return _m("mobilenet_v2", width_mult=0.75)


def wrong_depth() -> nn.Module:
    from cnn_models.resnet import BasicBlock, ResNet

    return ResNet(block=BasicBlock, layers=[2, 2, 3, 2])


def wrong_groups() -> nn.Module:
    from cnn_models.resnet import Bottleneck, ResNet

    return ResNet(block=Bottleneck, layers=[3, 4, 6, 3], groups=16, width_per_group=8)  # same widths as 32x4d


def v1_stride() -> nn.Module:
    m = _m("resnet50")
    for layer in (m.layer2, m.layer3, m.layer4):
        layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    return m


def wrong_dilation() -> nn.Module:
    return _swap(_m("resnet18"), "layer4.0.conv2", nn.Conv2d(512, 512, 3, padding=2, dilation=2, bias=False))


def wrong_padding_mode() -> nn.Module:
    m = _m("resnet18")
    m.layer1[1].conv1.padding_mode = "circular"
    return m


def wrong_class_count() -> nn.Module:
    return _m("resnet18", num_classes=10)


def mobilenet_v1_last_stride() -> nn.Module:
    # the paper's Table 1 typo ("Conv dw / s2" on the last depthwise conv), taken literally
    m = _m("mobilenet_v1")
    dw = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.groups > 1][-1]
    dw.stride = (2, 2)
    return m


BROKEN = [
    Broken("kernel size", "resnet18", wrong_kernel, "layer1.0.conv2"),
    Broken("stride", "resnet18", wrong_stride, "layer3.0.conv1"),
    Broken("padding", "resnet18", wrong_padding, "conv1"),
    Broken("pooling size", "resnet18", wrong_pool_size, "maxpool"),
    Broken("pooling type", "googlenet", wrong_pool_type, "maxpool1"),
    Broken("pooling ceil_mode", "googlenet", wrong_ceil_mode, "maxpool1"),
    Broken("activation (GELU for ReLU)", "resnet18", wrong_activation, "layer2.1.relu"),
    Broken("activation (ReLU for ReLU6)", "mobilenet_v2", wrong_activation_relu6, "features.2.conv.0.2"),
    Broken("bias", "resnet18", extra_bias, "conv1.bias"),
    Broken("BN eps", "resnet18", wrong_bn_eps, "layer1.0.bn1"),
    Broken("BN momentum", "resnet18", wrong_bn_momentum, "bn1.running_mean"),
    Broken("BN affine", "resnet18", bn_without_affine, "layer4.1.bn2.weight"),
    Broken("dropout rate", "googlenet", wrong_dropout, "dropout"),
    Broken("missing shortcut", "resnet18", missing_shortcut, "layer1.1"),
    Broken("extra shortcut", "cifar_plain20", extra_shortcut, "layer1.0"),
    Broken("concatenation order", "googlenet", wrong_concat_order, "inception3a"),
    Broken("init: naive N(0,1)", "resnet18", naive_init,
           "layer1.0.conv1: conv weight (kaiming_normal_fan_out) variance"),
    Broken("init: fan_in for fan_out", "resnet50", fan_in_init, "layer1.0.conv3: conv weight (kaiming_normal_fan_out)"),
    Broken("init: BN gamma", "mobilenet_v2", bn_gamma_init, "features.0.1: BN weight expected all 1"),
    Broken("width", "mobilenet_v2", wrong_width, "features.0.0"),
    Broken("depth", "resnet18", wrong_depth, "layer3.2.conv1"),
    Broken("groups", "resnext50_32x4d", wrong_groups, "layer1.0.conv2"),
    Broken("stride placement (ResNet v1 vs v1.5)", "resnet50", v1_stride, "layer2.0.conv1"),
    Broken("dilation", "resnet18", wrong_dilation, "layer4.0.conv2"),
    Broken("padding mode", "resnet18", wrong_padding_mode, "layer1.1.conv1"),
    Broken("number of classes", "resnet18", wrong_class_count, "fc.weight"),
    Broken("stride, no torchvision counterpart", "mobilenet_v1", mobilenet_v1_last_stride, "features.13.dw.0"),
]


@pytest.mark.parametrize("case", BROKEN, ids=[b.kind for b in BROKEN])
def test_broken_variant_is_rejected_naming_the_layer(case: Broken) -> None:
    torch.manual_seed(0)
    report = check_candidate(case.build, case.kind, spec=cnn_models.get_spec(case.spec))
    assert not report.passed, f"{case.kind}: the gate accepted a broken {case.spec}\n{report.format()}"
    text = "\n".join(report.failures)
    assert case.where in text, f"{case.kind}: no failure names {case.where!r}\n{report.format(limit=3)}"


def _tv(name: str, **kwargs: object) -> Mutation:
    import torchvision.models as tvm

    return lambda: tvm.get_model(name, weights=None, **kwargs)


def _timm(name: str) -> Mutation:
    import timm  # a test dependency (pyproject extra "test"): an independent implementation

    return lambda: timm.create_model(name, pretrained=False, zero_init_last=False)


FAITHFUL = [
    ("torchvision resnet18", "resnet18", lambda: _tv("resnet18")),
    ("torchvision googlenet", "googlenet", lambda: _tv("googlenet", aux_logits=False, init_weights=True)),
    ("torchvision mobilenet_v2", "mobilenet_v2", lambda: _tv("mobilenet_v2")),
    ("timm resnet18", "resnet18", lambda: _timm("resnet18")),
    ("timm resnet50", "resnet50", lambda: _timm("resnet50")),
]


@pytest.mark.parametrize(("label", "spec", "make"), FAITHFUL, ids=[f[0] for f in FAITHFUL])
def test_faithful_implementation_is_accepted(label: str, spec: str, make: Callable[[], Mutation]) -> None:
    torch.manual_seed(0)
    report = check_candidate(make(), label, spec=cnn_models.get_spec(spec))
    assert report.passed, report.format()
    assert len(report.checks) >= 12
