"""Which conv layers of an arbitrary model the init-time laws reach, and what they predict.

A model is a graph, not a chain; the laws of ``theory.py`` hold along two kinds of links:

* **conv -> BN -> ReLU -> conv** (train mode, BN at gamma 1 / beta 0): the chain law of
  ``theory``, generalised to changing widths, strides and groups as in ``theory.bn_chain_log_grad_ratio``
  (Yang et al. 2019 for the growth; the constant pi/(pi-1) derived in ``theory``). Forward,
  the conv after the link sees ReLU(N(0, 1)) per channel, second moment 1/2, whatever came
  before: E[y^2] = n * E[w^2] / 2 (He et al. 2015, Eq. (7) with a normalised input).
  Backward, BN divides the gradient by the per-channel variance of the conv output before it.
* **conv -> ReLU -> conv** (no BN): He et al. 2015, Eqs. (7) and (12): forward x n*E[w^2]/2,
  backward x n_out*E[w^2]/2 per link.

A conv that reads the model's input directly (N(0, 1) here) is reached forward too. Anything
else (a sum with a shortcut, a pooling, a concatenation, a functional ReLU) is outside the
laws' reach: ``ConvSite.source`` is then ``"other"`` and that conv starts a new segment.

How links are found, for any ``nn.Module``: forward pre-hooks and hooks on every Conv2d,
BatchNorm2d and ReLU / ReLU6 module record the autograd node that produced each input and
output (tensors are followed by their ``grad_fn``, which in-place ReLUs also update), and a
walk over the autograd graph counts each node's consumers. A link counts only when each
tensor on it has exactly one consumer, so a ReLU output that also feeds a shortcut (the
ResNet stem, every post-activation block output) is not taken for a chain.

Zero padding: a conv's output position sees only the taps inside the input.
``ConvSite.valid_pairs`` counts the (output position, tap) pairs that fall inside, so the
forward law uses the mean fraction of valid taps per output position and the backward law the
mean number of (output, tap) pairs that read each input position (k^2 / s^2 without borders).
That is exact for an input whose second moment is the same at every position, and a first
order correction otherwise.

Predictions are per seed (each net's own weights, E[w^2] read from them) and, where a law is
relative, anchored on that seed's measurement: the backward profile of a chain starts from
the measured gradient at its last conv, and the forward profile of a conv -> ReLU chain from
its first conv when that conv's input is not reached (``SitePrediction.forward_anchored``,
``SitePrediction.anchor``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from .probes import LayerStats
from .theory import RELU_VAR_FRACTION

__all__ = ["ConvSite", "SitePrediction", "SiteTracer", "predict_sites"]

_RELUS = (nn.ReLU, nn.ReLU6)
# per-channel variance of ReLU(z), z ~ N(0, 1): E[ReLU(z)^2] - E[ReLU(z)]^2 = (1 - 1/pi) / 2
RELU_BN_VARIANCE = 0.5 * RELU_VAR_FRACTION
RELU_BN_MEAN_SQUARE = 0.5 / math.pi  # E[ReLU(z)]^2 = 1 / (2 pi)
# Weight of the zero-padding term of ``ConvSite.channel_variance`` [fitted]. With weight 1 the
# term is exact in expectation for an input whose mean is the same at every position inside
# the map; the input's own mean is not (it comes through the same borders), and weight 1
# overstates the effect as much as weight 0 (the circular-padding law) understates it. 1/2 fits
# cifar_plain20 / 56 / 110 at 16 and 32 px (3 seeds, batch 8): median |error| of the
# gradient profile 0.04-0.23 in log over 18-108 links, against 0.37-3.4 with weight 0 and
# 0.10-2.1 with weight 1. A fitted constant, not a law: the report says so.
BORDER_WEIGHT = 0.5


@dataclass(frozen=True)
class ConvSite:
    """One conv call as the laws see it."""

    key: str  # the probe record's key (``name`` or ``name#call``)
    source: str  # "input" | "bn_relu" | "relu" | "other": what its input is
    prev: str | None  # the conv whose ReLU([BN]) output is this conv's input (single-consumer link)
    m2_weight: float  # E[w^2] of this net's weights
    m2_bias: float  # E[b^2] (0 without bias)
    fan_in: int  # (C_in / groups) * k_h * k_w
    out_per_group: int  # C_out / groups: the outputs each input channel feeds
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel_area: int
    valid_pairs: int  # (output position, tap) pairs inside the input (zero padding)
    tap_square_sum: float  # sum over taps t of f_t^2, f_t = fraction of output positions where t is inside
    batch: int
    bn_eps: float = 0.0  # eps of the BN after this conv, when it starts a link

    @property
    def forward_fraction(self) -> float:
        """Mean fraction of an output position's taps that fall inside the input."""
        return self.valid_pairs / (self.out_hw[0] * self.out_hw[1] * self.kernel_area)

    def channel_variance(self, input_variance: float, input_mean_square: float) -> float:
        """Predicted per-channel variance of the output (over batch and positions), for an
        input whose every element has variance ``input_variance`` and mean ``sqrt(input_mean_square)``:
        n' E[w^2] (Var[x] sum_t f_t + b E[x]^2 sum_t f_t (1 - f_t)), n' = C_in / groups,
        b = ``BORDER_WEIGHT``. The second term is zero padding's: a border position sums fewer
        taps of the same weights, so its mean differs from an interior one's and that spread
        adds to the channel's variance (see ``BORDER_WEIGHT``)."""
        c_in = self.fan_in // self.kernel_area
        tap_sum = self.valid_pairs / (self.out_hw[0] * self.out_hw[1])
        border = BORDER_WEIGHT * input_mean_square * (tap_sum - self.tap_square_sum)
        return c_in * self.m2_weight * (input_variance * tap_sum + border)

    @property
    def taps_per_input(self) -> float:
        """Mean number of (output position, tap) pairs reading one input position."""
        return self.valid_pairs / (self.in_hw[0] * self.in_hw[1])


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        d, k = conv.dilation, conv.kernel_size  # 'same': the left pad is floor(total / 2)
        return ((d[0] * (k[0] - 1)) // 2, (d[1] * (k[1] - 1)) // 2)
    return (int(conv.padding[0]), int(conv.padding[1]))


def _tap_counts(size: int, out: int, k: int, stride: int, pad: int, dil: int, zero: bool) -> list[int]:
    """Per tap of one kernel dimension: at how many of the ``out`` output positions it falls inside."""
    if not zero:
        return [out] * k
    return [sum(1 for o in range(out) if 0 <= o * stride - pad + t * dil < size) for t in range(k)]


def _site(conv: nn.Conv2d, x: torch.Tensor, y: torch.Tensor, key: str) -> dict[str, Any]:
    w = conv.weight.detach().to(torch.float64)
    b = conv.bias.detach().to(torch.float64) if conv.bias is not None else None
    h, wd = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = int(y.shape[-2]), int(y.shape[-1])
    kh, kw = conv.kernel_size
    ph, pw = _padding(conv)
    zero = conv.padding_mode == "zeros"
    rows = _tap_counts(h, oh, kh, conv.stride[0], ph, conv.dilation[0], zero)
    cols = _tap_counts(wd, ow, kw, conv.stride[1], pw, conv.dilation[1], zero)
    # taps are (row, col) pairs: the counts and the squared fractions factor over the two dims
    square = sum((c / oh) ** 2 for c in rows) * sum((c / ow) ** 2 for c in cols)
    return {
        "key": key,
        "m2_weight": float(w.pow(2).mean()),
        "m2_bias": float(b.pow(2).mean()) if b is not None else 0.0,
        "fan_in": (conv.in_channels // conv.groups) * kh * kw,
        "out_per_group": conv.out_channels // conv.groups,
        "in_hw": (h, wd),
        "out_hw": (oh, ow),
        "kernel_area": kh * kw,
        "valid_pairs": sum(rows) * sum(cols),
        "tap_square_sum": square,
        "batch": int(y.shape[0]),
    }


def _fresh_bn(bn: nn.Module) -> bool:
    """gamma 1 and beta 0 (or no affine): the laws assume BN's output is N(0, 1) per channel."""
    w, b = getattr(bn, "weight", None), getattr(bn, "bias", None)
    return (w is None or bool(torch.all(w == 1))) and (b is None or not bool(torch.any(b)))


class SiteTracer:
    """Record, during one forward pass of ``model`` on ``x``, what feeds every Conv2d call.

    Use around the forward pass; call ``sites(outputs)`` after it (before backward, while the
    autograd graph is alive). Hooks only read; the model computes exactly what it would.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.model, self.x = model, x
        self._handles: list[Any] = []
        self._calls: Counter[str] = Counter()
        self._conv_out: dict[Any, str] = {}  # autograd node of a conv output -> site key
        self._bn_out: dict[Any, tuple[str, Any, float, bool]] = {}  # node -> (conv key, its node, eps, fresh)
        self._relu_out: dict[Any, tuple[str, Any, Any, float, bool]] = {}
        self._pending: dict[int, Any] = {}  # id(module) -> input node seen by the pre-hook
        self._raw: list[dict[str, Any]] = []

    def __enter__(self) -> SiteTracer:
        for name, m in self.model.named_modules():
            if isinstance(m, (nn.Conv2d, _BatchNorm, *_RELUS)):
                self._handles.append(m.register_forward_pre_hook(self._pre))
                self._handles.append(m.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, module: nn.Module, inputs: Any) -> None:
        x = inputs[0] if inputs else None
        self._pending[id(module)] = (x.grad_fn, x is self.x) if isinstance(x, torch.Tensor) else (None, False)

    def _make_hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or not inputs or not isinstance(inputs[0], torch.Tensor):
                return
            in_node, is_input = self._pending.pop(id(module), (None, False))
            out_node = output.grad_fn
            if isinstance(module, nn.Conv2d):
                call = self._calls[name]
                self._calls[name] += 1
                key = f"{name}#{call}" if call else name
                with torch.no_grad():
                    raw = _site(module, inputs[0], output, key)
                raw["in_node"], raw["is_input"], raw["out_node"] = in_node, is_input, out_node
                self._raw.append(raw)
                if out_node is not None:
                    self._conv_out[out_node] = key
            elif isinstance(module, _BatchNorm):
                if in_node in self._conv_out and out_node is not None:
                    self._bn_out[out_node] = (self._conv_out[in_node], in_node, float(module.eps), _fresh_bn(module))
            elif out_node is not None:  # ReLU / ReLU6
                if in_node in self._bn_out:
                    conv, conv_node, eps, fresh = self._bn_out[in_node]
                    self._relu_out[out_node] = (conv, in_node, conv_node, eps, fresh)
                elif in_node in self._conv_out:
                    conv = self._conv_out[in_node]
                    self._relu_out[out_node] = (conv, None, in_node, 0.0, True)

        return hook

    def sites(self, outputs: Iterable[torch.Tensor]) -> list[ConvSite]:
        """Every conv call in forward order, with its source and link (see the module doc)."""
        consumers = _consumers(t.grad_fn for t in outputs if isinstance(t, torch.Tensor))
        out = []
        for raw in self._raw:
            node = raw.pop("in_node")
            is_input = raw.pop("is_input")
            raw.pop("out_node")
            source, prev, eps = "other", None, 0.0
            if is_input:
                source = "input"
            elif node in self._relu_out:
                conv, bn_node, conv_node, bn_eps, fresh = self._relu_out[node]
                chain = [node, conv_node] + ([bn_node] if bn_node is not None else [])
                if fresh and all(consumers.get(n, 0) == 1 for n in chain):
                    source, prev, eps = ("bn_relu" if bn_node is not None else "relu"), conv, bn_eps
            out.append(ConvSite(source=source, prev=prev, **raw, bn_eps=eps))
        return out


def _consumers(roots: Iterable[Any]) -> dict[Any, int]:
    """For every autograd node reachable from ``roots``: how many nodes take its output."""
    count: Counter[Any] = Counter()
    seen: set[Any] = set()
    stack = [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for nxt, _ in node.next_functions:
            if nxt is not None:
                count[nxt] += 1
                stack.append(nxt)
    return dict(count)


@dataclass(frozen=True)
class SitePrediction:
    """Predicted log second moments at one conv output (nan where the laws do not reach)."""

    key: str
    forward: float  # log E[y^2]
    backward: float  # log E[(dL/dy)^2]
    forward_anchored: bool  # relative to a measured value of this seed
    anchor: bool  # the backward value is this seed's measurement (the last conv of a chain)
    law: str


def _log(v: float) -> float:
    return math.log(v) if v > 0 else math.nan


def predict_sites(sites: Sequence[ConvSite], records: Sequence[LayerStats]) -> dict[str, SitePrediction]:
    """Per-conv predictions for one seed, from its sites and its probe records (the anchors)."""
    by_key = {s.key: s for s in sites}
    meas = {r.key: r for r in records}
    fwd: dict[str, float] = {}
    fwd_anch: dict[str, bool] = {}
    chan_var: dict[str, tuple[float, bool]] = {}  # predicted per-channel variance of y, anchored?
    laws: dict[str, str] = {}
    for s in sites:  # forward order
        gain = s.fan_in * s.m2_weight * s.forward_fraction
        if s.source == "input":
            fwd[s.key], fwd_anch[s.key] = _log(gain + s.m2_bias), False
            chan_var[s.key] = (s.channel_variance(1.0, 0.0), False)  # N(0, 1) input
            laws[s.key] = "input: E[y^2] = n E[w^2]"
        elif s.source == "bn_relu":
            fwd[s.key], fwd_anch[s.key] = _log(0.5 * gain + s.m2_bias), False
            chan_var[s.key] = (s.channel_variance(RELU_BN_VARIANCE, RELU_BN_MEAN_SQUARE), False)
            laws[s.key] = "conv-BN-ReLU link: E[y^2] = n E[w^2] / 2"
        elif s.source == "relu" and s.prev is not None:
            prev_log = fwd.get(s.prev, math.nan)
            anchored = fwd_anch.get(s.prev, True) or math.isnan(prev_log)
            if math.isnan(prev_log) and s.prev in meas:
                prev_log = meas[s.prev].act_log_second_moment
            q = math.exp(prev_log) if math.isfinite(prev_log) else math.nan
            fwd[s.key], fwd_anch[s.key] = _log(0.5 * gain * q + s.m2_bias), anchored
            chan_var[s.key] = (s.channel_variance(q * RELU_BN_VARIANCE, q * RELU_BN_MEAN_SQUARE), anchored)
            laws[s.key] = "conv-ReLU link: x n E[w^2] / 2"
        else:
            fwd[s.key], fwd_anch[s.key] = math.nan, False
            laws[s.key] = "outside the laws' reach"
    # backward: walk each chain from its last conv (no conv links from it) towards the input
    nxt = {s.prev: s.key for s in sites if s.prev is not None}
    bwd: dict[str, float] = {s.key: math.nan for s in sites}
    anchors: set[str] = set()
    for s in reversed(sites):
        if s.key in nxt or s.prev is None:
            continue  # not the last conv of a chain, or a chain of one conv
        cur = s
        value = meas[s.key].grad_log_second_moment if s.key in meas else math.nan
        bwd[s.key] = value
        anchors.add(s.key)
        while cur.prev is not None and math.isfinite(value):
            prev = by_key[cur.prev]
            back = 0.5 * cur.m2_weight * cur.out_per_group * cur.taps_per_input  # conv^T, then ReLU'
            if cur.source == "bn_relu":
                var, _ = chan_var.get(prev.key, (math.nan, True))
                if not math.isfinite(var) and prev.key in meas:
                    var = meas[prev.key].act_channel_variance  # prev's input is outside the reach
                m = prev.batch * prev.out_hw[0] * prev.out_hw[1]  # BN removes 2 of m directions
                back *= max(1.0 - 2.0 / m, 0.0) / (var + cur.bn_eps)
            value = value + _log(back)
            bwd[prev.key] = value
            cur = prev
    return {
        s.key: SitePrediction(
            key=s.key, forward=fwd[s.key], backward=bwd[s.key], forward_anchored=fwd_anch[s.key],
            anchor=s.key in anchors, law=laws[s.key],
        )
        for s in sites
    }
