"""The gate: is a candidate model the architecture it claims to be?

``check(candidate, reference=..., spec=...)`` is one pipeline:

1. build the candidate and the reference on ``meta`` and trace each once
   (``conformance.trace``: every op with its attributes and the tensors it consumes);
2. align the traces (``conformance.align``): tensors paired by their role in the dataflow
   graph, never by name, or the op where the two computations part;
3. run the checks, each reading the traces, the alignment and the spec, and collect every
   failure into one ``Report``. A check the model makes raise is that check's failure; an
   exception of the gate's own code is the report's error (exit 2), never the candidate's.

Oracles, all independent of the candidate:
* the spec's expected numbers (torchvision weights meta, paper tables), read live from
  torchvision where it has the model;
* the closed-form plan of the spec's config (``conformance.formulas``);
* the reference model (a torchvision builder, or our implementation of a paper-only spec
  in each reading the spec admits), compared op by op and numerically after randomizing
  every parameter and buffer and copying them across through the alignment;
* the initialisation: the spec's declared scheme, bound by its authority (paper,
  torchvision, or convention, which is advisory unless ``strict``), or without a spec the
  reference's own fresh initialisation, tensor by aligned tensor.

Cheap checks (meta device) run first; numerics run at a small input size.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from cnn_models import ArchSpec

from .align import Alignment, align
from .compare import materialize, numerics_checks, state_dict_diff
from .errors import UsageError
from .gate_report import CheckResult, Report
from .init_calls import InitUnreadable, build_fresh, declaration_failures
from .init_check import init_failures
from .loading import build_candidate_on_meta
from .trace import Trace, TraceError, trace_model

__all__ = ["check", "check_builtin", "check_candidate", "resolve_reference", "torchvision_weights_info"]

Factory = Callable[[], nn.Module]
PARAMETRIC = ("Conv2d", "BatchNorm2d", "Linear")


def torchvision_weights_info(name: str) -> dict[str, Any]:
    """The ``meta`` of torchvision's first weights enum entry for builder ``name``."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"torchvision has no weights for {name!r}: {exc}") from None
    return dict(next(iter(weights)).meta)


# The configuration torchvision's published weights describe, where its builder with
# ``weights=None`` builds another one by default: torchvision/models/googlenet.py drops the
# auxiliary heads once weights are loaded (the 6,624,904 of its meta num_params), and
# ``init_weights=True`` only silences the builder's warning about the init it draws.
PUBLISHED_CONFIG: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": True, "init_weights": True},
}


def _parse_reference(target: str) -> tuple[str, dict[str, Any]]:
    """``torchvision:NAME`` or ``torchvision:NAME(key=value, ...)`` with Python literals."""
    import ast

    kind, _, rest = target.partition(":")
    name, paren, args = rest.partition("(")
    if kind != "torchvision" or not name or (paren and not args.endswith(")")):
        raise UsageError(f"--reference {target!r}: expected torchvision:NAME or torchvision:NAME(key=value, ...)")
    kwargs: dict[str, Any] = {}
    if paren:
        try:
            call = ast.parse(f"f({args}", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        except (SyntaxError, ValueError, AssertionError):
            raise UsageError(f"--reference {target!r}: the arguments must be key=value pairs of Python "
                             f"literals, e.g. torchvision:googlenet(aux_logits=True)") from None
    return name.strip(), kwargs


def resolve_reference(target: str, **kwargs: Any) -> Factory:
    """``torchvision:NAME[(key=value, ...)]`` -> a zero-argument factory for torchvision's
    builder (no weights), in the configuration its published weights describe
    (``PUBLISHED_CONFIG``) unless the target's own arguments or ``kwargs`` say otherwise."""
    name, given = _parse_reference(target)
    import torchvision.models as tvm

    if name not in tvm.list_models():
        close = difflib.get_close_matches(name, tvm.list_models(), n=4)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UsageError(f"--reference {target!r}: torchvision has no model {name!r}{hint}")
    config = {**PUBLISHED_CONFIG.get(name, {}), **kwargs, **given}

    def factory() -> nn.Module:
        return tvm.get_model(name, weights=None, **config)

    return factory


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _as_spec(spec: ArchSpec | str | None) -> ArchSpec | None:
    """A registered spec given by name is looked up; anything but a spec, a name or None is refused."""
    if spec is None or isinstance(spec, ArchSpec):
        return spec
    if isinstance(spec, str):
        import cnn_models

        try:
            return cnn_models.get_spec(spec)
        except KeyError as exc:
            raise UsageError(f"spec={spec!r}: {exc.args[0] if exc.args else 'not registered'}") from None
    raise UsageError(f"spec must be an ArchSpec, a registered name or None, got {type(spec).__name__}")


def _closed_form_failure(spec: ArchSpec, exc: Exception) -> str:
    """Why the spec's closed form could not be computed, naming the family's formula module,
    the spec and what in its config was wrong."""
    from .formulas import formula_module

    if isinstance(exc, LookupError) and str(exc).startswith("no closed-form formula"):
        return str(exc)  # family_module's message: it names the family and the module it looked for
    if isinstance(exc, ValueError) and str(exc).startswith(f"{spec.name} takes "):
        return str(exc)  # spec_plan's own refusal of an input size
    try:
        module = formula_module(spec.family)
    except Exception:  # noqa: BLE001 - an unregistered spec with no family name: say what it has
        module = f"family {spec.family!r}"
    where = f"{module} on spec {spec.name}'s config"
    config = dict(spec.config) if isinstance(spec.config, Mapping) else spec.config
    if isinstance(exc, KeyError) and isinstance(config, dict) and exc.args and exc.args[0] not in config:
        # a KeyError does not say which mapping it came from: the config, or one inside it
        key = exc.args[0]
        return (f"{where}: the formula reads key {key!r}, which is neither in the config (keys: {sorted(config)}) "
                f"nor, where the formula looked, in a mapping inside it")
    return f"{where} {config!r} raised {type(exc).__name__}: {exc}"


# --- individual checks ---------------------------------------------------------------------


def _check_params(cand_meta: nn.Module, spec: ArchSpec | None, ref_meta: nn.Module | None,
                  tv_weights_info: dict[str, Any] | None, plan_params: int | None) -> CheckResult:
    got = _count(cand_meta)
    oracles: list[tuple[str, float, float]] = []
    if spec is not None:
        e = spec.expected["params"]
        oracles.append((f"spec ({e.source})", e.value, e.abs_tol))
    if tv_weights_info is not None and "num_params" in tv_weights_info:
        oracles.append(("torchvision weights meta num_params", tv_weights_info["num_params"], 0))
    if plan_params is not None:
        oracles.append(("closed form from the spec's config", plan_params, 0))
    if ref_meta is not None:
        oracles.append(("reference model", _count(ref_meta), 0))
    failures = [
        f"parameters: expected {value:,.0f}{f' +- {tol:,.0f}' if tol else ''} ({src}), "
        f"got {got:,} ({got - value:+,.0f})"
        for src, value, tol in oracles
        if abs(got - value) > tol
    ]
    return CheckResult.from_failures(
        "params", failures, f"{got:,} vs {len(oracles)} oracle(s)", {"got": got, "oracles": oracles}
    )


def _check_output_shape(cand_rows_out: tuple[int, ...], expected: tuple[int, ...], source: str) -> CheckResult:
    fails = [] if cand_rows_out == expected else [
        f"output: expected shape (N, {', '.join(map(str, expected))}) ({source}), "
        f"got (N, {', '.join(map(str, cand_rows_out))})"]
    return CheckResult.from_failures("output_shape", fails, f"(N, {', '.join(map(str, cand_rows_out))})")


_KIND = {"conv": "Conv2d", "linear": "Linear"}


def _layer_rows(trace: Trace, alignment: Alignment | None) -> dict[str, tuple[str, tuple[int, ...], int, str]]:
    """Parametric ops of a trace as (kind, out shape, params, own name), keyed by the
    reference's module name when an alignment renames them (so a plan written in the
    reference's layout can be looked up), else by the module owning the op's weight."""
    pairs = alignment.pairs if alignment is not None else {}
    rows: dict[str, tuple[str, tuple[int, ...], int, str]] = {}
    for op in trace.ops:
        weight = next((k for role, k in op.tensors if role == "weight"), None)
        if weight is None:
            continue
        kind = _KIND.get(op.kind) or ("BatchNorm2d" if op.kind == "norm" and op.attrs.get("kind") == "batch"
                                      else op.kind)
        params = sum(math.prod(trace.shapes[k]) for _, k in op.tensors if k in trace.params)
        own = weight.rpartition(".")[0]
        name = pairs.get(weight, weight).rpartition(".")[0]
        rows.setdefault(name, (kind, op.out_shape, params, own))
    return rows


def _check_plan_layers(subject: Subject) -> CheckResult:
    """Every Conv2d/BN/Linear of the closed-form plan has its op in the candidate's trace,
    found through the alignment (any names), with the plan's output shape and parameters."""
    plan, trace = subject.plan, subject.cand_trace
    assert plan is not None and trace is not None
    got = _layer_rows(trace, subject.alignment)
    planned = {layer.name: layer for layer in plan.layers if layer.kind in PARAMETRIC}
    if set(planned) - set(got):  # layers that run only in train mode (auxiliary heads)
        with contextlib.suppress(TraceError):
            for k, v in _layer_rows(trace_model(subject.cand_meta, subject.size, train=True),
                                    subject.alignment).items():
                got.setdefault(k, v)
    failures = []
    for name, layer in planned.items():
        found = got.get(name)
        if found is None:
            failures.append(f"{name}: closed form has {layer.kind} out {layer.out_shape} ({layer.params:,} params), "
                            f"the candidate has no such op")
            continue
        kind, shape, params, own = found
        where = name if own == name else f"{own} (plan {name})"
        if (kind, shape, params) != (layer.kind, layer.out_shape, layer.params):
            failures.append(f"{where}: expected {layer.kind} out {layer.out_shape} with {layer.params:,} params "
                            f"(closed form), got {kind} out {shape} with {params:,}")
    failures += [f"{own}: candidate {kind} out {shape} ({params:,} params) is not in the closed-form plan"
                 for name, (kind, shape, params, own) in got.items() if name not in planned and kind in PARAMETRIC]
    return CheckResult.from_failures("closed_form_layers", failures, f"{len(planned)} planned parametric layers")


def _check_macs(cand_meta: nn.Module, spec: ArchSpec | None, input_size: tuple[int, int, int],
                tv_name: str | None) -> CheckResult:
    """Closed form vs FlopCounterMode (total and per layer type) vs torchvision ``_ops`` vs paper."""
    from .layer_table import ForwardError
    from .macs import TV_OPS_ABS_TOL, count_flops, flops_report, torchvision_ops

    rep = flops_report(cand_meta, input_size, spec=spec)
    failures = [a.describe() for a in rep.agreements if not a.ok]
    evidence = [f"{o.name} {o.macs / 1e6:,.1f}M" for o in rep.oracles if o.available and o.macs is not None]
    # FlopCounterMode files MACs under the module class that ran them: a candidate whose
    # convolutions run inside classes of its own (a fused ConvBNAct, functional ops in the
    # root) has no per-type breakdown to compare; the total still binds
    own_kinds = [a.what for a in rep.agreements if a.what != "total MACs" and a.expected == 0 and a.got > 0]
    if own_kinds and all(a.ok for a in rep.agreements if a.what == "total MACs"):
        failures = [a.describe() for a in rep.agreements if not a.ok and a.what == "total MACs"]
        evidence.append(f"per-type breakdown n/a: MACs run in the candidate's own classes "
                        f"({', '.join(k.removesuffix(' MACs') for k in own_kinds[:3])})")
    if spec is None and tv_name and (tv := torchvision_ops(tv_name)) is not None:
        at = (input_size[0], tv.crop_size, tv.crop_size)
        got = count_flops(cand_meta, at).macs
        evidence.append(f"torchvision _ops {tv.gmacs} G")
        if abs(got - tv.macs) > TV_OPS_ABS_TOL:
            failures.append(f"total MACs at {at}: expected {tv.macs:,} ({tv.weights}.meta['_ops']), "
                            f"got {got:,} ({got - tv.macs:+,})")
    if spec is not None:  # further paper values at other resolutions ("macs@192", ...)
        for key, exp in spec.expected.items():
            if key.startswith("macs@"):
                size = exp.input_size or spec.input_size
                try:
                    got = count_flops(cand_meta, size).macs
                except ForwardError as exc:  # e.g. a fixed AvgPool2d(7), which runs only at 224
                    evidence.append(f"{key} n/a: the candidate cannot run at {size} ({str(exc).split(': ', 1)[-1]})")
                    continue
                evidence.append(f"{key} {got / 1e6:,.1f}M")
                if not exp.holds_for(got):
                    failures.append(f"MACs at {size}: expected {exp.describe()}, got {got:,}")
    return CheckResult.from_failures("macs", failures, "; ".join(evidence))


def _check_forward_alone(factory: Factory, input_size: tuple[int, ...]) -> CheckResult:
    """Without a reference: the candidate's own output and gradients are finite."""
    torch.manual_seed(0)
    model = factory().double().train()
    x = torch.randn((2, *input_size), dtype=torch.float64, requires_grad=True)
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else [o for o in out if isinstance(o, torch.Tensor)]
    failures = [f"output[{i}]: {int((~torch.isfinite(o)).sum())} non-finite values (NaN/inf) in the forward pass"
                for i, o in enumerate(outs) if not torch.isfinite(o).all()]
    sum(o.double().sum() for o in outs).backward()  # type: ignore[union-attr]
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is None:
            failures.append(f"{name}: received no gradient")
        elif p.grad is not None and not torch.isfinite(p.grad).all():
            failures.append(f"{name}: gradient has non-finite values")
    return CheckResult.from_failures("finite_grads", failures, "own weights, float64, train mode")


# --- the gate ----------------------------------------------------------------------------------


@dataclass
class Subject:
    """What every check reads: both models on meta, their traces, the alignment, the spec."""

    candidate: Factory
    reference: Factory | None
    spec: ArchSpec | None
    cand_meta: nn.Module
    ref_meta: nn.Module | None
    size: tuple[int, int, int]
    small: tuple[int, int, int]
    tv_name: str | None
    tv_weights_info: dict[str, Any] | None
    plan: Any = None
    cand_trace: Trace | None = None
    trace_error: TraceError | None = None
    ref_trace: Trace | None = None
    alignment: Alignment | None = None
    strict: bool = False
    require_keys: bool = False
    readings: Sequence[tuple[str, Factory]] = ()
    input_note: str = ""
    aligned_reading: str = ""  # the spec reading whose trace the candidate's aligned with


def _gate_fault(exc: BaseException) -> bool:
    """True when ``exc`` was raised by this package's own code, not by the model's: the last
    frame outside torch lies in ``conformance``."""
    import traceback

    here = os.path.dirname(os.path.abspath(__file__))
    models = os.path.join(here, "claims", "exhibits.py")  # the tutorial's models, re-implemented: model code
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    outside_torch = [f for f in frames if not os.path.abspath(f).startswith(torch_dir)]
    last = os.path.abspath(outside_torch[-1]) if outside_torch else ""
    return last.startswith(here) and last != models


class GateFault(Exception):
    """The gate itself raised: an error of this package, reported as such (exit 2)."""


def _run_check(name: str, fn: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    """Run one check; an exception from the model is that check's failure, one from the gate's
    own code a ``GateFault`` (never the candidate's failure)."""
    try:
        out = fn()
    except Exception as exc:
        if _gate_fault(exc):
            import traceback

            frame = traceback.extract_tb(exc.__traceback__)[-1]
            raise GateFault(f"check {name!r}: the gate raised {type(exc).__name__}: {exc} "
                            f"(at {frame.filename}:{frame.lineno})") from exc
        first = str(exc).splitlines()[0] if str(exc) else ""
        return [CheckResult(name, "fail", f"raised {type(exc).__name__}: {first}", [f"{type(exc).__name__}: {exc}"])]
    return out if isinstance(out, list) else [out]


def _check_output(subject: Subject) -> CheckResult:
    if subject.trace_error is not None:
        return CheckResult("output_shape", "fail", "the forward pass raised", [str(subject.trace_error)])
    trace = subject.cand_trace
    assert trace is not None
    got = _out_shape(trace)
    if subject.ref_trace is not None:
        expected, source = _out_shape(subject.ref_trace), "reference model"
    elif subject.plan is not None:
        expected, source = subject.plan.out_shape, "closed form"
    else:
        expected, source = ((subject.spec.num_classes,) if subject.spec else got), "spec num_classes"
    return _check_output_shape(got, tuple(expected), source)


def _out_shape(trace: Trace) -> tuple[int, ...]:
    first = trace.outputs[0] if trace.outputs else -1
    return trace.ops[first].out_shape if first >= 0 else tuple(trace.input_size)


def _group(differences: Sequence[Any]) -> list[str]:
    """One line per kind of difference: 27 ReLU6-for-ReLU ops are one cause, said once."""
    groups: dict[str, list[Any]] = {}
    for d in differences:
        key = repr(sorted(d.attrs.items())) if d.candidate is not None and d.reference is not None else d.describe()
        groups.setdefault(key, []).append(d)
    out = []
    for ds in groups.values():
        more = (f" (and {len(ds) - 1} more op(s) alike: "
                f"{', '.join(d.candidate.module for d in ds[1:4] if d.candidate)}"
                f"{' ...' if len(ds) > 4 else ''})" if len(ds) > 1 else "")
        out.append(ds[0].describe() + more)
    return out


def _check_alignment(subject: Subject) -> CheckResult:
    al = subject.alignment
    assert al is not None
    evidence = f"{al.candidate_ops} ops vs {al.reference_ops}; {al.describe()}"
    if al.notes:
        evidence += "; " + "; ".join(dict.fromkeys(n.split(": ", 1)[1] for n in al.notes))
    if subject.aligned_reading:
        nearest = "aligned with" if not al.differences else "nearest to"
        evidence += (f"; {nearest} the spec's reading {subject.aligned_reading}"
                     f"{_reading_sources(subject.spec, subject.aligned_reading)}")
    failures = _group(al.differences)
    failures += [f"{k}: candidate tensor {subject.cand_trace.shapes[k] if subject.cand_trace else ''} "
                 f"has no counterpart in the reference" for k in al.unpaired_candidate]
    failures += [f"{k}: reference tensor has no counterpart in the candidate" for k in al.unpaired_reference]
    data = {"pairs": al.pairs, "renamed": al.renamed}
    return CheckResult.from_failures("alignment", failures, evidence, data)


def _check_keys(subject: Subject) -> CheckResult:
    """State_dict key compatibility: binding only when asked (``require_keys``: a built-in whose
    torchvision weights must load directly), otherwise said and left advisory."""
    assert subject.ref_meta is not None
    diff = state_dict_diff(subject.cand_meta, subject.ref_meta)
    n_c, n_r = len(subject.cand_meta.state_dict()), len(subject.ref_meta.state_dict())
    if not diff:
        return CheckResult("state_dict", "pass", f"{n_c} keys, the reference's names and shapes")
    why = "binding: the reference's weights must load by name" if subject.require_keys else \
        "advisory: the alignment pairs tensors by role; --require-keys makes names binding"
    status = "fail" if subject.require_keys else "advisory"
    return CheckResult("state_dict", status, f"{len(diff)} key difference(s) in {n_c} vs {n_r} keys ({why})", diff)


def _init_authority(spec: ArchSpec, linear: bool) -> str:
    auth = spec.init.authority or "torchvision"  # undeclared: bound as the builder's own scheme
    return (spec.init.linear_authority or auth) if linear else auth


def _torchvision_declaration(reference: Factory, spec: ArchSpec) -> tuple[list[str], str]:
    """Where the spec's declared init departs from what torchvision's builder draws: read
    exactly from its init calls on meta (``conformance.init_calls``), or, where those calls
    cannot be read, measured on a fresh draw (``init_failures``)."""
    try:
        lines, read = declaration_failures(reference, spec.init)
        return lines, f" ({read})"
    except Exception as exc:  # noqa: BLE001 - InitUnreadable, or the build on meta raised: measure instead
        torch.manual_seed(1)
        what = str(exc) if isinstance(exc, InitUnreadable) else f"reading them raised {type(exc).__name__}: {exc}"
        why = f" (measured on a fresh draw; its init calls cannot be read: {what})"
        return init_failures(build_fresh(reference), spec.init), why


def _check_init_spec(subject: Subject, zero_init_factory: Factory | None) -> CheckResult:
    """The candidate's fresh weights against the spec's declared scheme, judged in the
    reference's layout (the candidate's tensors are put into it through the alignment, so
    any names and functional layers are judged alike). What the spec's source does not fix
    (authority "convention") is advisory unless ``strict``."""
    spec = subject.spec
    assert spec is not None
    torch.manual_seed(0)
    fresh = build_fresh(subject.candidate)
    judged, rename = fresh, {}
    al = subject.alignment
    if al is not None and al.complete and al.renamed and subject.reference is not None:
        judged = materialize(subject.reference, torch.float32)
        state = fresh.state_dict()
        judged.load_state_dict({r: state[c] for c, r in al.pairs.items()}, strict=True)
        rename = {r.rpartition(".")[0]: c.rpartition(".")[0] for c, r in al.pairs.items()}
    modules = dict(judged.named_modules())
    binding: list[str] = []
    advisory: list[str] = []
    for line in init_failures(judged, spec.init):
        module = line.split(":", 1)[0]
        own = rename.get(module, module)
        text = line if own == module else f"{own} (reference layout {module}):{line.split(':', 1)[1]}"
        is_linear = isinstance(modules.get(module), nn.Linear)
        (advisory if _init_authority(spec, is_linear) == "convention" and not subject.strict else binding).append(text)
    evidence = f"conv {spec.init.conv}, linear {spec.init.linear}, BN gamma 1 beta 0 ({spec.init.source.split(';')[0]})"
    if zero_init_factory is not None and spec.zero_init_residual_bns:
        model = build_fresh(zero_init_factory)
        zero = frozenset(
            n for n, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and n.rsplit(".", 1)[-1] in spec.zero_init_residual_bns
            and n.startswith("layer")
        )
        binding += [f"zero_init_residual=True: {f}" for f in init_failures(model, spec.init, zero)]
        evidence += f"; zero_init_residual: {len(zero)} BN gammas exactly 0"
    if spec.torchvision and subject.reference is not None and _init_authority(spec, False) == "torchvision":
        # the declaration is itself an expectation: held against torchvision's own init
        lines, how = _torchvision_declaration(subject.reference, spec)
        wrong = [f"the spec declares what torchvision does not draw: torchvision:{spec.torchvision} {line}"
                 for line in lines]
        binding += wrong
        evidence += f"; the declaration {'fails' if wrong else 'holds'} for torchvision:{spec.torchvision}'s own init"
        evidence += how
    if binding:
        return CheckResult("init", "fail", evidence, binding + [f"(advisory) {a}" for a in advisory])
    if advisory:
        return CheckResult("init", "advisory", evidence + f"; {len(advisory)} departure(s) from what the spec's "
                           f"source leaves open (authority: convention; --strict makes them binding)", advisory)
    return CheckResult("init", "pass", evidence)


def _check_init_reference(subject: Subject) -> CheckResult:
    """No spec: the reference's own fresh initialisation is the oracle, tensor by aligned tensor."""
    from .init_check import compare_init

    al = subject.alignment
    assert al is not None and subject.reference is not None
    torch.manual_seed(0)
    cand = build_fresh(subject.candidate).state_dict()
    torch.manual_seed(1)
    ref = build_fresh(subject.reference).state_dict()
    pairs = [(c, cand[c], r, ref[r]) for c, r in al.pairs.items() if c in cand and r in ref]
    failures = compare_init(pairs)
    return CheckResult.from_failures("init", failures, f"{len(pairs)} tensors vs the reference's own fresh "
                                     f"initialisation (two-sample: constants exactly, law, scale, mean)")


def _numerics(subject: Subject, numerics_factories: tuple[Factory, Factory | None] | None) -> list[CheckResult]:
    al = subject.alignment
    if subject.reference is None:
        return [CheckResult("numerics", "n/a", "no reference model to copy weights from and compare outputs with "
                            "(no torchvision counterpart); finite_grads runs the model alone"),
                *_run_check("finite_grads", lambda: _check_forward_alone(subject.candidate, subject.small))]
    if al is None or not al.complete:
        where = (_group(al.differences)[0] if al is not None and al.differences
                 else "tensors left unpaired (see alignment)")
        return [CheckResult("numerics", "fail", "not run: no one-to-one pairing of the tensors (see alignment)",
                            [f"the computations part at {where}; weights cannot be copied across, so outputs "
                             f"cannot be compared"]),
                *_run_check("finite_grads", lambda: _check_forward_alone(subject.candidate, subject.small))]
    size, note = subject.small, subject.input_note
    num_cand, num_ref = numerics_factories or (subject.candidate, subject.reference)
    readings = list(subject.readings) or [("", num_ref or subject.reference)]
    has_bn = any("running_" in k or "num_batches" in k for k in subject.cand_meta.state_dict())
    tried: list[str] = []
    fails: dict[str, list[str]] = {}
    matched = ""
    for name, ref in readings:
        try:
            result = numerics_checks(num_cand, ref, size, key_map=al.key_map)
        except Exception as exc:  # noqa: BLE001 - a reading that cannot run here (a fixed 7x7 pool at 64 px)
            if len(readings) == 1 or _gate_fault(exc):
                raise
            tried.append(f"{name}: cannot run at {size}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        fails = result
        if not any(fails.values()):
            matched = name
            break
        tried.append(name)
    out = []
    if not fails:
        raise RuntimeError(f"no reading of the spec could run at {size}: {'; '.join(tried)}")
    reading = f"; reading: {matched}" if matched else ""
    if not matched and len(readings) > 1:
        reading = f"; matches none of the spec's readings ({', '.join(tried)}); failures against the last"
    for name, f in fails.items():
        if name == "bn_running_stats" and not has_bn and not f:
            out.append(CheckResult(name, "n/a", "the model has no BatchNorm layer (no running statistics)"))
            continue
        out.append(CheckResult.from_failures(name, f, f"float64, randomized weights, input {size}{note}{reading}",
                                             {"reading": matched} if matched else {}))
    return out


def check(
    candidate: Factory,
    *,
    reference: Factory | None = None,
    spec: ArchSpec | str | None = None,
    candidate_label: str = "candidate",
    reference_label: str | None = None,
    input_size: tuple[int, int, int] | None = None,
    tv_name: str | None = None,
    zero_init_factory: Factory | None = None,
    numerics: bool = True,
    numerics_factories: tuple[Factory, Factory | None] | None = None,
    readings: Sequence[tuple[str, Factory]] = (),
    strict: bool = False,
    require_keys: bool = False,
) -> Report:
    """Run every applicable check of ``candidate`` against ``reference`` and/or ``spec``.

    The pipeline: build both on meta, trace each once (``conformance.trace``), align the
    traces (``conformance.align``), then run the checks, each reading the traces, the
    alignment and the spec. ``candidate`` and ``reference`` are zero-argument factories.
    ``tv_name`` (defaults to ``spec.torchvision``) selects torchvision's weights meta as an
    oracle. ``numerics_factories`` replaces (candidate, reference) for the numerical checks
    only (a spec's ``numerics_kwargs``); ``readings`` are (name, reference factory) pairs of
    a spec's admissible readings, tried in turn by the numerical checks. ``strict`` makes
    conventions binding; ``require_keys`` makes state_dict names binding.
    """
    spec = _as_spec(spec)
    if reference is None and spec is None:
        raise UsageError("check needs a reference (torchvision:NAME) or a spec (--spec NAME), or both")
    tv_name = tv_name or (spec.torchvision if spec is not None else None)
    label = reference_label or " + ".join(
        x for x in (f"spec {spec.name}" if spec else "",
                    f"torchvision:{tv_name}" if reference and tv_name else ("reference" if reference else ""))
        if x)
    report = Report(candidate_label, label)
    size = input_size or (spec.input_size if spec is not None else (3, 224, 224))
    small = (spec.small_input_size if spec is not None and input_size is None
             else (size[0], min(size[1], 64), min(size[2], 64)))

    if isinstance(candidate, nn.Module) or isinstance(reference, nn.Module):
        which = "candidate" if isinstance(candidate, nn.Module) else "reference"
        raise UsageError(f"the {which} is an nn.Module instance; pass a zero-argument factory that builds it "
                         f"(the class itself, or a function returning a new model): the gate builds it several "
                         f"times, on meta and on the CPU")
    clock = time.perf_counter()
    try:
        cand_meta = build_candidate_on_meta(candidate, candidate_label)
        ref_meta = build_candidate_on_meta(reference, f"reference {label}") if reference is not None else None
    except UsageError as exc:
        report.error = str(exc)
        return report
    report.timings["build on meta"] = time.perf_counter() - clock
    subject = Subject(candidate, reference, spec, cand_meta, ref_meta, size, small, tv_name,
                      torchvision_weights_info(tv_name) if tv_name else None, strict=strict, require_keys=require_keys,
                      readings=readings)
    try:
        _run_pipeline(subject, report, zero_init_factory, numerics, numerics_factories)
    except GateFault as exc:
        report.error = str(exc)
    return report


def _align_with_a_reading(subject: Subject) -> None:
    """The candidate differs in structure from the default build: align it with each other
    admissible reading of the spec (an activation the paper and its authors' code read two
    ways). The first reading that aligns without a difference, or else the one that leaves the
    fewest differences, becomes the reference and the first reading the numerics try, so that
    the report names what departs from the nearest admissible build."""
    assert subject.cand_trace is not None and subject.alignment is not None

    def distance(al: Alignment) -> int:
        return len(al.differences) + len(al.unpaired_candidate) + len(al.unpaired_reference)

    best, best_distance = None, distance(subject.alignment)
    for i, (name, factory) in enumerate(subject.readings[1:], start=1):
        ref_meta = build_candidate_on_meta(factory, f"reading {name}")
        try:
            ref_trace = trace_model(ref_meta, subject.size)
        except TraceError:
            continue
        alignment = align(subject.cand_trace, ref_trace)
        if distance(alignment) < best_distance:
            best, best_distance = (i, name, factory, ref_meta, ref_trace, alignment), distance(alignment)
        if best_distance == 0:
            break
    if best is None:
        return
    i, name, factory, ref_meta, ref_trace, alignment = best
    subject.reference, subject.ref_meta, subject.ref_trace, subject.alignment = factory, ref_meta, ref_trace, alignment
    subject.readings = [subject.readings[i], *subject.readings[:i], *subject.readings[i + 1:]]
    subject.aligned_reading = name


def _run_pipeline(subject: Subject, report: Report, zero_init_factory: Factory | None, numerics: bool,
                  numerics_factories: tuple[Factory, Factory | None] | None) -> None:
    spec, checks = subject.spec, report.checks
    if spec is not None:
        from .formulas import spec_plan

        try:
            subject.plan = spec_plan(spec, subject.size)
        except Exception as exc:  # no formula, or it could not read the config: name it, go on with the rest
            why = _closed_form_failure(spec, exc)
            checks.append(CheckResult("closed_form", "fail", why, [why]))
    # 1. trace both models once
    clock = time.perf_counter()
    try:
        subject.cand_trace = trace_model(subject.cand_meta, subject.size)
    except TraceError as exc:
        subject.trace_error = exc
    if subject.ref_meta is not None:
        subject.ref_trace = trace_model(subject.ref_meta, subject.size)
    report.timings["trace"] = time.perf_counter() - clock
    # 2. align them
    clock = time.perf_counter()
    if subject.cand_trace is not None and subject.ref_trace is not None:
        subject.alignment = align(subject.cand_trace, subject.ref_trace)
        if subject.alignment.differences and len(subject.readings) > 1:
            _align_with_a_reading(subject)
        al = subject.alignment
        if not al.differences and (al.unpaired_candidate or al.unpaired_reference) \
                and subject.cand_trace.unused and subject.ref_trace.unused:
            # tensors of layers that run only in train mode (auxiliary heads): align train-mode traces
            with contextlib.suppress(TraceError):
                train = align(trace_model(subject.cand_meta, subject.size, train=True),
                              trace_model(subject.ref_meta, subject.size, train=True))  # type: ignore[arg-type]
                if len(train.pairs) > len(al.pairs) and not train.differences:
                    subject.alignment = train
    if numerics and subject.trace_error is None and subject.ref_meta is not None:
        # the size the numerics run at: the spec's reduced size, or its input size for a
        # candidate that cannot run smaller (a fixed AvgPool2d(7))
        try:
            trace_model(subject.cand_meta, subject.small)
        except TraceError as exc:
            subject.input_note = (f"; the candidate cannot run at {subject.small} ({str(exc).split(': ', 1)[-1]}), "
                                  f"so at the spec's input size {subject.size}")
            subject.small = subject.size
    report.timings["align"] = time.perf_counter() - clock
    # 3. the checks, each timed

    def run(name: str, fn: Callable[[], CheckResult | list[CheckResult]]) -> None:
        start = time.perf_counter()
        checks.extend(_run_check(name, fn))
        report.timings[name] = time.perf_counter() - start

    run("params", lambda: _check_params(subject.cand_meta, spec, subject.ref_meta, subject.tv_weights_info,
                                        subject.plan.params if subject.plan else None))
    run("output_shape", lambda: _check_output(subject))
    if subject.alignment is not None:
        run("alignment", lambda: _check_alignment(subject))
    if subject.ref_meta is not None:
        run("state_dict", lambda: _check_keys(subject))
    if subject.plan is not None and subject.cand_trace is not None:
        run("closed_form_layers", lambda: _check_plan_layers(subject))
    run("macs", lambda: _check_macs(subject.cand_meta, spec, subject.size, subject.tv_name))
    if spec is not None:
        run("init", lambda: _check_init_spec(subject, zero_init_factory))
    elif subject.alignment is not None and subject.alignment.complete:
        run("init", lambda: _check_init_reference(subject))
    else:
        checks.append(CheckResult("init", "n/a", "no spec, and no complete alignment with the reference whose fresh "
                                  "initialisation would be the oracle"))
    if not numerics:
        checks.append(CheckResult("numerics", "n/a", "not run: numerics=False was asked for"))
        return
    run("numerics", lambda: _numerics(subject, numerics_factories))


def check_builtin(name: str, numerics: bool = True) -> Report:
    """Check a registered architecture against its spec and its torchvision counterpart.

    A spec whose torchvision counterpart cannot be resolved gives a report with that error
    (naming the spec's field), not an exception: a run over many architectures goes on."""
    import cnn_models

    spec = cnn_models.get_spec(name)
    reference = None
    num_reference = None
    try:
        if spec.torchvision:
            reference = resolve_reference(f"torchvision:{spec.torchvision}", num_classes=spec.num_classes,
                                          **spec.torchvision_kwargs)
        num_reference = reference
        if spec.numerics_kwargs and reference is not None:
            num_reference = resolve_reference(
                f"torchvision:{spec.torchvision}", num_classes=spec.num_classes,
                **{**spec.torchvision_kwargs, **spec.numerics_kwargs},
            )
    except UsageError as exc:
        report = Report(name, f"spec {name} + torchvision:{spec.torchvision}")
        report.error = (f"spec {name} ({spec.builder.__module__}): its torchvision={spec.torchvision!r} "
                        f"(with torchvision_kwargs={dict(spec.torchvision_kwargs)!r}) does not resolve: "
                        f"{str(exc).split(': ', 1)[-1]}")
        return report
    candidate: Factory = spec.build
    num_candidate = candidate
    if spec.numerics_kwargs and reference is not None:
        def num_candidate() -> nn.Module:
            return spec.build(**spec.numerics_kwargs)
    zero = None
    if spec.zero_init_residual_bns:
        def zero() -> nn.Module:
            return spec.build(zero_init_residual=True)
    return check(
        candidate, reference=reference, spec=spec, candidate_label=name, zero_init_factory=zero,
        numerics=numerics, numerics_factories=(num_candidate, num_reference), require_keys=reference is not None,
    )


def _readings(spec: ArchSpec) -> list[tuple[str, Factory]]:
    """(name, builder) of each admissible build a spec declares (one reading per open point),
    the default build first; empty when it declares none."""
    out: list[tuple[str, Factory]] = []
    for name, kwargs, _ in spec.reading_combinations():
        out.append((name, functools.partial(spec.build, **kwargs)))
    return out


def _reading_sources(spec: ArchSpec | None, combination: str) -> str:
    """The sources of a combination's readings that are not the default build's."""
    if spec is None:
        return ""
    defaults = {r.point: r.name for r in reversed(spec.readings)}  # the first reading of each point
    parts = [f"{r.name}: {r.source}" for r in spec.readings
             if r.name in combination.split(" + ") and defaults.get(r.point) != r.name]
    return f" ({'; '.join(parts)})" if parts else ""


def check_candidate(
    factory: Factory, label: str, *, reference: str | None = None, spec: ArchSpec | str | None = None,
    input_size: tuple[int, int, int] | None = None, strict: bool = False, require_keys: bool = False,
) -> Report:
    """Check a contributor's factory against ``torchvision:NAME`` and/or a registered spec.

    With a spec and no explicit reference, the numerical reference is torchvision's model
    when torchvision has it, and otherwise our reference implementation of that spec
    (itself checked against the paper's numbers and the closed forms), in each of the
    readings the spec admits where its paper leaves a choice open.
    """
    spec = _as_spec(spec)
    if reference is None and spec is None:
        raise UsageError("a candidate needs a reference (torchvision:NAME) and/or a spec")
    common: dict[str, Any] = {"candidate_label": label, "input_size": input_size, "strict": strict,
                              "require_keys": require_keys}
    if reference is None and spec is not None and not spec.torchvision:
        return check(factory, reference=spec.build, spec=spec, readings=_readings(spec),
                     reference_label=f"spec {spec.name} + cnn_models.{spec.name} (reference implementation)", **common)
    tv_name = _parse_reference(reference)[0] if reference else (spec.torchvision if spec else None)
    target = reference or f"torchvision:{tv_name}"
    kwargs = ({"num_classes": spec.num_classes, **spec.torchvision_kwargs}
              if spec is not None and spec.torchvision == tv_name else {})
    ref = resolve_reference(target, **kwargs)
    num = None
    if spec is not None and spec.numerics_kwargs and spec.torchvision == tv_name:
        num = (lambda: factory(), resolve_reference(target, **{**kwargs, **spec.numerics_kwargs}))
    return check(factory, reference=ref, spec=spec, tv_name=tv_name, numerics_factories=num, **common)
