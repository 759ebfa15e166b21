"""Measuring instantiated modules for the claims: counts and shapes on meta, receptive fields
by gradient, MACs by FlopCounterMode. Thin wrappers over ``conformance.layer_table`` / ``flops``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..layer_table import build_on_meta, meta_inputs
from ..macs import count_flops

__all__ = ["meta_macs", "torchvision_factory", "meta_out_shape", "meta_params", "meta_spatial_trace",
           "receptive_field_by_gradient"]

Factory = Callable[[], nn.Module]


def torchvision_factory(name: str, **kwargs: object) -> Factory:
    """A zero-argument factory for torchvision's builder ``name`` (``weights=None``)."""
    import torchvision.models as tvm

    return lambda: tvm.get_model(name, weights=None, **kwargs)


def meta_params(factory: Factory) -> int:
    """Parameter count of the module ``factory`` builds (on meta: nothing allocated)."""
    return sum(p.numel() for p in build_on_meta(factory).parameters())


def meta_out_shape(factory: Factory, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample output shape of one eval-mode forward pass on meta."""
    model = build_on_meta(factory).eval()
    with torch.no_grad():
        out = model(*meta_inputs(input_size, batch_size=1))
    return tuple(out.shape[1:])


def meta_spatial_trace(factory: Factory, input_size: tuple[int, int, int],
                       kinds: tuple[type[nn.Module], ...]) -> list[int]:
    """Heights of the outputs of every module of ``kinds``, in call order, without repeats."""
    model = build_on_meta(factory).eval()
    heights: list[int] = [input_size[1]]

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        if out.shape[2] != heights[-1]:
            heights.append(int(out.shape[2]))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(*meta_inputs(input_size, batch_size=1))
    finally:
        for h in handles:
            h.remove()
    return heights


def meta_macs(factory: Factory, input_size: tuple[int, int, int]) -> int:
    """Multiply-accumulates per sample (FlopCounterMode FLOPs / 2), eval mode, on meta."""
    return count_flops(factory, input_size).macs


def receptive_field_by_gradient(module: nn.Module, channels: int, size: int = 21) -> int:
    """Height of the input window that reaches the centre output pixel (convs and ReLUs only:
    a max pool would route the gradient to one tied input).

    Every weight is set to 1 and every bias to 0 (float64), so no contribution cancels; the
    gradient of the centre output with respect to the input is non-zero exactly on the window.
    """
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(1.0 if p.dim() > 1 else 0.0)
    x = torch.ones(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    out = module(x)
    h, w = out.shape[2] // 2, out.shape[3] // 2
    out[:, :, h, w].sum().backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    return int(rows.max() - rows.min() + 1)
