"""Architecture specs: plain data that travels beside each builder.

A spec says what a model *claims to be*: the numbers an independent oracle gives for it
(each with its source), the torchvision builder it must be weight-compatible with (or
``None``), the input size it is meant for, how its weights are initialised and on whose
authority, the config the closed-form oracles read, the admissible readings of points its
paper leaves open, and where it knowingly departs from its paper.

Nothing in a spec is computed from the module it describes.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

__all__ = ["INIT_AUTHORITIES", "MISSING", "ArchSpec", "Expected", "InitScheme", "Reading", "SpecError"]


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

# Who binds a declared initialisation (InitScheme.authority / linear_authority):
#   "paper"        the architecture's paper states it;
#   "torchvision"  torchvision's model draws it and is the spec's binding counterpart;
#   "convention"   neither does: the builder's choice, advisory for a candidate.
INIT_AUTHORITIES = ("paper", "torchvision", "convention")


@dataclass(frozen=True)
class InitScheme:
    """How a freshly built model's weights are drawn.

    ``conv`` and ``linear`` name a scheme from ``CONV_INITS`` / ``LINEAR_INITS``;
    ``conv_bias`` says what a conv bias (if any) starts at; ``bn`` is the affine init of every
    BatchNorm; ``zero_init_residual`` names the BN whose gamma is zero in each residual block
    when the builder is asked for it (``"bn2"`` for BasicBlock, ``"bn3"`` for Bottleneck).

    ``authority`` (one of ``INIT_AUTHORITIES``) says what binds the scheme: ``"paper"``,
    ``"torchvision"`` or ``"convention"`` (advisory); ``linear_authority`` does the same for
    the linear layers where it differs (``None``: as ``authority``). Every built-in spec sets
    ``authority``; an empty one means "not declared" and is accepted, so that specs written
    before the field existed (third-party entry points) still register.
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
    authority: str = ""
    linear_authority: str | None = None

    @property
    def effective_linear_authority(self) -> str:
        """What binds the linear layers' init: ``linear_authority``, else ``authority``."""
        return self.authority if self.linear_authority is None else self.linear_authority

    def problems(self) -> list[str]:
        out = []
        if self.authority != "" and self.authority not in INIT_AUTHORITIES:
            out.append(f"init.authority={self.authority!r} is not one of {INIT_AUTHORITIES}")
        if self.linear_authority is not None and self.linear_authority not in INIT_AUTHORITIES:
            out.append(f"init.linear_authority={self.linear_authority!r} is not one of {INIT_AUTHORITIES} or None")
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
class Reading:
    """One admissible reading of a point the paper leaves open, and who reads it so.

    ``kwargs`` are the builder kwargs that select it (``spec.build(**reading.kwargs)``);
    ``source`` names the paper passage and the implementation that reads it this way;
    ``note`` says what the reading changes; ``point`` names the open point it answers (a spec
    may leave several open: its admissible builds are every combination of one reading per
    point, ``ArchSpec.reading_combinations``).
    """

    name: str
    kwargs: Mapping[str, Any]
    source: str
    note: str = ""
    point: str = ""


@dataclass(frozen=True)
class ArchSpec:
    """Everything the gate needs to know about one registered architecture.

    Fields left at ``MISSING`` make registration fail with the field's name. ``torchvision``
    must be given explicitly: a builder name (``"resnet50"``) or ``None`` for models
    torchvision does not have.

    ``readings``: the admissible readings of the points the paper leaves open (empty when it
    leaves none the builder offers), grouped by ``Reading.point``. The first reading of each
    point is what the default build does (its kwargs are empty or equal to the defaults); the
    admissible builds are every combination of one reading per point
    (``reading_combinations``), each built by ``spec.build(**kwargs)``.
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
    readings: tuple[Reading, ...] = ()

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
        out.extend(self._reading_problems())
        return out

    def _reading_problems(self) -> list[str]:
        """``problems()`` for ``readings``: well-formed, unique names, kwargs the builder takes."""
        if not isinstance(self.readings, tuple):
            return [f"field 'readings': {self.readings!r} is not a tuple of Reading"]
        if not self.readings:
            return []
        out: list[str] = []
        points: dict[str, int] = {}
        for reading in self.readings:
            point = getattr(reading, "point", "")
            points[point] = points.get(point, 0) + 1
        for point, count in points.items():
            if count == 1:
                what = f"point {point!r}" if point else "a single reading"
                out.append(f"field 'readings': {what} has one reading, which declares no open point "
                           f"(give none or at least two)")
        params = _builder_parameters(self.builder) if callable(self.builder) else None
        seen: set[str] = set()
        first_of: set[str] = set()
        for i, reading in enumerate(self.readings):
            where = f"field 'readings[{i}]'"
            if not isinstance(reading, Reading):
                out.append(f"{where}: must be a Reading, got {type(reading).__name__}")
                continue
            if not isinstance(reading.name, str) or not reading.name:
                out.append(f"{where}: name {reading.name!r} is not a non-empty str")
            elif reading.name in seen:
                out.append(f"{where}: duplicate reading name {reading.name!r}")
            else:
                seen.add(reading.name)
            if not isinstance(reading.source, str) or not reading.source:
                out.append(f"{where} ({reading.name!r}): has no source")
            if not isinstance(reading.kwargs, Mapping) or not all(isinstance(k, str) for k in reading.kwargs):
                out.append(f"{where} ({reading.name!r}): kwargs {reading.kwargs!r} is not a mapping of str keys")
                continue
            first = reading.point not in first_of
            first_of.add(reading.point)
            if not first and not reading.kwargs:
                out.append(f"{where} ({reading.name!r}): has no kwargs, so it is the default build again")
            if params is None:
                continue
            accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            for key, value in reading.kwargs.items():
                if key not in params and not accepts_any:
                    out.append(f"{where} ({reading.name!r}): the builder takes no keyword {key!r}")
                elif first:
                    default = self.builder_kwargs.get(key, params[key].default if key in params else MISSING)
                    if default is MISSING or default is inspect.Parameter.empty or default != value:
                        out.append(
                            f"{where} ({reading.name!r}): the first reading is the default build, but "
                            f"{key}={value!r} differs from the default {default!r}"
                        )
        return out

    def reading_combinations(self) -> list[tuple[str, dict[str, Any], tuple[Reading, ...]]]:
        """Every admissible build: one reading per open point, as (name, builder kwargs, readings).

        The first combination is the default build (the first reading of every point); names
        join the readings' names with " + ". Empty when the spec declares no reading.
        """
        points: dict[str, list[Reading]] = {}
        for reading in self.readings:
            points.setdefault(reading.point, []).append(reading)
        out: list[tuple[str, dict[str, Any], tuple[Reading, ...]]] = []
        for combo in itertools.product(*points.values()) if points else ():
            kwargs: dict[str, Any] = {}
            for reading in combo:
                kwargs.update(reading.kwargs)
            out.append((" + ".join(r.name for r in combo), kwargs, tuple(combo)))
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


def _builder_parameters(builder: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """The builder's parameters, or ``None`` where Python cannot read its signature."""
    try:
        return inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return None
