"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), the modern reading, with its spec.

Source: "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 86(11), 1998,
§II.B and Fig. 2: a 32x32 input; C1, 6 feature maps 28x28 (5x5 conv, 156 trainable
parameters); S2, 6 maps 14x14 (2x2 subsampling); C3, 16 maps 10x10 (5x5 conv); S4, 16 maps
5x5; C5, 120 maps 1x1 (5x5 conv, 48,120 trainable connections); F6, 84 units (10,164
trainable parameters); an output unit per class.

Where this model departs from the paper (the reading most code calls "LeNet-5"; each is also
listed in the spec's ``deviations``):

* C3 connects every S2 map (the paper's Table I wires each C3 map to 3 to 6 of them:
  1,516 parameters instead of 16 (6 * 25 + 1) = 2,416);
* S2 and S4 are parameter-free 2x2 max pools (the paper's subsampling units add a trainable
  coefficient and bias per map: 12 and 32 parameters);
* ReLU instead of the scaled tanh ``1.7159 tanh(2a/3)``; a linear output layer
  (84 * 10 + 10 parameters) instead of the Euclidean RBF units.

No torchvision counterpart. The closed form the gate checks this model against lives in
``cnn_conformance_example/formula.py`` and reads ``CONFIG``, never the module.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn as nn

from cnn_models import ArchSpec, Expected, InitScheme

__all__ = ["CONFIG", "SPEC", "LeNet5", "lenet5", "specs"]

# Fig. 2 of the paper, as data: the builder and the closed form both read this table.
CONFIG: Mapping[str, Any] = MappingProxyType({
    "in_channels": 1,
    "c1": 6,  # C1 feature maps
    "c3": 16,  # C3 feature maps
    "c5": 120,  # C5 feature maps (1x1 at 32x32 input)
    "f6": 84,  # F6 units
    "kernel": 5,  # C1, C3 and C5: 5x5, stride 1, no padding
    "pool": 2,  # S2, S4: 2x2, stride 2
    "num_classes": 10,
})  # fmt: skip


class LeNet5(nn.Module):
    """C1 - S2 - C3 - S4 - C5 - F6 - output, ReLU after every conv and F6."""

    def __init__(self, *, num_classes: int = 10, config: Mapping[str, Any] = CONFIG) -> None:
        super().__init__()
        k, p = config["kernel"], config["pool"]
        self.c1 = nn.Conv2d(config["in_channels"], config["c1"], k)
        self.s2 = nn.MaxPool2d(p)
        self.c3 = nn.Conv2d(config["c1"], config["c3"], k)
        self.s4 = nn.MaxPool2d(p)
        self.c5 = nn.Conv2d(config["c3"], config["c5"], k)
        self.f6 = nn.Linear(config["c5"], config["f6"])
        self.output = nn.Linear(config["f6"], num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 32, 32)
        x = self.s2(self.relu(self.c1(x)))  # (N, 6, 14, 14)
        x = self.s4(self.relu(self.c3(x)))  # (N, 16, 5, 5)
        x = torch.flatten(self.relu(self.c5(x)), 1)  # (N, 120)
        x = self.relu(self.f6(x))  # (N, 84)
        return self.output(x)  # (N, num_classes)


def lenet5(*, num_classes: int = 10) -> LeNet5:
    """LeNet-5 with ``num_classes`` outputs (ValueError naming ``num_classes`` if not positive)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return LeNet5(num_classes=num_classes)


SPEC = ArchSpec(
    name="lenet5",
    family="cnn_conformance_example.formula",  # a dotted family: this package's closed form
    builder=lenet5,
    paper="LeCun, Bottou, Bengio, Haffner 1998, Gradient-Based Learning Applied to Document Recognition, §II.B, Fig. 2",
    torchvision=None,
    input_size=(1, 32, 32),
    init=InitScheme(
        conv="torch_default", linear="torch_default", conv_bias="torch_default", linear_bias="torch_default",
        source="PyTorch's default Conv2d/Linear init; the paper's U(-2.4/F_in, 2.4/F_in) is not reproduced",
    ),
    expected={
        "params": Expected(
            61_706,
            source="LeCun et al. 1998 §II.B: C1 156, C5 48,120, F6 10,164 trainable parameters; "
            "plus a fully connected C3 16*(6*25+1) = 2,416 and a linear output 84*10+10 = 850",
        ),
    },
    config=CONFIG,
    num_classes=10,
    deviations=(
        "C3 connects every S2 map (the paper's Table I: 1,516 parameters, here 2,416)",
        "S2/S4 are parameter-free max pools (the paper's have 12 and 32 trainable parameters)",
        "ReLU instead of 1.7159 tanh(2a/3); a linear output instead of Euclidean RBF units",
    ),
)


def specs() -> list[ArchSpec]:
    """The entry point (group ``cnn_conformance.architectures``): this package's architectures."""
    return [SPEC]
