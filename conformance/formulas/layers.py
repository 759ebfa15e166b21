"""Closed forms for single layers, and a tracer that chains them into a layer plan.

Every number here comes from the layer's hyper-parameters and the input size alone:

* conv output size ``floor((H + 2p - d(k-1) - 1) / s) + 1`` (PyTorch ``Conv2d`` docs);
  pooling adds ``ceil_mode``, where the last window must start inside the input or the
  left padding (PyTorch ``MaxPool2d`` docs / ATen ``pooling_output_shape``);
* conv parameters ``k_h k_w (C_in / groups) C_out (+ C_out)``; BatchNorm ``2C``;
  linear ``in * out (+ out)``;
* MACs (multiply-accumulates) of conv and linear only, bias excluded: the convention of
  torchvision's ``_ops`` metadata and of the MobileNet paper's "mult-adds";
* receptive field and jump along a chain: ``r += (k_eff - 1) * j``, ``j *= s`` with
  ``k_eff = d (k - 1) + 1`` (Araujo et al., Distill 2019, Eq. 2 and 3).

A family formula (``vgg.py``, ``resnet.py``, ...) replays an architecture's config through a
``Tracer``; the result is a list of ``Layer`` rows whose totals are the oracle's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

__all__ = [
    "Layer",
    "Plan",
    "Tracer",
    "bn_params",
    "conv2d_macs",
    "conv2d_out",
    "conv2d_params",
    "linear_macs",
    "linear_params",
    "pair",
    "pool2d_out",
]

IntPair = int | tuple[int, int]


def pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv2d_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (floor rule)."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out <= 0:
        raise ValueError(
            f"input of size {size} is too small for kernel {kernel} (dilation {dilation}, "
            f"padding {padding}, stride {stride}): output size would be {out}"
        )
    return out


def pool2d_out(
    size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length of max/avg pooling along one axis, with PyTorch's ceil_mode rule."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    # ceil_mode: the last window must start inside the input or the left padding
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    if out <= 0:
        raise ValueError(f"input of size {size} is too small for pooling kernel {kernel}")
    return out


def conv2d_params(c_in: int, c_out: int, kernel: IntPair, groups: int = 1, bias: bool = True) -> int:
    kh, kw = pair(kernel)
    if c_in % groups or c_out % groups:
        raise ValueError(f"channels {c_in}->{c_out} are not divisible by groups={groups}")
    return kh * kw * (c_in // groups) * c_out + (c_out if bias else 0)


def conv2d_macs(c_in: int, c_out: int, kernel: IntPair, h_out: int, w_out: int, groups: int = 1) -> int:
    kh, kw = pair(kernel)
    return kh * kw * (c_in // groups) * c_out * h_out * w_out


def bn_params(channels: int, affine: bool = True) -> int:
    return 2 * channels if affine else 0


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def linear_macs(n_in: int, n_out: int) -> int:
    return n_in * n_out


class Layer(NamedTuple):
    """One row of a closed-form plan: what a module should be, computed from the config.

    A named tuple rather than a dataclass: plans of deep nets have hundreds of rows and are
    rebuilt for every check, and a tuple is built several times faster.
    """

    name: str  # qualified module name in the reference layout, e.g. "layer3.1.conv2"
    kind: str  # module class name: "Conv2d", "BatchNorm2d", "Linear", "MaxPool2d", ...
    out_shape: tuple[int, ...]  # per sample: (C, H, W) or (F,)
    params: int = 0
    macs: int = 0


@dataclass
class Plan:
    layers: list[Layer] = field(default_factory=list)
    out_shape: tuple[int, ...] = ()
    receptive_field: int = 1
    jump: int = 1

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for layer in self.layers:
            row = out.setdefault(layer.kind, {"count": 0, "params": 0, "macs": 0})
            row["count"] += 1
            row["params"] += layer.params
            row["macs"] += layer.macs
        return out


@dataclass(slots=True)
class Tracer:
    """Walks a config layer by layer, tracking shape, receptive field and jump.

    ``shape`` is (C, H, W) until ``flatten``/``linear`` make it (F,). Receptive field and
    jump are tracked along the traced path (the height axis); ``fork`` starts a branch from
    the current state and ``join_concat``/``join_add`` merge branches, keeping the largest
    receptive field, as the union of the branches' windows.
    """

    shape: tuple[int, ...]
    plan: Plan = field(default_factory=Plan)
    rf: int = 1
    jump: int = 1
    prefix: str = ""

    # --- helpers -------------------------------------------------------------------------
    def _name(self, name: str) -> str:
        return f"{self.prefix}{name}" if self.prefix else name

    def _add(self, name: str, kind: str, params: int = 0, macs: int = 0) -> None:
        plan = self.plan
        plan.layers.append(Layer(self.prefix + name, kind, self.shape, params, macs))
        plan.out_shape, plan.receptive_field, plan.jump = self.shape, self.rf, self.jump

    def _grow(self, kernel: int, stride: int, dilation: int = 1) -> None:
        self.rf += (dilation * (kernel - 1)) * self.jump
        self.jump *= stride

    def scoped(self, prefix: str) -> Tracer:
        """The same tracer (shared plan and state) with names under ``prefix``."""
        t = Tracer(self.shape, self.plan, self.rf, self.jump, self._name(prefix))
        return t

    def sync(self, other: Tracer) -> Tracer:
        """Take shape and receptive field from a scoped/forked tracer that ran ahead."""
        self.shape, self.rf, self.jump = other.shape, other.rf, other.jump
        return self

    def fork(self, prefix: str = "") -> Tracer:
        return Tracer(self.shape, self.plan, self.rf, self.jump, self._name(prefix))

    def join_concat(self, branches: list[Tracer]) -> Tracer:
        shapes = [b.shape for b in branches]
        if len({s[1:] for s in shapes}) != 1:
            raise ValueError(f"cannot concatenate branches with spatial shapes {shapes}")
        self.shape = (sum(s[0] for s in shapes), *shapes[0][1:])
        self.rf = max(b.rf for b in branches)
        self.jump = max(b.jump for b in branches)
        return self

    def join_add(self, branches: list[Tracer]) -> Tracer:
        shapes = {b.shape for b in branches}
        if len(shapes) != 1:
            raise ValueError(f"cannot add branches of shapes {sorted(shapes)}")
        self.shape = branches[0].shape
        self.rf = max(b.rf for b in branches)
        self.jump = max(b.jump for b in branches)
        return self

    # --- layers --------------------------------------------------------------------------
    def conv(
        self,
        name: str,
        out_channels: int,
        kernel: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntPair = 1,
    ) -> Tracer:
        c, h, w = self.shape
        kh, kw = pair(kernel)
        sh, sw = pair(stride)
        ph, pw = pair(padding)
        dh, dw = pair(dilation)
        ho, wo = conv2d_out(h, kh, sh, ph, dh), conv2d_out(w, kw, sw, pw, dw)
        params = conv2d_params(c, out_channels, (kh, kw), groups, bias)
        self.shape = (out_channels, ho, wo)
        self._grow(kh, sh, dh)
        self._add(name, "Conv2d", params, conv2d_macs(c, out_channels, (kh, kw), ho, wo, groups))
        return self

    def bn(self, name: str) -> Tracer:
        self._add(name, "BatchNorm2d", bn_params(self.shape[0]))
        return self

    def act(self, name: str, kind: str = "ReLU") -> Tracer:
        self._add(name, kind)
        return self

    def _pool(self, name: str | None, kind: str, kernel: IntPair, stride: IntPair | None, padding: IntPair,
              ceil_mode: bool) -> Tracer:
        c, h, w = self.shape
        (kh, kw), (ph, pw) = pair(kernel), pair(padding)
        sh, sw = pair(stride if stride is not None else kernel)
        self.shape = (c, pool2d_out(h, kh, sh, ph, 1, ceil_mode), pool2d_out(w, kw, sw, pw, 1, ceil_mode))
        self._grow(kh, sh)
        if name is not None:
            self._add(name, kind)
        return self

    def maxpool(self, name: str, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                ceil_mode: bool = False) -> Tracer:
        return self._pool(name, "MaxPool2d", kernel, stride, padding, ceil_mode)

    def avgpool(self, name: str, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                ceil_mode: bool = False) -> Tracer:
        return self._pool(name, "AvgPool2d", kernel, stride, padding, ceil_mode)

    def adaptive_avgpool(self, name: str, output: IntPair) -> Tracer:
        c, h, w = self.shape
        oh, ow = pair(output)
        # each output cell averages a window of up to ceil(H/oh) inputs; for H divisible by
        # oh it is exactly a pool with kernel = stride = H/oh.
        self.rf += (math.ceil(h / oh) - 1) * self.jump
        self.jump *= max(1, h // oh)
        self.shape = (c, oh, ow)
        self._add(name, "AdaptiveAvgPool2d")
        return self

    # --- ops a forward writes as function calls: no module runs, so no row is added --------
    def functional_pool(self, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                        ceil_mode: bool = False) -> Tracer:
        """``F.max_pool2d`` / ``F.avg_pool2d`` called in ``forward``, or a strided slice
        ``x[:, :, ::s, ::s]`` (a 1x1 window of stride s): shape, receptive field and jump move
        as through the pooling module, and no row is added."""
        return self._pool(None, "", kernel, stride, padding, ceil_mode)

    def functional_global_pool(self) -> Tracer:
        """``F.adaptive_avg_pool2d(x, 1)`` or ``x.mean((2, 3), keepdim=True)`` in ``forward``:
        one window over the whole map, shape (C, 1, 1), no row."""
        c, h, _ = self.shape
        self.rf += (h - 1) * self.jump
        self.jump *= h
        self.shape = (c, 1, 1)
        return self

    def channels(self, n: int) -> Tracer:
        """A function call that changes the channel count only (``F.pad`` of zero channels, as
        the CIFAR ResNets' option-A shortcut does), no row."""
        self.shape = (n, *self.shape[1:])
        return self

    def join_scale(self, gate: Tracer) -> Tracer:
        """``x * gate(x)`` (squeeze-and-excitation): ``x``'s shape, and a receptive field that
        covers the gate branch's (a global pool makes it the whole map)."""
        self.rf = max(self.rf, gate.rf)
        return self

    def flatten(self, name: str | None = None) -> Tracer:
        self.shape = (math.prod(self.shape),)
        if name is not None:
            self._add(name, "Flatten")
        return self

    def dropout(self, name: str) -> Tracer:
        self._add(name, "Dropout")
        return self

    def linear(self, name: str, out_features: int, bias: bool = True) -> Tracer:
        n_in = math.prod(self.shape)
        self.shape = (out_features,)
        self._add(name, "Linear", linear_params(n_in, out_features, bias), linear_macs(n_in, out_features))
        return self

    def with_shape(self, shape: tuple[int, ...]) -> Tracer:
        return replace(self, shape=shape)
