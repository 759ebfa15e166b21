"""MACs and FLOPs by layer type, from three independent oracles, with the convention stated.

Oracles:

(a) **closed form**: ``conformance.formulas.plan_for(family, config, input_size)`` replays the
    architecture's config through the per-layer formulas (conformance/formulas/layers.py):
    MACs of Conv2d and Linear only, bias excluded, per sample.
(b) **FlopCounterMode**: ``torch.utils.flop_counter.FlopCounterMode`` around one eval-mode
    forward pass of the model built on ``meta`` (no weights allocated), divided by the batch.
    Convolutions and 2-d linears get their output shape from the documented formula instead
    of torch's Python meta kernels (``layer_table._MetaShapeOnly``) and are handed to the
    counter's own bookkeeping as the aten op they dispatch to, so FlopCounterMode's formulas
    and module tracking apply; every other op it would count is dispatched to it as usual.
    tests/test_meta_shapes.py holds the counts equal to a pass with every kernel run. Each
    counted op is credited to the innermost module running it
    (``torch_private.innermost_counter``), so a module's own FLOPs hold even when it is
    shared by two parents or calls itself.
(c) **torchvision ``_ops``**: the weights enum's ``meta["_ops"]`` of the builder a spec names.
    Labelled GFLOPS, it is really GMACs of conv and linear layers (no bias, BN, pooling or
    activations) in eval mode at the weights' crop size, rounded to 3 decimals; so it agrees
    with (a) and (b) within 0.0005e9 MACs, at the crop size only.
(d) **paper** (when a spec declares ``expected["macs"]``): e.g. MobileNet's "mult-adds",
    compared within the spec's stated tolerance.

FlopCounterMode's conventions (torch/utils/flop_counter.py, checked in tests/test_macs.py):

* convolution (``aten.convolution`` and its backend variants): ``2 * N * prod(out spatial) *
  prod(kernel) * C_out * C_in/groups`` FLOPs, i.e. **2 FLOPs per MAC**; the bias is not
  counted; every output position counts a full window, padding included (as the closed form
  does). A transposed convolution counts the *input* spatial positions instead.
* ``aten.mm`` / ``aten.addmm`` (``nn.Linear`` without / with bias) and ``bmm``/``baddbmm``:
  ``2 * m * n * k``; the bias addition of ``addmm``/``baddbmm`` is not counted.
* scaled-dot-product attention kernels are counted (none in these CNNs); backward kernels
  only if a backward pass runs inside the mode (here it never does).
* everything else counts 0: BatchNorm, ReLU and other activations, max/avg/adaptive pooling,
  residual additions, concatenation, dropout, flatten, softmax.

So for the CNNs here ``FlopCounterMode FLOPs = 2 * closed-form MACs = 2e9 * torchvision _ops``
(up to ``_ops``'s rounding), exactly and per layer. FlopCounterMode does count matmuls
written inside a ``forward`` outside any Conv2d/Linear (attributed to the innermost module
that ran them), which the closed form would miss. Other tools count other sets of ops
(fvcore counts one "flop" per multiply-add; ptflops and thop, depending on version and
options, add some of BN, pooling, activations and bias): compare them only within a stated
percentage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import torch
import torch.nn as nn

from .layer_table import input_dims, meta_inputs, meta_pass, run_forward
from .torch_private import innermost_counter

__all__ = [
    "TV_OPS_ABS_TOL",
    "Agreement",
    "FlopCount",
    "FlopsReport",
    "KindCount",
    "Oracle",
    "TorchvisionOps",
    "count_flops",
    "flops_report",
    "torchvision_ops",
]

FLOPS_PER_MAC = 2  # FlopCounterMode's convention for conv and matmul
TV_OPS_ABS_TOL = 0.0005e9  # torchvision's _ops is GMACs rounded to 3 decimals
EXACT = 0.0

CLOSED_FORM = "closed form"
FLOP_COUNTER = "FlopCounterMode"
TORCHVISION = "torchvision _ops"
SPEC_EXPECTED = "spec"  # the spec's expected["macs"]: its source says which (a paper table, torchvision's meta)

InputSize = tuple[int, ...]


# --- (b) FlopCounterMode on meta --------------------------------------------------------
@dataclass(frozen=True)
class FlopCount:
    """One FlopCounterMode pass, normalised to one sample.

    ``by_module`` maps qualified module names (``""`` for the root; ``"<outside>"`` for ops
    run outside the model's modules) to the FLOPs of the ops that ran directly in that
    module, not in a child; ``by_kind`` sums those by module class name.
    """

    input_size: InputSize
    flops: int
    by_op: Mapping[str, int]
    by_module: Mapping[str, int]
    by_kind: Mapping[str, int]
    modules_by_kind: Mapping[str, int] = field(default_factory=dict)  # modules with FLOPs

    @property
    def macs(self) -> int:
        return self.flops // FLOPS_PER_MAC


def count_flops(
    model: nn.Module | Callable[[], nn.Module],
    input_size: InputSize,
    *,
    batch_size: int = 1,
    train: bool = False,
) -> FlopCount:
    """Run FlopCounterMode over one forward pass of ``model`` on meta.

    ``model`` is a module (one on meta is used as it is, its train/eval flags restored; any
    other is copied to meta, the original untouched) or a zero-argument factory (built on
    meta). Eval mode by default (torchvision's ``_ops`` convention: auxiliary heads
    off). Counts are divided by ``batch_size`` (every counted op is linear in the batch).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
    dims = input_dims(input_size)  # a bad size fails before anything is built
    counter, innermost = innermost_counter()
    with meta_pass(model, train) as module:
        # after the build, as in summarize: a process's first meta tensor costs ~0.15 ms once,
        # the same inside a build as here, and the 1.5x-of-build target compares the two
        inputs = meta_inputs(dims, batch_size=batch_size)
        with torch.no_grad(), counter:
            run_forward(module, inputs)
    counts = counter.get_flop_counts()
    totals = {key: sum(ops.values()) for key, ops in counts.items()}
    by_op = {str(op): n // batch_size for op, n in counts.get("Global", {}).items()}

    credited = innermost()  # each op credited once, to the innermost module running it
    if credited is not None:
        outside = credited.pop("Global", 0)
        own_by_key = credited
    else:  # the public twin: a module's own FLOPs are its total minus its children's
        own_by_key, outside = _own_by_subtraction(totals)
    root_key = type(module).__name__
    own: dict[str, int] = {}
    kinds: dict[str, int] = {}
    modules_by_kind: dict[str, int] = {}
    for key, key_flops in own_by_key.items():
        flops = key_flops // batch_size
        name, kind = _resolve(module, root_key, key)
        if flops:
            own[name] = own.get(name, 0) + flops
            kinds[kind] = kinds.get(kind, 0) + flops
            modules_by_kind[kind] = modules_by_kind.get(kind, 0) + 1
    outside //= batch_size
    if outside:
        own["<outside>"] = outside
        kinds["<outside>"] = outside
    flops_total = totals.get("Global", 0) // batch_size
    size = tuple(int(d) for d in input_size)
    return FlopCount(size, flops_total, by_op, own, kinds, modules_by_kind)


def _own_by_subtraction(totals: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Own FLOPs per tracker key from FlopCounterMode's per-key totals (an op counts for every
    module running it): a key's total minus its direct children's, and what ran outside any
    top-level module. Exact for a tree of modules each called from its own parent."""
    children: dict[str, int] = {}  # key -> the summed totals of its direct children
    top_level = 0
    for key, total in totals.items():
        if key == "Global":
            continue
        if "." in key:
            parent = key.rsplit(".", 1)[0]
            children[parent] = children.get(parent, 0) + total
        else:
            top_level += total
    own = {key: total - children.get(key, 0) for key, total in totals.items() if key != "Global"}
    return own, totals.get("Global", 0) - top_level


def _resolve(root: nn.Module, root_key: str, key: str) -> tuple[str, str]:
    """FlopCounterMode's module key (``"ResNet.layer1.0.conv1"``) -> (qualified name, class)."""
    head, _, path = key.partition(".")
    if head == root_key:
        try:
            mod = root.get_submodule(path) if path else root
        except AttributeError:
            return path, "?"
        return path, type(mod).__name__
    return key, head if not path else "?"


# --- (c) torchvision _ops -----------------------------------------------------------------
@dataclass(frozen=True)
class TorchvisionOps:
    builder: str
    weights: str  # e.g. "ResNet50_Weights.IMAGENET1K_V2"
    gmacs: float  # meta["_ops"], labelled GFLOPS
    crop_size: int

    @property
    def macs(self) -> int:
        """``_ops`` in MACs, exactly as printed (Decimal: no binary rounding)."""
        return int(Decimal(repr(self.gmacs)) * 10**9)


def torchvision_ops(builder: str) -> TorchvisionOps | None:
    """``_ops`` and crop size of torchvision's default weights for ``builder`` (read live).

    ``None`` when torchvision has no weights for that name or they carry no ``_ops``.
    """
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(builder).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None
    ops = weights.meta.get("_ops")
    if ops is None:
        return None
    crop = weights.transforms().crop_size
    return TorchvisionOps(builder, f"{type(weights).__name__}.{weights.name}", float(ops), int(crop[0]))


# --- the report -------------------------------------------------------------------------
@dataclass(frozen=True)
class KindCount:
    kind: str  # module class name ("Conv2d", "Linear"), or "<outside>"
    layers: int  # rows of the closed form / modules with FLOPs in FlopCounterMode
    macs: int  # per sample
    flops: int | None = None  # FlopCounterMode FLOPs per sample (None for the closed form)


@dataclass(frozen=True)
class Oracle:
    name: str  # CLOSED_FORM, FLOP_COUNTER, TORCHVISION or SPEC_EXPECTED
    source: str  # where the number comes from, in words
    input_size: InputSize | None
    macs: int | None  # total per sample; None when the oracle is unavailable
    by_kind: tuple[KindCount, ...] = ()
    note: str = ""  # why it is unavailable, or the convention

    @property
    def available(self) -> bool:
        return self.macs is not None


@dataclass(frozen=True)
class Agreement:
    """One comparison: ``expected`` (an oracle) vs ``got`` (another), within ``abs_tol``."""

    what: str  # e.g. "Conv2d MACs" or "total MACs"
    expected_from: str
    got_from: str
    input_size: InputSize
    expected: int
    got: int
    abs_tol: float

    @property
    def ok(self) -> bool:
        return abs(self.got - self.expected) <= self.abs_tol

    def describe(self) -> str:
        tol = "exact" if self.abs_tol == 0 else f"+- {self.abs_tol:,.0f}"
        verdict = "ok" if self.ok else f"MISMATCH ({self.got - self.expected:+,})"
        size = "x".join(map(str, self.input_size))
        return (
            f"{self.what} at {size}: {self.expected_from} {self.expected:,} vs "
            f"{self.got_from} {self.got:,} ({tol}): {verdict}"
        )


@dataclass(frozen=True)
class FlopsReport:
    subject: str
    input_size: InputSize
    oracles: tuple[Oracle, ...]
    agreements: tuple[Agreement, ...]

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.agreements)

    def oracle(self, name: str) -> Oracle | None:
        return next((o for o in self.oracles if o.name == name), None)

    def table(self) -> str:
        """A plain-text table: MACs and FLOPs by layer type, the oracles side by side."""
        size = "x".join(map(str, self.input_size))
        closed = self.oracle(CLOSED_FORM)
        counter = self.oracle(FLOP_COUNTER)
        cf_rows = {r.kind: r for r in (closed.by_kind if closed else ())}
        fc_rows = {r.kind: r for r in (counter.by_kind if counter else ())}
        kinds = ([k for k in cf_rows if cf_rows[k].macs]
                 + [k for k in fc_rows if k not in cf_rows or not cf_rows[k].macs])
        header = ("layer type", "layers", "closed-form MACs", "FlopCounterMode FLOPs", "FlopCounterMode MACs")
        body: list[tuple[str, ...]] = []
        for kind in kinds:
            cf, fc = cf_rows.get(kind), fc_rows.get(kind)
            body.append((
                kind,
                str(cf.layers if cf else fc.layers if fc else ""),
                _num(cf.macs if cf else None, closed),
                _num(fc.flops if fc else None, counter, zero=True),
                _num(fc.macs if fc else None, counter, zero=True),
            ))
        body.append((
            "total", "",
            _num(closed.macs if closed else None, closed),
            _num(counter.macs * FLOPS_PER_MAC if counter and counter.macs is not None else None, counter),
            _num(counter.macs if counter else None, counter),
        ))
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        rule = "-" * len(fmt(header))
        out = [f"MACs and FLOPs of {self.subject} at {size} (per sample)", rule, fmt(header), rule]
        out += [fmt(r) for r in body[:-1]] + [rule, fmt(body[-1]), rule]
        for o in self.oracles:
            if o.name in (CLOSED_FORM, FLOP_COUNTER) and o.available:
                continue
            at = f" at {'x'.join(map(str, o.input_size))}" if o.input_size else ""
            value = f"{o.macs:,} MACs{at}" if o.available else "unavailable"
            note = f" [{o.note}]" if o.note else ""
            out.append(f"{o.name}: {value} ({o.source}){note}")
        if self.agreements:
            out.append("agreement:")
            out += [f"  {a.describe()}" for a in self.agreements]
        out.append(
            "convention: 1 MAC = 2 FLOPs (FlopCounterMode); MACs count Conv2d and Linear only, "
            "no bias, BN, pooling or activations; torchvision's _ops (labelled GFLOPS) is GMACs."
        )
        return "\n".join(out)


def _num(value: int | None, oracle: Oracle | None, zero: bool = False) -> str:
    if oracle is None or not oracle.available:
        return "n/a"
    if value is None:
        return "0" if zero else "-"
    return f"{value:,}"


def _closed_form(spec: Any, input_size: InputSize) -> Oracle:
    from .formulas import formula_module, spec_plan

    source = f"{formula_module(spec.family)}.plan from the spec's config"
    try:
        plan = spec_plan(spec, tuple(input_size))  # type: ignore[arg-type]
    except (LookupError, ValueError, NotImplementedError) as exc:
        return Oracle(CLOSED_FORM, source, tuple(input_size), None, note=f"{type(exc).__name__}: {exc}")
    rows = tuple(KindCount(kind, d["count"], d["macs"]) for kind, d in plan.by_kind().items())
    return Oracle(CLOSED_FORM, source, tuple(input_size), plan.macs, rows, "Conv2d + Linear MACs, no bias")


def _counter_oracle(count: FlopCount) -> Oracle:
    rows = tuple(
        KindCount(kind, count.modules_by_kind.get(kind, 0), flops // FLOPS_PER_MAC, flops)
        for kind, flops in count.by_kind.items()
    )
    ops = ", ".join(f"{op} {n:,}" for op, n in sorted(count.by_op.items()))
    return Oracle(
        FLOP_COUNTER, "torch.utils.flop_counter on meta, eval mode", count.input_size, count.macs, rows,
        f"FLOPs by op: {ops or 'none'}",
    )


def flops_report(
    model: nn.Module | Callable[[], nn.Module],
    input_size: InputSize | None = None,
    *,
    spec: Any | None = None,
    subject: str | None = None,
) -> FlopsReport:
    """MACs/FLOPs of ``model`` by every oracle that applies, and whether they agree.

    ``spec`` (a ``cnn_models.ArchSpec``) supplies the closed form (its family and config),
    the torchvision builder whose ``_ops`` applies, and a paper value (``expected["macs"]``).
    Without a spec only FlopCounterMode is measured. ``input_size`` defaults to the spec's.
    The torchvision and paper comparisons run at their own input sizes (the weights' crop
    size; the paper value's ``input_size``), re-measuring FlopCounterMode there if needed.
    """
    if input_size is None:
        input_size = tuple(spec.input_size) if spec is not None else (3, 224, 224)
    size = tuple(int(d) for d in input_size)
    label = subject or (spec.name if spec is not None else type(model).__name__)
    measured: dict[InputSize, FlopCount] = {}

    def measure(at: InputSize) -> FlopCount:
        if at not in measured:
            measured[at] = count_flops(model, at)
        return measured[at]

    counter = _counter_oracle(measure(size))
    oracles = [counter]
    agreements: list[Agreement] = []
    if spec is not None:
        closed = _closed_form(spec, size)
        oracles.insert(0, closed)
        if closed.available:
            assert closed.macs is not None and counter.macs is not None
            agreements.append(Agreement("total MACs", CLOSED_FORM, FLOP_COUNTER, size, closed.macs, counter.macs,
                                        EXACT))
            cf_kinds = {r.kind: r.macs for r in closed.by_kind}
            fc_kinds = {r.kind: r.macs for r in counter.by_kind}
            for kind in sorted(set(cf_kinds) | set(fc_kinds)):
                want, got = cf_kinds.get(kind, 0), fc_kinds.get(kind, 0)
                if want or got:
                    agreements.append(Agreement(f"{kind} MACs", CLOSED_FORM, FLOP_COUNTER, size, want, got, EXACT))

        tv = torchvision_ops(spec.torchvision) if spec.torchvision else None
        if spec.torchvision and tv is None:
            oracles.append(Oracle(TORCHVISION, f"torchvision {spec.torchvision}", None, None,
                                  note="no weights with _ops"))
        if tv is not None:
            at = (size[0], tv.crop_size, tv.crop_size)
            oracles.append(Oracle(TORCHVISION, f"{tv.weights}.meta['_ops'] = {tv.gmacs} (GFLOPS label, GMACs)", at,
                                  tv.macs, note=f"rounded to 3 decimals: tolerance {TV_OPS_ABS_TOL:,.0f} MACs"))
            agreements.append(Agreement("total MACs", TORCHVISION, FLOP_COUNTER, at, tv.macs, measure(at).macs,
                                        TV_OPS_ABS_TOL))
            closed_at = closed if at == size else _closed_form(spec, at)
            if closed_at.available:
                assert closed_at.macs is not None
                agreements.append(Agreement("total MACs", TORCHVISION, CLOSED_FORM, at, tv.macs, closed_at.macs,
                                            TV_OPS_ABS_TOL))

        expected = spec.expected.get("macs")
        if expected is not None:
            at = tuple(expected.input_size) if expected.input_size else tuple(spec.input_size)
            oracles.append(Oracle(SPEC_EXPECTED, expected.source, at, int(expected.value),
                                  note=f"tolerance {expected.abs_tol:,.0f} MACs"))
            agreements.append(Agreement("total MACs", SPEC_EXPECTED, FLOP_COUNTER, at, int(expected.value),
                                        measure(at).macs, expected.abs_tol))
    return FlopsReport(label, size, tuple(oracles), tuple(agreements))
