"""The gate: is a candidate model the architecture it claims to be?

``check(candidate, reference=..., spec=...)`` runs every check that applies and collects all
failures into one ``Report``; a check that raises becomes a failed check naming the
exception, so one broken forward pass does not hide the other findings.

Oracles, all independent of the candidate:
* the spec's expected numbers (torchvision weights meta, paper tables), read live from
  torchvision where it has the model;
* the closed-form plan of the spec's config (``conformance.formulas``);
* the reference model (a torchvision builder), compared structurally on ``meta`` and
  numerically after randomizing every parameter and buffer.

Cheap checks (meta device) run first; numerics run at a small input size.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from cnn_models import ArchSpec

from .compare import numerics_checks, state_dict_diff
from .errors import UsageError
from .init_check import init_failures
from .inspect import ForwardError, LayerRow, layer_table
from .loading import build_candidate_on_meta
from .report import CheckResult, Report

__all__ = ["check", "check_builtin", "check_candidate", "resolve_reference", "torchvision_meta"]

Factory = Callable[[], nn.Module]
PARAMETRIC = ("Conv2d", "BatchNorm2d", "Linear")


def torchvision_meta(name: str) -> dict[str, Any]:
    """The ``meta`` of torchvision's first weights enum entry for builder ``name``."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"torchvision has no weights for {name!r}: {exc}") from None
    return dict(next(iter(weights)).meta)


def resolve_reference(target: str, **kwargs: Any) -> Factory:
    """``torchvision:NAME`` -> a zero-argument factory for torchvision's builder (no weights)."""
    kind, _, name = target.partition(":")
    if kind != "torchvision" or not name:
        raise UsageError(f"--reference {target!r}: expected torchvision:NAME")
    import torchvision.models as tvm

    if name not in tvm.list_models():
        close = difflib.get_close_matches(name, tvm.list_models(), n=4)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise UsageError(f"--reference {target!r}: torchvision has no model {name!r}{hint}")

    def factory() -> nn.Module:
        return tvm.get_model(name, weights=None, **kwargs)

    return factory


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _structural_rows(rows: list[LayerRow]) -> list[LayerRow]:
    """Leaves that shape the computation: every layer with parameters, and every pooling.

    Activations, dropout and identities are left to the numerical checks, which name the
    first module whose output differs; naming conventions for them vary between faithful
    implementations (torchvision reuses one ``relu``, timm has ``act1``/``act2``).
    """
    return [r for r in rows if r.is_leaf and (r.params > 0 or "Pool" in r.kind)]


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


def _guard(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    try:
        return fn()
    except Exception as exc:
        return CheckResult(name, "fail", f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                           [f"{type(exc).__name__}: {exc}"])


# --- individual checks ---------------------------------------------------------------------


def _check_params(cand_meta: nn.Module, spec: ArchSpec | None, ref_meta: nn.Module | None,
                  tv_meta: dict[str, Any] | None, plan_params: int | None) -> CheckResult:
    got = _count(cand_meta)
    oracles: list[tuple[str, float, float]] = []
    if spec is not None:
        e = spec.expected["params"]
        oracles.append((f"spec ({e.source})", e.value, e.abs_tol))
    if tv_meta is not None and "num_params" in tv_meta:
        oracles.append(("torchvision weights meta num_params", tv_meta["num_params"], 0))
    if plan_params is not None:
        oracles.append(("closed form from the spec's config", plan_params, 0))
    if ref_meta is not None:
        oracles.append(("reference model", _count(ref_meta), 0))
    failures = [
        f"parameters: expected {value:,.0f}{f' +- {tol:,.0f}' if tol else ''} ({src}), got {got:,} ({got - value:+,.0f})"
        for src, value, tol in oracles
        if abs(got - value) > tol
    ]
    return CheckResult.from_failures(
        "params", failures, f"{got:,} vs {len(oracles)} oracle(s)", {"got": got, "oracles": oracles}
    )


def _check_output_shape(cand_rows_out: tuple[int, ...], expected: tuple[int, ...], source: str) -> CheckResult:
    fails = [] if cand_rows_out == expected else [f"output: expected shape (N, {', '.join(map(str, expected))}) ({source}), got (N, {', '.join(map(str, cand_rows_out))})"]
    return CheckResult.from_failures("output_shape", fails, f"(N, {', '.join(map(str, cand_rows_out))})")


def _check_layer_sequence(cand: list[LayerRow], ref: list[LayerRow], partial: bool = False) -> CheckResult:
    """Parametric and pooling leaf calls in forward order: kind, output shape, params.

    ``partial``: the candidate's forward raised, so compare only the layers that ran.
    """
    ra, rb = _structural_rows(ref), _structural_rows(cand)
    if partial:
        ra = ra[: len(rb)]
    a = [(r.kind, r.out_shape, r.params) for r in ra]
    b = [(r.kind, r.out_shape, r.params) for r in rb]
    failures: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            for r, c in zip(ra[i1:i2], rb[j1:j2], strict=False):
                failures.append(
                    f"{c.name}: expected {r.kind} out {r.out_shape} with {r.params:,} params (reference {r.name}), "
                    f"got {c.kind} out {c.out_shape} with {c.params:,} params"
                )
            continue
        for r in ra[i1:i2]:
            failures.append(f"{r.name}: reference layer {r.kind} out {r.out_shape} ({r.params:,} params) has no counterpart in the candidate")
        for c in rb[j1:j2]:
            failures.append(f"{c.name}: candidate layer {c.kind} out {c.out_shape} ({c.params:,} params) is not in the reference")
    note = " (up to where the forward raised)" if partial else ""
    return CheckResult.from_failures("layer_table", failures, f"{len(b)} parametric/pooling layers vs {len(a)} in the reference{note}")


def _check_plan_layers(
    cand: list[LayerRow], plan: Any, train_rows: Callable[[], list[LayerRow]], partial: bool = False
) -> CheckResult:
    """Every Conv2d/BN/Linear of the closed-form plan exists in the candidate, by name.

    ``cand`` is the eval-mode table; layers that run only in train mode (auxiliary heads)
    are looked up in ``train_rows()``, computed only when the eval table lacks a layer.
    ``partial``: the forward pass raised, so layers after the failure never ran; they are not
    reported missing (the forward error is its own failure), the layers that ran are compared.
    """
    got = {r.name: r for r in cand if r.kind in PARAMETRIC or r.params > 0}
    planned = {layer.name: layer for layer in plan.layers if layer.kind in PARAMETRIC}
    if set(planned) - set(got) and not partial:
        try:
            extra = train_rows()
        except ForwardError as exc:  # the train-mode pass broke too: use what it recorded
            extra, partial = exc.rows, True
        for r in extra:
            if r.name not in got and (r.kind in PARAMETRIC or r.params > 0):
                got[r.name] = r
    failures = []
    for name, layer in planned.items():
        found = got.get(name)
        if found is None and partial:
            continue
        if found is None:
            failures.append(f"{name}: closed form has {layer.kind} out {layer.out_shape} ({layer.params:,} params), candidate has no such module")
        elif (found.kind, found.out_shape, found.params) != (layer.kind, layer.out_shape, layer.params):
            failures.append(f"{name}: expected {layer.kind} out {layer.out_shape} with {layer.params:,} params (closed form), got {found.kind} out {found.out_shape} with {found.params:,}")
    for name, r in got.items():
        if name not in planned and r.kind in PARAMETRIC:
            failures.append(f"{name}: candidate {r.kind} out {r.out_shape} ({r.params:,} params) is not in the closed-form plan")
    return CheckResult.from_failures("closed_form_layers", failures, f"{len(planned)} planned parametric layers")


def _check_macs(cand_meta: nn.Module, spec: ArchSpec | None, input_size: tuple[int, int, int],
                tv_name: str | None) -> CheckResult:
    """Closed form vs FlopCounterMode (total and per layer type) vs torchvision ``_ops`` vs paper."""
    from .flops import TV_OPS_ABS_TOL, count_flops, flops_report, torchvision_ops

    rep = flops_report(cand_meta, input_size, spec=spec)
    failures = [a.describe() for a in rep.agreements if not a.ok]
    evidence = [f"{o.name} {o.macs / 1e6:,.1f}M" for o in rep.oracles if o.available and o.macs is not None]
    if spec is None and tv_name and (tv := torchvision_ops(tv_name)) is not None:
        at = (input_size[0], tv.crop_size, tv.crop_size)
        got = count_flops(cand_meta, at).macs
        evidence.append(f"torchvision _ops {tv.gmacs} G")
        if abs(got - tv.macs) > TV_OPS_ABS_TOL:
            failures.append(f"total MACs at {at}: expected {tv.macs:,} ({tv.weights}.meta['_ops']), got {got:,} ({got - tv.macs:+,})")
    if spec is not None:  # further paper values at other resolutions ("macs@192", ...)
        for key, exp in spec.expected.items():
            if key.startswith("macs@"):
                size = exp.input_size or spec.input_size
                got = count_flops(cand_meta, size).macs
                evidence.append(f"{key} {got / 1e6:,.1f}M")
                if not exp.holds_for(got):
                    failures.append(f"MACs at {size}: expected {exp.describe()}, got {got:,}")
    return CheckResult.from_failures("macs", failures, "; ".join(evidence))


def _check_init(factory: Factory, spec: ArchSpec, zero_init_factory: Factory | None) -> CheckResult:
    torch.manual_seed(0)
    failures = init_failures(factory(), spec.init)
    evidence = f"conv {spec.init.conv}, linear {spec.init.linear}, BN gamma 1 beta 0"
    if zero_init_factory is not None and spec.zero_init_residual_bns:
        model = zero_init_factory()
        zero = frozenset(
            n for n, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and n.rsplit(".", 1)[-1] in spec.zero_init_residual_bns and n.startswith("layer")
        )
        failures += [f"zero_init_residual=True: {f}" for f in init_failures(model, spec.init, zero)]
        evidence += f"; zero_init_residual: {len(zero)} BN gammas exactly 0"
    return CheckResult.from_failures("init", failures, evidence)


def _check_forward_alone(factory: Factory, input_size: tuple[int, ...]) -> CheckResult:
    """Without a reference: the candidate's own output and gradients are finite."""
    torch.manual_seed(0)
    model = factory().double().train()
    x = torch.randn((2, *input_size), dtype=torch.float64, requires_grad=True)
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else [o for o in out if isinstance(o, torch.Tensor)]
    failures = [f"output[{i}]: {int((~torch.isfinite(o)).sum())} non-finite values (NaN/inf) in the forward pass" for i, o in enumerate(outs) if not torch.isfinite(o).all()]
    sum(o.double().sum() for o in outs).backward()  # type: ignore[union-attr]
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is None:
            failures.append(f"{name}: received no gradient")
        elif p.grad is not None and not torch.isfinite(p.grad).all():
            failures.append(f"{name}: gradient has non-finite values")
    return CheckResult.from_failures("finite_grads", failures, "own weights, float64, train mode")


# --- the gate ----------------------------------------------------------------------------------


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
) -> Report:
    """Run every applicable check of ``candidate`` against ``reference`` and/or ``spec``.

    ``candidate`` and ``reference`` are zero-argument factories. ``tv_name`` (defaults to
    ``spec.torchvision``) selects torchvision's weights meta as an oracle.
    ``numerics_factories`` replaces (candidate, reference) for the numerical checks only
    (a spec's ``numerics_kwargs``).
    """
    spec = _as_spec(spec)
    if reference is None and spec is None:
        raise UsageError("check needs a reference (torchvision:NAME) or a spec (--spec NAME), or both")
    tv_name = tv_name or (spec.torchvision if spec is not None else None)
    label = reference_label or " + ".join(x for x in (f"spec {spec.name}" if spec else "", f"torchvision:{tv_name}" if reference and tv_name else ("reference" if reference else "")) if x)
    report = Report(candidate_label, label)
    size = input_size or (spec.input_size if spec is not None else (3, 224, 224))
    small = spec.small_input_size if spec is not None else (size[0], min(size[1], 64), min(size[2], 64))

    if isinstance(candidate, nn.Module) or isinstance(reference, nn.Module):
        which = "candidate" if isinstance(candidate, nn.Module) else "reference"
        raise UsageError(f"the {which} is an nn.Module instance; pass a zero-argument factory that builds it "
                         f"(the class itself, or a function returning a new model): the gate builds it several "
                         f"times, on meta and on the CPU")
    try:
        cand_meta = build_candidate_on_meta(candidate, candidate_label)
        ref_meta = build_candidate_on_meta(reference, f"reference {label}") if reference is not None else None
    except UsageError as exc:
        report.error = str(exc)
        return report
    tv_meta = torchvision_meta(tv_name) if tv_name else None

    plan = None
    if spec is not None:
        from .formulas import spec_plan

        try:
            plan = spec_plan(spec, size)
        except Exception as exc:  # no formula, or it could not read the config: name it, go on with the rest
            why = _closed_form_failure(spec, exc)
            report.checks.append(CheckResult("closed_form", "fail", why, [why]))

    checks = report.checks
    checks.append(_guard("params", lambda: _check_params(cand_meta, spec, ref_meta, tv_meta, plan.params if plan else None)))
    cand_rows: list[LayerRow] = []

    forward_error: list[ForwardError] = []

    def rows_check() -> CheckResult:
        try:
            cand_rows.extend(layer_table(cand_meta, size))
        except ForwardError as exc:
            cand_rows.extend(exc.rows)
            forward_error.append(exc)
            return CheckResult("output_shape", "fail", "the forward pass raised", [str(exc)])
        if ref_meta is not None:
            ref_rows = layer_table(ref_meta, size)
            expected, source = ref_rows[-1].out_shape, "reference model"
        elif plan is not None:
            expected, source = plan.out_shape, "closed form"
        else:
            expected, source = (spec.num_classes,) if spec else cand_rows[-1].out_shape, "spec num_classes"
        return _check_output_shape(cand_rows[-1].out_shape, expected, source)

    checks.append(_guard("output_shape", rows_check))
    if ref_meta is not None:
        checks.append(_guard("state_dict", lambda: CheckResult.from_failures(
            "state_dict", state_dict_diff(cand_meta, ref_meta), f"{len(cand_meta.state_dict())} tensors vs {len(ref_meta.state_dict())}")))
        if cand_rows:
            checks.append(_guard("layer_table", lambda: _check_layer_sequence(cand_rows, layer_table(ref_meta, size), partial=bool(forward_error))))
    if plan is not None and cand_rows:
        checks.append(_guard("closed_form_layers", lambda: _check_plan_layers(
            cand_rows, plan, lambda: layer_table(cand_meta, size, train=True), partial=bool(forward_error))))
    checks.append(_guard("macs", lambda: _check_macs(cand_meta, spec, size, tv_name)))
    if spec is not None:
        checks.append(_guard("init", lambda: _check_init(candidate, spec, zero_init_factory)))
    else:  # shown, not dropped: a reader must see that nothing checked the initialisation
        checks.append(CheckResult("init", "n/a", "no spec: the expected initialisation is declared by a spec (--spec NAME)"))

    if not numerics:
        checks.append(CheckResult("numerics", "n/a", "not run: numerics=False was asked for"))
        return report
    sd_ok = ref_meta is not None and not state_dict_diff(cand_meta, ref_meta)
    if reference is not None and sd_ok:
        # the same buffers numerics_checks compares for "bn_running_stats"
        has_bn = any("running_" in k or "num_batches" in k for k in cand_meta.state_dict())
        try:
            num_cand, num_ref = numerics_factories or (candidate, reference)
            fails = numerics_checks(num_cand, num_ref or reference, small)
            for name, f in fails.items():
                if name == "bn_running_stats" and not has_bn and not f:
                    checks.append(CheckResult(name, "n/a", "the model has no BatchNorm layer (no running statistics)"))
                    continue
                checks.append(CheckResult.from_failures(name, f, f"float64, randomized weights, input {small}"))
        except Exception as exc:
            checks.append(CheckResult("numerics", "fail", f"raised {type(exc).__name__}", [f"{type(exc).__name__}: {exc}"]))
    else:
        if reference is not None:
            checks.append(CheckResult("numerics", "fail", "not run: the state_dict does not fit the reference (see state_dict)",
                                      ["weights cannot be copied from the reference, so outputs cannot be compared"]))
        else:
            checks.append(CheckResult("numerics", "n/a", "no reference model to copy weights from and compare outputs with "
                                      "(no torchvision counterpart); finite_grads runs the model alone"))
        checks.append(_guard("finite_grads", lambda: _check_forward_alone(candidate, small)))
    return report


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
        numerics=numerics, numerics_factories=(num_candidate, num_reference),
    )


def check_candidate(
    factory: Factory, label: str, *, reference: str | None = None, spec: ArchSpec | str | None = None
) -> Report:
    """Check a contributor's factory against ``torchvision:NAME`` and/or a registered spec.

    With a spec and no explicit reference, the numerical reference is torchvision's model
    when torchvision has it, and otherwise our reference implementation of that spec
    (itself checked against the paper's numbers and the closed forms).
    """
    spec = _as_spec(spec)
    if reference is None and spec is None:
        raise UsageError("a candidate needs a reference (torchvision:NAME) and/or a spec")
    tv_name = reference.partition(":")[2] if reference else (spec.torchvision if spec else None)
    if reference is None and spec is not None and not spec.torchvision:
        return check(factory, reference=spec.build, spec=spec, candidate_label=label,
                     reference_label=f"spec {spec.name} + cnn_models.{spec.name} (reference implementation)")
    target = reference or f"torchvision:{tv_name}"
    kwargs = {"num_classes": spec.num_classes, **spec.torchvision_kwargs} if spec is not None and spec.torchvision == tv_name else {}
    ref = resolve_reference(target, **kwargs)
    num = None
    if spec is not None and spec.numerics_kwargs and spec.torchvision == tv_name:
        num = (lambda: factory(), resolve_reference(target, **{**kwargs, **spec.numerics_kwargs}))
    return check(factory, reference=ref, spec=spec, candidate_label=label, tv_name=tv_name, numerics_factories=num)
