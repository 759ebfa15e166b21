"""Comparison 3: parameter counting, closed form vs a meta-built vs a CPU-built model.

For every built-in architecture (``cnn_models.list_models()``), at the spec's input size:

* ``closed form``: ``params_for(spec.family, config, spec.input_size)``: no module; a
  family's stage-by-stage sum where it has one (CIFAR ResNets, MobileNets), its per-layer
  plan's total otherwise;
* ``meta build``: ``sum(p.numel() for p in build_on_meta(spec.build).parameters())``: the
  modules are constructed, the tensors have no storage;
* ``CPU build``: ``sum(p.numel() for p in spec.build().parameters())``: what a user does
  without this project: allocate and initialise every weight, then count.

All three must agree (the column ``agree``); the target is the closed form at least 100x
faster than the CPU build.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ._harness import Job, Options, measure
from ._stats import speedup
from ._tables import WARM_NOTE, import_note
from .results import Section, Target

CLOSED = "closed form"
META = "meta build"
CPU = "CPU build"
TOOLS = (CLOSED, META, CPU)
TARGET = 100.0
QUICK_MODELS = ("resnet18", "vgg16", "mobilenet_v2", "cifar_resnet20")


def import_formula_modules() -> None:
    """Import the closed form of every built-in family: the closed-form tool's imports, as
    ``import cnn_models`` (every family's model code) is the CPU build's."""
    import importlib

    import cnn_models
    from conformance.formulas import formula_module

    for family in sorted({cnn_models.get_spec(n).family for n in cnn_models.list_models()}):
        importlib.import_module(formula_module(family))


def prepare(tool: str) -> None:
    import torch

    torch.set_num_threads(1)
    import cnn_models  # noqa: F401

    if tool == CLOSED:
        import_formula_modules()
    elif tool == META:
        import conformance.layer_table  # noqa: F401
    elif tool != CPU:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")


def _closed(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.formulas import params_for

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    n = params_for(spec.family, {**spec.config, "num_classes": spec.num_classes}, spec.input_size)
    return {"total_s": time.perf_counter() - t0, "params": int(n)}


def _meta(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.layer_table import build_on_meta

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    n = sum(p.numel() for p in build_on_meta(spec.build).parameters())
    return {"total_s": time.perf_counter() - t0, "params": int(n)}


def _cpu(model: str) -> dict[str, Any]:
    import cnn_models

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    n = sum(p.numel() for p in spec.build().parameters())
    return {"total_s": time.perf_counter() - t0, "params": int(n)}


TASKS = {CLOSED: _closed, META: _meta, CPU: _cpu}

COLUMNS = ["architecture", "params", "agree", "closed s", "meta s", "CPU s", "closed warm s", "meta warm s",
           "CPU warm s", "CPU/closed", "CPU/closed warm", "CPU/meta", "CPU/meta warm", "CPU added MB"]


def _models(opts: Options) -> tuple[str, ...]:
    if opts.quick:
        return QUICK_MODELS
    import cnn_models

    return tuple(cnn_models.list_models())


def run(opts: Options) -> Section:
    models = _models(opts)
    jobs = [Job(m, "{tool}", {"model": m}, warm=True) for m in models]
    tally = measure(__name__, TOOLS, jobs, opts)
    rows = []
    for m in models:
        counts = {t: tally.first(t, m, "params") for t in TOOLS}
        med = {(t, ph): tally.med(t, m, f) for t in TOOLS for ph, f in (("cold", "total_s"), ("warm", "warm_total_s"))}
        rows.append({
            "architecture": m,
            "params": counts[CLOSED],
            "agree": None if None in counts.values() else len(set(counts.values())) == 1,
            "closed s": med[CLOSED, "cold"], "meta s": med[META, "cold"], "CPU s": med[CPU, "cold"],
            "closed warm s": med[CLOSED, "warm"], "meta warm s": med[META, "warm"], "CPU warm s": med[CPU, "warm"],
            "CPU/closed": speedup(med[CLOSED, "cold"], med[CPU, "cold"]),
            "CPU/closed warm": speedup(med[CLOSED, "warm"], med[CPU, "warm"]),
            "CPU/meta": speedup(med[META, "cold"], med[CPU, "cold"]),
            "CPU/meta warm": speedup(med[META, "warm"], med[CPU, "warm"]),
            "CPU added MB": tally.med(CPU, m, "added_mb"),
            "error": next((f"{t}: {e}" for t in TOOLS if (e := tally.error(t, m))), None),
        })
    targets = []
    # "every architecture" is judged only when every one was measured in full
    unmeasured = [f"{m} ({'; '.join(f'{t}: {e}' for t, e in problems)})" for m in models
                  if (problems := [(t, e) for t in (CLOSED, CPU) if (e := tally.problem(t, m))])]
    for phase, col in (("cold", "CPU/closed"), ("warm", "CPU/closed warm")):
        vals = {r["architecture"]: r[col] for r in rows if r[col] is not None}
        name = f"params ({phase}): closed form >= {TARGET:.0f}x faster than a CPU build, every architecture"
        if unmeasured or len(vals) < len(models):
            missing = unmeasured or [m for m in models if m not in vals]
            targets.append(Target(name, f"not measured for {len(missing)} of {len(models)}: {'; '.join(missing)}",
                                  None))
            continue
        worst = min(vals, key=lambda k: vals[k])
        below = [k for k, v in vals.items() if v < TARGET]
        targets.append(Target(
            name,
            f"median {statistics.median(vals.values()):.0f}x, lowest {vals[worst]:.0f}x ({worst}); "
            + (f"{len(below)} of {len(vals)} below: {', '.join(below)}" if below else f"all {len(vals)} above"),
            not below,
        ))
    disagree = [r["architecture"] for r in rows if r["agree"] is False]
    notes = [
        "CPU/closed = CPU-build time / closed-form time (how many times faster the closed form is); "
        "CPU/meta likewise for the meta build.",
        WARM_NOTE,
        "agree: the three counts are equal"
        + (f" -- DISAGREE: {', '.join(disagree)}" if disagree else " for every architecture."),
        import_note(tally),
    ]
    notes += [f"error: {r['architecture']}: {r['error']}" for r in rows if r.get("error")]
    return Section("params", "3. Parameter counting, every built-in architecture (at its spec input size)",
                   COLUMNS, rows, notes, targets, raw=tally.as_json())
