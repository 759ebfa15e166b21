"""Architecture specs: plain data that travels beside each builder.

A spec says what a model *claims to be*: the numbers an independent oracle gives for it
(each with its source), the torchvision builder it must be weight-compatible with (or
``None``), the input size it is meant for, how its weights are initialised, the config the
closed-form oracles read, and where it knowingly departs from its paper.

Nothing in a spec is computed from the module it describes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

__all__ = ["MISSING", "ArchSpec", "Expected", "InitScheme", "SpecError"]


class _Missing:
    """Sentinel for a spec field that the author did not fill in."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class SpecError(ValueError):
    """A spec is incomplete or malformed (raised at registration, i.e. import time)."""


# Conv / linear initialisation schemes a spec may declare. The conformance engine knows how
# to test each one statistically; a new scheme needs a test there before it can be declared.
CONV_INITS = (
    "kaiming_normal_fan_out",  # N(0, 2/fan_out), torchvision ResNet/VGG/MobileNet
    "kaiming_normal_fan_in",  # N(0, 2/fan_in), He et al. 2015 Eq. (10)
    "trunc_normal_0.01",  # N(0, 0.01^2) truncated at +-2, torchvision GoogLeNet
    "trunc_normal_0.1",  # N(0, 0.1^2) truncated at +-2, torchvision Inception v3 default
    "torch_default",  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "kaiming_uniform_fan_in",  # U(-sqrt(6/fan_in), sqrt(6/fan_in)): He uniform, torchvision SqueezeNet
    "xavier_uniform",  # U(-a, a), a = sqrt(6/(fan_in + fan_out)): Glorot & Bengio 2010, Eq. (16)
    "xavier_normal",  # N(0, 2/(fan_in + fan_out))
)
LINEAR_INITS = (
    "normal_0.01",  # N(0, 0.01^2), bias 0 (torchvision VGG, MobileNet)
    "trunc_normal_0.01",
    "trunc_normal_0.1",
    "torch_default",  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    "kaiming_uniform_fan_in",
    "xavier_uniform",
    "xavier_normal",
)
BIAS_INITS = ("zeros", "torch_default")  # torch_default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
BN_INITS = ("ones_zeros",)


@dataclass(frozen=True)
class InitScheme:
    """How a freshly built model's weights are drawn.

    ``conv`` and ``linear`` name a scheme from ``CONV_INITS`` / ``LINEAR_INITS``;
    ``conv_bias`` says what a conv bias (if any) starts at; ``bn`` is the affine init of every
    BatchNorm; ``zero_init_residual`` names the BN whose gamma is zero in each residual block
    when the builder is asked for it (``"bn2"`` for BasicBlock, ``"bn3"`` for Bottleneck).
    """

    conv: str
    linear: str
    conv_bias: str = "zeros"
    linear_bias: str = "zeros"
    bn: str = "ones_zeros"
    source: str = ""
    # (qualified module name, weight scheme) pairs for layers drawn differently from the rest,
    # e.g. (("AuxLogits.fc", "trunc_normal_0.001"),) in torchvision's Inception v3.
    overrides: tuple[tuple[str, str], ...] = ()

    def problems(self) -> list[str]:
        out = []
        if self.conv not in CONV_INITS:
            out.append(f"init.conv={self.conv!r} is not one of {CONV_INITS}")
        if self.linear not in LINEAR_INITS:
            out.append(f"init.linear={self.linear!r} is not one of {LINEAR_INITS}")
        if self.conv_bias not in BIAS_INITS:
            out.append(f"init.conv_bias={self.conv_bias!r} is not one of {BIAS_INITS}")
        if self.linear_bias not in BIAS_INITS:
            out.append(f"init.linear_bias={self.linear_bias!r} is not one of {BIAS_INITS}")
        if self.bn not in BN_INITS:
            out.append(f"init.bn={self.bn!r} is not one of {BN_INITS}")
        if not self.source:
            out.append("init.source is empty (say where the scheme comes from)")
        for name, scheme in self.overrides:
            if scheme not in CONV_INITS + LINEAR_INITS and not scheme.startswith("trunc_normal_"):
                out.append(f"init.overrides[{name!r}]={scheme!r} is not a known scheme")
        return out


@dataclass(frozen=True)
class Expected:
    """One expected number and where it comes from.

    ``value`` is compared with ``abs_tol`` (the source's rounding, e.g. 0.05e6 for a paper
    that prints "4.2M"). ``input_size`` is set for numbers that depend on the input
    (MACs, output shapes); ``None`` means the spec's default input size.
    """

    value: float
    source: str
    abs_tol: float = 0.0
    input_size: tuple[int, int, int] | None = None

    def holds_for(self, got: float) -> bool:
        return abs(float(got) - float(self.value)) <= self.abs_tol

    def describe(self) -> str:
        tol = f" +- {self.abs_tol:,.0f}" if self.abs_tol else ""
        return f"{self.value:,.0f}{tol} ({self.source})"


@dataclass(frozen=True)
class ArchSpec:
    """Everything the gate needs to know about one registered architecture.

    Fields left at ``MISSING`` make registration fail with the field's name. ``torchvision``
    must be given explicitly: a builder name (``"resnet50"``) or ``None`` for models
    torchvision does not have.
    """

    name: str = MISSING
    family: str = MISSING
    builder: Callable[..., nn.Module] = MISSING
    paper: str = MISSING
    torchvision: str | None = MISSING
    input_size: tuple[int, int, int] = MISSING
    init: InitScheme = MISSING
    expected: Mapping[str, Expected] = MISSING
    config: Mapping[str, Any] = MISSING
    num_classes: int = 1000
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # kwargs for the torchvision builder so that it builds the same variant (e.g.
    # ``{"aux_logits": False, "init_weights": True}`` for GoogLeNet); num_classes is added.
    torchvision_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # Input for the numerical checks (adaptive pools let most nets run far below 224);
    # None means (C, min(H, 64), min(W, 64)).
    numerics_input_size: tuple[int, int, int] | None = None
    # Builder kwargs for the numerical checks only, applied to ours and torchvision's alike
    # (e.g. Inception v3's aux head needs 299x299 in train mode: {"aux_logits": False}).
    numerics_kwargs: Mapping[str, Any] = field(default_factory=dict)
    deviations: tuple[str, ...] = ()
    # Names of the BN modules whose gamma is zero when built with zero_init_residual=True;
    # empty when the builder has no such option.
    zero_init_residual_bns: tuple[str, ...] = ()

    REQUIRED = (
        "name",
        "family",
        "builder",
        "paper",
        "torchvision",
        "input_size",
        "init",
        "expected",
        "config",
    )

    def problems(self) -> list[str]:
        """Every reason this spec cannot be registered, each naming the field."""
        out = [f"missing field {f!r}" for f in self.REQUIRED if getattr(self, f) is MISSING]
        if out:
            return out
        if not isinstance(self.name, str) or not self.name.isidentifier():
            out.append(f"field 'name': {self.name!r} is not a lowercase identifier")
        if not callable(self.builder):
            out.append(f"field 'builder': {self.builder!r} is not callable")
        if not isinstance(self.family, str) or not self.family:
            out.append(f"field 'family': {self.family!r} is not a family name (the closed form's module)")
        if not isinstance(self.config, Mapping) or not all(isinstance(k, str) for k in self.config):
            out.append(f"field 'config': {self.config!r} is not a mapping of str keys (the closed form's inputs)")
        if self.torchvision is not None and not isinstance(self.torchvision, str):
            out.append("field 'torchvision': must be a torchvision builder name or None")
        size = self.input_size
        if not (
            isinstance(size, tuple) and len(size) == 3 and all(isinstance(s, int) and s > 0 for s in size)
        ):
            out.append(f"field 'input_size': {size!r} is not a (C, H, W) tuple of positive ints")
        if not isinstance(self.init, InitScheme):
            out.append("field 'init': must be an InitScheme")
        else:
            out.extend(f"field 'init': {p}" for p in self.init.problems())
        if "params" not in self.expected:
            out.append("field 'expected': needs at least a 'params' entry with its source")
        for key, exp in self.expected.items():
            if not isinstance(exp, Expected):
                out.append(f"field 'expected[{key!r}]': must be an Expected, got {type(exp).__name__}")
            elif not exp.source:
                out.append(f"field 'expected[{key!r}]': has no source")
        if not isinstance(self.num_classes, int) or self.num_classes <= 0:
            out.append(f"field 'num_classes': {self.num_classes!r} is not a positive int")
        return out

    @property
    def small_input_size(self) -> tuple[int, int, int]:
        if self.numerics_input_size is not None:
            return self.numerics_input_size
        c, h, w = self.input_size
        return (c, min(h, 64), min(w, 64))

    def build(self, **overrides: Any) -> nn.Module:
        kwargs = {**self.builder_kwargs, **overrides}
        return self.builder(**kwargs)

    def replace(self, **changes: Any) -> ArchSpec:
        return dataclasses.replace(self, **changes)
