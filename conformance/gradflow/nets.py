"""Experiment networks for the gradient-flow measurements, and their weight inits.

Sources:
* He et al. 2015, "Delving Deep into Rectifiers", Eqs. (10) and (14): He init, Var[w] = 2/n
  with n = k^2 * C_in (fan-in, forward) or k^2 * C_out (fan-out, backward).
* Glorot & Bengio 2010, Eq. (16): Xavier init, Var[w] = 2 / (fan_in + fan_out).
* PyTorch ``nn.Conv2d.reset_parameters`` (documented default): kaiming_uniform_ with
  a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Var[w] = 1 / (3 * fan_in).
* He et al. 2016, "Identity Mappings in Deep Residual Networks": the pre-activation block
  x + conv(ReLU(conv(ReLU(x)))) (here optionally with BN before each ReLU).
* De & Smith 2020 (SkipInit) and Zhang et al. 2019 (Fixup): a residual branch whose last
  layer starts at zero is the identity at init.

Two families, both with constant width C, no bias, 3x3 convs (stride 1, padding 1, zero or
circular padding) on an input x_0 of shape (N, C, H, W):

* ``PlainNet`` (L layers): y_1 = conv_1(x_0); y_l = conv_l(ReLU([BN](y_{l-1}))), output y_L.
  Probed tensors: the pre-activations y_1 .. y_L (module names ``convs.0`` .. ``convs.{L-1}``).
* ``ResidualNet`` (L blocks): x_l = s * (x_{l-1} + F_l(x_{l-1})) with
  F(x) = conv2(ReLU([BN2](conv1(ReLU([BN1](x)))))), s = 1 (``on``), 1/sqrt(2) (``scaled``), or
  conv2 initialised to zero (``zeroinit``, s = 1). Probed tensors: the residual stream
  x_0 .. x_L (module names ``stem`` (an Identity) and ``blocks.0`` .. ``blocks.{L-1}``).

BN layers are plain ``nn.BatchNorm2d`` (gamma 1, beta 0) and the nets are used in train mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "INIT_SCHEMES",
    "INIT_VARIANCE",
    "PADDINGS",
    "RESIDUAL_MODES",
    "PlainNet",
    "ResidualNet",
    "ResidualBlock",
    "build_net",
    "init_variance",
    "init_weight_",
    "probe_names",
]

# Weight variance of each init scheme as a function of (fan_in, fan_out): tables as data.
# "torch_default" is uniform (see ``init_weight_``); every other scheme is a zero-mean normal.
INIT_VARIANCE: dict[str, Callable[[int, int], float]] = {
    "he_fan_in": lambda fan_in, fan_out: 2.0 / fan_in,  # He 2015 Eq. (10)
    "he_fan_out": lambda fan_in, fan_out: 2.0 / fan_out,  # He 2015 Eq. (14)
    "xavier": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),  # Glorot 2010 Eq. (16)
    "naive": lambda fan_in, fan_out: 1.0,  # N(0, 1): unit variance whatever the fan
    "small": lambda fan_in, fan_out: 1e-4,  # N(0, 0.01^2)
    "torch_default": lambda fan_in, fan_out: 1.0 / (3.0 * fan_in),  # U(-1/sqrt(fan_in), ..)
}
INIT_SCHEMES: tuple[str, ...] = tuple(INIT_VARIANCE)
RESIDUAL_MODES: tuple[str, ...] = ("off", "on", "scaled", "zeroinit")
PADDINGS: tuple[str, ...] = ("circular", "zero")

Residual = Literal["off", "on", "scaled", "zeroinit"]


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = int(weight[0, 0].numel()) if weight.dim() > 2 else 1
    return int(weight.shape[1]) * receptive, int(weight.shape[0]) * receptive


def init_variance(scheme: str, fan_in: int, fan_out: int) -> float:
    """Var[w] of ``scheme`` for a layer with the given fans (see ``INIT_VARIANCE``)."""
    try:
        return INIT_VARIANCE[scheme](fan_in, fan_out)
    except KeyError:
        raise ValueError(f"init must be one of {list(INIT_SCHEMES)}, got {scheme!r}") from None


@torch.no_grad()
def init_weight_(weight: torch.Tensor, scheme: str, generator: torch.Generator) -> torch.Tensor:
    """Fill ``weight`` in place from ``scheme``, drawing from ``generator`` (reproducible)."""
    fan_in, fan_out = _fans(weight)
    var = init_variance(scheme, fan_in, fan_out)
    noise = torch.empty(weight.shape, dtype=torch.float64)
    if scheme == "torch_default":
        bound = 1.0 / math.sqrt(fan_in)  # = sqrt(3 * var)
        noise.uniform_(-bound, bound, generator=generator)
    else:
        noise.normal_(0.0, math.sqrt(var), generator=generator)
    weight.copy_(noise.to(device=weight.device, dtype=weight.dtype))
    return weight


def _conv(width: int, padding: str, kernel_size: int) -> nn.Conv2d:
    mode: Literal["zeros", "circular"] = "zeros" if padding == "zero" else "circular"
    return nn.Conv2d(
        width, width, kernel_size, padding=kernel_size // 2, padding_mode=mode, bias=False
    )


class PlainNet(nn.Module):
    """L conv layers, ReLU (after BN when ``bn``) between them; returns y_L (no final ReLU)."""

    def __init__(self, *, depth: int, width: int, bn: bool, padding: str, kernel_size: int) -> None:
        super().__init__()
        self.depth = depth
        self.convs = nn.ModuleList(_conv(width, padding, kernel_size) for _ in range(depth))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(depth - 1)) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W)
        y = self.convs[0](x)
        for i in range(1, self.depth):
            h = self.bns[i - 1](y) if self.bns is not None else y
            y = self.convs[i](F.relu(h))
        return y


class ResidualBlock(nn.Module):
    """Pre-activation block: scale * (x + conv2(ReLU([BN2](conv1(ReLU([BN1](x)))))))."""

    def __init__(self, *, width: int, bn: bool, padding: str, kernel_size: int, scale: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.conv1 = _conv(width, padding, kernel_size)
        self.bn2 = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.conv2 = _conv(width, padding, kernel_size)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        out = x + branch
        return out * self.scale if self.scale != 1.0 else out


class ResidualNet(nn.Module):
    """``stem`` (Identity, so the input x_0 is probed like any block output) + L blocks."""

    def __init__(
        self, *, depth: int, width: int, bn: bool, padding: str, kernel_size: int, scale: float
    ) -> None:
        super().__init__()
        self.stem = nn.Identity()
        self.blocks = nn.ModuleList(
            ResidualBlock(width=width, bn=bn, padding=padding, kernel_size=kernel_size, scale=scale)
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


def build_net(
    *,
    depth: int,
    width: int,
    init: str,
    residual: str,
    bn: bool,
    padding: str = "circular",
    kernel_size: int = 3,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Build and initialise one experiment net (train mode). Weights come from ``generator``."""
    if residual not in RESIDUAL_MODES:
        raise ValueError(f"residual must be one of {list(RESIDUAL_MODES)}, got {residual!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {list(PADDINGS)}, got {padding!r}")
    if init not in INIT_VARIANCE:
        raise ValueError(f"init must be one of {list(INIT_SCHEMES)}, got {init!r}")
    net: nn.Module
    if residual == "off":
        net = PlainNet(depth=depth, width=width, bn=bn, padding=padding, kernel_size=kernel_size)
    else:
        scale = 1.0 / math.sqrt(2.0) if residual == "scaled" else 1.0
        net = ResidualNet(
            depth=depth, width=width, bn=bn, padding=padding, kernel_size=kernel_size, scale=scale
        )
    net = net.to(device=device, dtype=dtype)
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            if residual == "zeroinit" and name.endswith("conv2"):
                nn.init.zeros_(module.weight)  # SkipInit / Fixup: the branch starts at zero
            else:
                init_weight_(module.weight, init, generator)
    return net.train()


def probe_names(depth: int, residual: str) -> list[str]:
    """Qualified names of the probed modules, in forward order (see the module docstring)."""
    if residual == "off":
        return [f"convs.{i}" for i in range(depth)]
    return ["stem"] + [f"blocks.{i}" for i in range(depth)]
