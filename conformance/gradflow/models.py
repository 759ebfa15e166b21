"""The probes on registered architectures: CIFAR ResNets vs plain nets, torchvision ResNets.

Sources:
* He et al. 2016 (CVPR), section 4.2 and Table 6: the CIFAR-10 nets resnet20..110 and their
  plain counterparts (``cnn_models.cifar_resnet``), 6n+2 layers, BN after every conv.
* Yang et al. 2019 (plain conv-BN-ReLU, train mode: the backward second moment grows by
  pi/(pi-1) per layer, the constant derived in ``theory``), generalised to the
  CIFAR chain's changing widths and strides in ``theory.bn_chain_log_grad_ratio``.
* De & Smith 2020: the pre-activation BN residual law (its backward factor derived in
  ``theory``), used as a *reference curve* for the
  CIFAR ResNets (whose blocks are post-activation, so it is not an exact prediction there).
* torchvision ``resnet.py`` (``zero_init_residual``, L218-223 of the 0.2x sources) and
  its semantics: with the last BN of each branch at gamma = 0, every block without a
  downsample returns its (non-negative) input exactly, blocks with one return
  ReLU(downsample(x)), and every branch parameter before that BN gets an exactly zero gradient.
* BatchNorm's scale invariance in train mode (Ioffe & Szegedy 2015, section 3).

Models are built with their own init under ``torch.random.fork_rng`` and a fixed seed, so
the global RNG is untouched and results are reproducible.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from . import theory
from .runner import SEED_BASE, ScaleInvariance, bn_scale_invariance, probe_model, t975
from .setting import Setting

__all__ = [
    "CIFAR_DEPTHS",
    "ModelPoint",
    "ZeroInitReport",
    "cifar_depth_sweep",
    "conv_chain",
    "resnet_bn_scale_invariance",
    "zero_init_residual_check",
]

CIFAR_DEPTHS: tuple[int, ...] = (20, 32, 44, 56, 110)  # He et al. 2016, Table 6


def _build(name: str, seed: int, **kwargs: object) -> nn.Module:
    import cnn_models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED_BASE + seed)
        model = cnn_models.get_model(name, **kwargs)
    return model.to(torch.float64).train()


def _is_conv(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d)


def conv_chain(model: nn.Module, x: torch.Tensor) -> list[tuple[str, theory.ConvShape]]:
    """Every Conv2d in forward order, with the shape data the chain law needs."""
    order: list[str] = []
    named = dict(model.named_modules())
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: order.append(n))
        for n, m in named.items()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(x)
    finally:
        for h in handles:
            h.remove()
    out = []
    for n in order:
        conv = named[n]
        assert isinstance(conv, nn.Conv2d)
        out.append(
            (
                n,
                theory.ConvShape(
                    c_in=conv.in_channels // conv.groups,
                    c_out=conv.out_channels,
                    kernel_area=conv.kernel_size[0] * conv.kernel_size[1],
                    stride_area=conv.stride[0] * conv.stride[1],
                    var=float(conv.weight.detach().to(torch.float64).var()),
                ),
            )
        )
    return out


@dataclass(frozen=True)
class ModelPoint:
    """First-conv vs last-conv gradient of one registered model, over seeds."""

    name: str
    kind: str  # "plain" | "resnet"
    depth: int
    convs: int
    log_ratio: float  # mean over seeds of log RMS(dL/dy_first conv) / RMS(dL/dy_last conv)
    log_ratio_se: float
    predicted_log_ratio: float | None  # plain: chain law (P9); resnet: none (post-activation)
    reference_log_ratio: float | None  # resnet: pre-activation BN law (P8) at the same blocks
    tolerance: float | None  # on log_ratio (plain: P9's 0.05 per layer, in RMS units)
    per_seed: list[float] = field(default_factory=list)

    @property
    def within_band(self) -> bool | None:
        if self.predicted_log_ratio is None or self.tolerance is None:
            return None
        se = 0.0 if math.isnan(self.log_ratio_se) else self.log_ratio_se
        t = t975(len(self.per_seed) - 1)
        return abs(self.log_ratio - self.predicted_log_ratio) <= self.tolerance + t * se


def cifar_depth_sweep(
    depths: Iterable[int] = CIFAR_DEPTHS,
    *,
    seeds: int = 2,
    batch: int = 8,
    size: int = 16,
    kinds: Iterable[str] = ("plain", "resnet"),
    padding: str = "zero",
) -> list[ModelPoint]:
    """Probe ``cifar_plain{d}`` and ``cifar_resnet{d}`` in train mode, float64, input
    N(0,1) of shape (batch, 3, size, size), probe loss <g, logits>.

    ``padding="circular"`` switches every conv's ``padding_mode`` (a modified model, to check
    the chain law without border effects); ``"zero"`` is the published model. With zero
    padding and BN the backward gain per layer is lower than kappa by a border effect that
    grows as the maps shrink (measured 0.01 / 0.03 / 0.07 per layer at 32 / 8 / 4 pixels).
    """
    if padding not in ("zero", "circular"):
        raise ValueError(f"padding must be 'zero' or 'circular', got {padding!r}")
    points = []
    for kind in kinds:
        for depth in depths:
            name = f"cifar_{kind}{depth}"
            ratios, predicted = [], None
            n_convs = 0
            for seed in range(seeds):
                model = _build(name, seed)
                if padding == "circular":
                    for m in model.modules():
                        if isinstance(m, nn.Conv2d):
                            m.padding_mode = "circular"
                gen = torch.Generator().manual_seed(SEED_BASE + seed)
                x = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64)
                records = probe_model(model, x, modules=_is_conv, seed=seed)
                n_convs = len(records)
                b0, b1 = records[0].grad_log_second_moment, records[-1].grad_log_second_moment
                ratios.append(0.5 * (b0 - b1))
                if kind == "plain" and predicted is None:
                    chain = [shape for _, shape in conv_chain(model, x)]
                    predicted = 0.5 * theory.bn_chain_log_grad_ratio(chain)
            arr = np.array(ratios)
            se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
            reference = None
            if kind == "resnet":
                blocks = (depth - 2) // 2
                ref = theory.predict(
                    Setting(depth=blocks, width=16, init="he_fan_in", residual="on", bn=True)
                )
                reference = ref.log_first_to_last_grad  # RMS units
            points.append(
                ModelPoint(
                    name=name, kind=kind, depth=depth, convs=n_convs,
                    log_ratio=float(arr.mean()), log_ratio_se=se,
                    predicted_log_ratio=predicted, reference_log_ratio=reference,
                    tolerance=0.5 * 0.05 * (n_convs - 1) if kind == "plain" else None,
                    per_seed=[float(r) for r in ratios],
                )
            )
    return points


# --- torchvision-compatible ResNets -----------------------------------------------------------

_BLOCK = re.compile(r"^layer\d+\.\d+$")


@dataclass
class ZeroInitReport:
    name: str
    identity_blocks: dict[str, bool]  # no downsample: block(x) == x exactly
    downsample_blocks: dict[str, bool]  # block(x) == ReLU(downsample(x)) exactly
    zero_grad: dict[str, bool]  # branch params before the last BN: grad exactly 0
    last_bn_grad_nonzero: dict[str, bool]  # last BN gamma and beta: some grad != 0

    @property
    def ok(self) -> bool:
        return all(
            all(d.values())
            for d in (
                self.identity_blocks, self.downsample_blocks, self.zero_grad,
                self.last_bn_grad_nonzero,
            )
        )


def zero_init_residual_check(
    name: str = "resnet18", *, size: int = 64, batch: int = 2, seed: int = 0
) -> ZeroInitReport:
    """P10 on ``cnn_models.get_model(name, zero_init_residual=True)`` (train mode, float64)."""
    model = _build(name, seed, zero_init_residual=True)
    named = dict(model.named_modules())
    blocks = [n for n in named if _BLOCK.match(n)]
    identity: dict[str, bool] = {}
    down: dict[str, bool] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor,
             name: str) -> None:
        x = inputs[0]
        ds = getattr(module, "downsample", None)
        if ds is None:
            identity[name] = torch.equal(output, x)
        else:
            with torch.no_grad():
                down[name] = torch.equal(output, torch.relu(ds(x)))

    handles = [
        named[n].register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n)) for n in blocks
    ]
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    x = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64)
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (g * out).sum().backward()
    zero_grad: dict[str, bool] = {}
    last_nonzero: dict[str, bool] = {}
    for n in blocks:
        block = named[n]
        last = "bn3" if hasattr(block, "bn3") else "bn2"
        branch = ["conv1", "bn1", "conv2"] + (["bn2", "conv3"] if last == "bn3" else [])
        for part in branch:
            for pname, p in getattr(block, part).named_parameters():
                grad = p.grad
                zero_grad[f"{n}.{part}.{pname}"] = grad is None or not bool(grad.any())
        for pname, p in getattr(block, last).named_parameters():
            last_nonzero[f"{n}.{last}.{pname}"] = p.grad is not None and bool(p.grad.any())
    return ZeroInitReport(name, identity, down, zero_grad, last_nonzero)


def resnet_bn_scale_invariance(
    name: str = "resnet18", *, size: int = 64, batch: int = 4, seed: int = 0
) -> ScaleInvariance:
    """P11 on a registered model: every conv re-drawn as N(0, 1) (same direction), train mode."""
    model = _build(name, seed)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    x = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64)
    return bn_scale_invariance(model, x, convs=convs, scheme="naive", seed=seed)
