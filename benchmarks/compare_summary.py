"""Comparison 1: the per-layer summary at 224, ours (meta device) vs torchsummary and torchinfo.

Tools, each in its own worker (``benchmarks._worker``), on the same model (``cnn_models``'s,
state_dict-identical to torchvision's) and the same input, (3, 224, 224) at batch 2:

* ``ours (meta)``: ``conformance.summary_table.summarize(spec.build, (3, 224, 224)).render()``: the model
  is built on ``meta`` (no weight allocated), one hooked forward pass at batch 2 in the
  model's own (train) mode, the table rendered in torchsummary's layout. The ``build_on_meta``
  inside the call is timed too (``_bound.timed_build_call``), so that the first call's time
  over its own build's is measured within one call;
* ``ours (closed form)``: ``conformance.summary_table.plan_text(spec_plan(spec, ...))``, what
  ``cnn-conformance summary NAME --closed-form`` prints: the per-layer table from the spec's
  config, no module built (registered architectures only; its own layout);
* ``bound: meta build alone``: ``conformance.layer_table.build_on_meta(spec.build)``, the first
  step of ``ours (meta)``: ours can be at most (peer time / this time) times faster than a
  peer, however cheap its pass;
* ``torchsummary`` 1.5.1 (sksq96/pytorch-summary): ``summary(model, (3, 224, 224),
  device="cpu")`` on a CPU-built model: a real forward pass of ``torch.rand(2, 3, 224, 224)``
  in train mode with autograd on (torchsummary does not disable it), the table printed
  (captured here);
* ``torchinfo``: ``summary(model, input_size=(2, 3, 224, 224), device="cpu", verbose=0)`` on
  a CPU-built model (its default: eval mode, under ``no_grad``), then ``str()`` of the result.

Times: *tool call* is the call above (ours includes its meta build, the peers do not include
building the CPU model); *end to end* is from the model factory to the table (a CPU peer
needs a CPU-built model, with its initialisation; ours does not). The targets use end to
end. *Added MB* is the peak memory the measurement added on top of the imported process.
Each row also records whether our rendered text is byte-identical to torchsummary's.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from contextlib import redirect_stdout
from typing import Any

from ._bound import BOUND, meta_build_alone, timed_build_call
from ._bound import prepare as prepare_bound
from ._harness import Job, Options, measure
from ._tables import TIME_COLUMNS, WARM_NOTE, import_note, speed_targets, timing_rows
from .results import Section

MODELS = ("vgg16", "resnet50", "googlenet", "mobilenet_v2")
QUICK_MODELS = ("vgg16", "mobilenet_v2")
INPUT = (3, 224, 224)
OURS = "ours (meta)"
CLOSED = "ours (closed form)"
PEERS = ("torchsummary", "torchinfo")
TOOLS = (OURS, CLOSED, BOUND, *PEERS)


# --- in the worker -------------------------------------------------------------------------
def prepare(tool: str) -> None:
    import torch

    torch.set_num_threads(1)
    import cnn_models

    cnn_models.list_models()  # the registry's first lookup scans for plugins: done here, for every tool

    if tool in (OURS, CLOSED):
        import conformance.formulas  # noqa: F401
        import conformance.summary_table  # noqa: F401
    elif tool == BOUND:
        prepare_bound()
    elif tool == "torchsummary":
        import torchsummary  # noqa: F401
    elif tool == "torchinfo":
        import torchinfo  # noqa: F401
    else:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _ours(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.summary_table import summarize

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    s, build = timed_build_call(lambda: summarize(spec.build, INPUT))
    text = s.render()
    t1 = time.perf_counter()
    return {"build_s": build, "op_s": t1 - t0, "total_s": t1 - t0, "params": s.total_params,
            "rows": len(s.rows), "text_sha": _sha(text)}


def _closed(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.formulas import spec_plan
    from conformance.summary_table import plan_text

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    plan = spec_plan(spec, INPUT)
    text = plan_text(plan, model, INPUT)
    t1 = time.perf_counter()
    return {"build_s": None, "op_s": t1 - t0, "total_s": t1 - t0, "params": plan.params,
            "rows": len(plan.layers), "text_sha": _sha(text)}


def _torchsummary(model: str) -> dict[str, Any]:
    from torchsummary import summary

    import cnn_models

    t0 = time.perf_counter()
    net = cnn_models.get_model(model)
    t1 = time.perf_counter()
    buf = io.StringIO()
    with redirect_stdout(buf):
        summary(net, INPUT, device="cpu")
    t2 = time.perf_counter()
    text = buf.getvalue()
    m = re.search(r"Total params: ([\d,]+)", text)
    return {"build_s": t1 - t0, "op_s": t2 - t1, "total_s": t2 - t0,
            "params": int(m.group(1).replace(",", "")) if m else None,
            "rows": sum(1 for line in text.splitlines() if re.match(r"\s+\w+-\d+\s", line)),
            "text_sha": _sha(text)}


def _torchinfo(model: str) -> dict[str, Any]:
    from torchinfo import summary

    import cnn_models

    t0 = time.perf_counter()
    net = cnn_models.get_model(model)
    t1 = time.perf_counter()
    stats = summary(net, input_size=(2, *INPUT), device="cpu", verbose=0)
    text = str(stats)
    t2 = time.perf_counter()
    return {"build_s": t1 - t0, "op_s": t2 - t1, "total_s": t2 - t0, "params": int(stats.total_params),
            "rows": len(stats.summary_list), "text_sha": _sha(text)}


TASKS = {OURS: _ours, CLOSED: _closed, BOUND: meta_build_alone, "torchsummary": _torchsummary, "torchinfo": _torchinfo}


# --- in the parent -------------------------------------------------------------------------
COLUMNS = ["model", "tool", *TIME_COLUMNS, "params", "same text as torchsummary"]


def run(opts: Options) -> Section:
    models = QUICK_MODELS if opts.quick else MODELS
    jobs = [Job(m, "{tool}", {"model": m}, warm=True) for m in models]
    tally = measure(__name__, TOOLS, jobs, opts)
    # the closed form's ratios are against the peers' rows, in the targets
    rows = timing_rows(tally, models, OURS, TOOLS, {"params": "params"}, not_compared=(CLOSED, BOUND))
    for r in rows:
        ours_sha = tally.first(OURS, r["model"], "text_sha")
        ts_sha = tally.first("torchsummary", r["model"], "text_sha")
        r["same text as torchsummary"] = (
            None if r["tool"] in ("torchsummary", "torchinfo", CLOSED, BOUND) or ours_sha is None or ts_sha is None
            else tally.first(r["tool"], r["model"], "text_sha") == ts_sha)
    section = Section(
        "summary", "1. Per-layer summary at 3x224x224 (batch 2)", COLUMNS, rows,
        notes=[
            "ours (meta): summarize(factory) on meta, its build_on_meta timed inside the call, train mode, "
            "rendered in torchsummary's layout, for any "
            "module; ours (closed form): `cnn-conformance summary NAME --closed-form`, the per-layer table "
            "(names, types, shapes, params, MACs) computed from a registered spec's config by the layer "
            "formulas, no module built (its own layout, so never torchsummary's text); "
            "torchsummary 1.5.1: CPU forward, train mode, autograd on; torchinfo: CPU forward, eval, no_grad.",
            "time/mem ours/theirs = ours (meta) over the row's tool; the closed form's ratios are in the targets.",
            "bound: meta build alone = build_on_meta(factory) in a worker of its own, the floor under ours (meta): "
            "a missed peer target says how far a pass costing nothing could get. The 1.5x target is judged on "
            "the build timed inside ours' own call (same process, same cold state).",
            "e2e = end to end, from the model factory to the table (a CPU peer must build and initialise "
            "the model; ours builds it on meta); call = the summary call alone (ours: with its meta build).",
            WARM_NOTE,
            "added MB = peak RSS during the call minus the RSS just before it (the imported process).",
            import_note(tally),
        ],
        targets=[*speed_targets(tally, models, OURS, PEERS, "summary", memory=True, bound=BOUND),
                 *speed_targets(tally, models, CLOSED, PEERS, "summary, closed form", memory=True)],
        raw=tally.as_json(),
    )
    errors = [f"{r['tool']} on {r['model']}: {r['error']}" for r in rows if r.get("error")]
    section.notes += [f"error: {e}" for e in errors]
    return section
