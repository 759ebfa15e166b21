"""Forward/backward probes: per-layer activation and activation-gradient statistics.

Why activation gradients: in a constant-width net the weight-gradient norms are flat whatever
the init (Glorot & Bengio 2010, section 4.2.1), so vanishing or exploding
shows in dL/dh_l, the gradient with respect to the layer's output, not in dL/dW_l.

Mechanism: a forward hook on each selected module computes statistics of the module's output
on the spot (in float64, under ``no_grad``) and registers a *tensor* hook on that output; the
tensor hook receives dL/d(output) during backward. Both hooks return ``None``, so the model's
outputs and gradients are unchanged (tests check bitwise equality). Tensor hooks rather than
``register_full_backward_hook``: they do not wrap the module's outputs, so in-place ops after
the module (torchvision's ``ReLU(inplace=True)``) keep working; per the PyTorch autograd notes,
a hook registered before an in-place change receives the gradient with respect to the value
the module returned.

A module called several times in one forward (torchvision's BasicBlock reuses ``self.relu``)
gets one record per call: ``LayerStats.call`` counts them, ``key`` reads ``name#call``.

    >>> with Probe(model, modules=["layer1.0", "layer2.0"]) as probe:
    ...     out = model(x)
    ...     (g * out).sum().backward()
    >>> [(r.key, r.act_second_moment, r.grad_second_moment) for r in probe.records]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

__all__ = ["LayerStats", "Probe", "default_selector", "log_mean_square"]


def log_mean_square(t: torch.Tensor) -> float:
    """log E[t^2] over all elements, computed without overflow or underflow.

    Returns ``-inf`` for an all-zero tensor and ``nan`` when ``t`` holds a non-finite value.
    Works in float64 after scaling by max|t|, so it is exact-ish even where t**2 would leave
    the float64 range (naive init at depth 100+).
    """
    t = t.detach().to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        return math.nan
    peak = float(t.abs().max()) if t.numel() else 0.0
    if peak == 0.0:
        return -math.inf
    return 2.0 * math.log(peak) + math.log(float(((t / peak) ** 2).mean()))


def _exp(x: float) -> float:
    if math.isnan(x):
        return math.nan
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


@dataclass
class LayerStats:
    """Statistics of one module output (one call) and of the gradient with respect to it."""

    name: str
    call: int
    index: int  # position in the forward order of all records of this pass
    shape: tuple[int, ...]
    act_log_second_moment: float  # log E[h^2]
    act_second_moment: float  # E[h^2] (inf if beyond float64; use the log)
    act_mean: float
    act_variance: float  # over all elements: E[h^2] - E[h]^2
    act_channel_variance: float  # mean over channels of the per-channel batch variance (BN's)
    act_finite: bool
    act_zero_fraction: float
    grad_log_second_moment: float = math.nan  # log E[(dL/dh)^2]
    grad_second_moment: float = math.nan
    grad_norm: float = math.nan  # Frobenius norm over the whole batch tensor
    grad_finite: bool = False
    grad_seen: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}#{self.call}" if self.call else self.name

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = "x".join(str(s) for s in self.shape)
        return out


def _act_stats(t: torch.Tensor) -> dict[str, Any]:
    t64 = t.detach().to(torch.float64)
    finite = bool(torch.isfinite(t64).all())
    log_ms = log_mean_square(t64)
    if finite and t64.numel():
        peak = float(t64.abs().max()) or 1.0
        scaled = t64 / peak  # stats of the scaled tensor, rescaled: no overflow at any depth
        mean = float(scaled.mean()) * peak
        var = float(scaled.var(unbiased=False)) * peak * peak if t64.numel() > 1 else 0.0
        if t64.dim() >= 2:
            dims = [d for d in range(t64.dim()) if d != 1]  # every dim but channels
            chan = float(scaled.var(dim=dims, unbiased=False).mean()) * peak * peak
        else:
            chan = var
        zero = float((t64 == 0).to(torch.float64).mean())
    else:
        mean = var = chan = math.nan
        zero = float((t64 == 0).to(torch.float64).mean()) if t64.numel() else math.nan
    return {
        "act_log_second_moment": log_ms,
        "act_second_moment": _exp(log_ms),
        "act_mean": mean,
        "act_variance": var,
        "act_channel_variance": chan,
        "act_finite": finite,
        "act_zero_fraction": zero,
    }


def default_selector(name: str, module: nn.Module) -> bool:
    """Every Conv2d and Linear: their outputs are the pre-activations."""
    return isinstance(module, (nn.Conv2d, nn.Linear))


Selector = Callable[[str, nn.Module], bool]


class Probe:
    """Record per-layer statistics of a model's forward and backward pass.

    ``modules``: ``None`` (every Conv2d and Linear), an iterable of qualified module names
    (``""`` is the model itself), or a predicate ``(name, module) -> bool``. Unknown names
    raise ``ValueError`` listing them. Use as a context manager; ``records`` fills during the
    forward pass (activation stats) and the backward pass (gradient stats). ``reset()`` clears
    the records between passes. Modules whose output is not a tensor are skipped.
    """

    def __init__(
        self, model: nn.Module, modules: Iterable[str] | Selector | None = None
    ) -> None:
        self.model = model
        named = dict(model.named_modules())
        if modules is None:
            modules = default_selector
        if callable(modules):
            selector = modules
            self.names = [n for n, m in named.items() if selector(n, m)]
        else:
            self.names = list(modules)
            missing = [n for n in self.names if n not in named]
            if missing:
                raise ValueError(
                    f"Probe: modules {missing} not found in {type(model).__name__} "
                    f"(it has e.g. {list(named)[1:6]})"
                )
        self._modules = [(n, named[n]) for n in self.names]
        self._handles: list[Any] = []  # forward hooks on modules
        self._tensor_handles: list[Any] = []  # gradient hooks on this pass's outputs
        self.records: list[LayerStats] = []
        self._calls: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Probe:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def attach(self) -> None:
        if self._handles:
            return
        for name, module in self._modules:
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))

    def detach(self) -> None:
        for handle in self._handles + self._tensor_handles:
            handle.remove()
        self._handles.clear()
        self._tensor_handles.clear()

    def reset(self) -> None:
        for handle in self._tensor_handles:
            handle.remove()
        self._tensor_handles.clear()
        self.records = []
        self._calls = {}

    # -- hooks ---------------------------------------------------------------------------
    def _forward_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                return None
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            with torch.no_grad():
                record = LayerStats(
                    name=name,
                    call=call,
                    index=len(self.records),
                    shape=tuple(output.shape),
                    **_act_stats(output),
                )
            self.records.append(record)
            if output.requires_grad:
                self._tensor_handles.append(output.register_hook(self._grad_hook(record)))
            return None

        return hook

    @staticmethod
    def _grad_hook(record: LayerStats) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                g = grad.detach().to(torch.float64)
                log_ms = log_mean_square(g)
                record.grad_log_second_moment = log_ms
                record.grad_second_moment = _exp(log_ms)
                record.grad_finite = bool(torch.isfinite(g).all())
                if record.grad_finite:
                    peak = float(g.abs().max()) or 1.0
                    record.grad_norm = float(torch.linalg.vector_norm(g / peak)) * peak
                record.grad_seen = True
            return None

        return hook

    # -- views ---------------------------------------------------------------------------
    def by_key(self) -> dict[str, LayerStats]:
        return {r.key: r for r in self.records}
