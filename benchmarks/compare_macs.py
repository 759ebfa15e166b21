"""Comparison 2: MACs at 224, ours vs fvcore, ptflops, thop and FlopCounterMode on CPU tensors.

Tools, each in its own worker, on the same model (``cnn_models``'s) at batch 1, eval mode:

* ``ours (closed form)``: ``conformance.formulas.spec_plan(spec, (3, 224, 224))``
  replays the spec's config through the layer formulas: no module is built at all. MACs of
  Conv2d and Linear, bias excluded (torchvision's ``_ops`` convention);
* ``ours (FlopCounterMode, meta)``: ``conformance.macs.count_flops(spec.build, size)``, with the
  ``build_on_meta`` inside the call timed too (``_bound.timed_build_call``): the model built on
  ``meta``, one forward pass under ``torch.utils.flop_counter.FlopCounterMode``;
  FLOPs / 2 (2 FLOPs per MAC; conv and matmul only). Convolutions and linears are shaped by
  formula and handed to the counter's own bookkeeping, so no Python meta kernel runs;
* ``bound: meta build alone``: ``conformance.layer_table.build_on_meta(spec.build)``, the first
  step of ``ours (FlopCounterMode, meta)``: ours can be at most (peer time / this time) times
  faster than a peer, however cheap its counting pass;
* ``FlopCounterMode (CPU)``: the same counter around a real forward pass of a CPU-built model
  on ``torch.randn(1, 3, 224, 224)`` under ``no_grad``;
* ``fvcore``: ``FlopCountAnalysis(model, x).total()`` (traces the model with ``torch.jit``;
  one "flop" per multiply-add of conv, linear and matmul, plus batch norm and adaptive
  average pooling; ReLU, max pooling and additions are skipped with a warning);
* ``ptflops``: ``get_model_complexity_info(model, (3, 224, 224), as_strings=False)`` with its
  default (``pytorch``) backend: module hooks that count conv and linear MACs *with* their
  bias, and one op per element for BN (two with affine), ReLU-family activations and
  pooling; patched functional ops (``F.relu``, pooling, ``torch.add``/``mul``, matmul) too;
* ``thop``: ``profile(model, inputs=(x,))``: module hooks; conv and linear MACs (bias
  excluded in thop 0.1.1), BN (two per element with affine), activations and max pooling
  counted as zero, average pooling and upsampling per output element.

Each tool's count is shown with its difference from the closed form and the split by layer
type or op that explains it (from the tool itself: fvcore's ``by_operator()``, thop's
per-layer result, ptflops' per-module hooks wrapped here to record what each adds,
FlopCounterMode's per-op counts).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from ._bound import BOUND, meta_build_alone, timed_build_call
from ._bound import prepare as prepare_bound
from ._harness import Job, Options, measure
from ._tables import WARM_NOTE, import_note, speed_targets, timing_rows
from .results import Section

MODELS = ("vgg16", "resnet50", "googlenet", "mobilenet_v2")
QUICK_MODELS = ("vgg16", "mobilenet_v2")
INPUT = (3, 224, 224)
CLOSED = "ours (closed form)"
META = "ours (FlopCounterMode, meta)"
CPU_COUNTER = "FlopCounterMode (CPU)"
PEERS = ("fvcore", "ptflops", "thop", CPU_COUNTER)
TOOLS = (CLOSED, META, BOUND, *PEERS)

CONVENTION = {
    CLOSED: "Conv2d + Linear MACs, no bias",
    META: "aten conv + mm/addmm FLOPs / 2, no bias; BN, activations, pooling, adds = 0",
    CPU_COUNTER: "same counter as ours on meta, on real CPU tensors",
    "fvcore": "1 per multiply-add of conv/linear/matmul, no bias; + batch_norm, adaptive_avg_pool2d; "
              "skips relu, max_pool, add",
    "ptflops": "conv/linear MACs + bias adds; + BN (x2 affine), ReLU-family, pooling per element; + patched functional "
               "ops (so ReLU and max-pool modules count twice)",
    "thop": "conv/linear MACs, no bias; + BN (x2 affine), average pooling; activations and max pooling 0",
}


# --- in the worker -------------------------------------------------------------------------
def prepare(tool: str) -> None:
    import torch

    torch.set_num_threads(1)
    import cnn_models

    cnn_models.list_models()  # the registry's first lookup scans for plugins: done here, for every tool

    if tool == CLOSED:
        from .params import import_formula_modules

        import_formula_modules()
    elif tool == META:
        import torch.utils.flop_counter  # noqa: F401 - imported on first use by count_flops (it imports triton)

        import conformance.macs  # noqa: F401
    elif tool == BOUND:
        prepare_bound()
    elif tool == CPU_COUNTER:
        import torch.utils.flop_counter  # noqa: F401
    elif tool == "fvcore":
        import fvcore.nn  # noqa: F401
    elif tool == "ptflops":
        import ptflops  # noqa: F401
    elif tool == "thop":
        import thop  # noqa: F401
    else:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")


def _closed(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.formulas import spec_plan

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    plan = spec_plan(spec, INPUT)
    macs = plan.macs
    t1 = time.perf_counter()
    by = {k: v["macs"] for k, v in plan.by_kind().items() if v["macs"]}
    return {"build_s": None, "op_s": t1 - t0, "total_s": t1 - t0, "macs": int(macs), "by": by}


def _meta(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.macs import count_flops

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    count, build = timed_build_call(lambda: count_flops(spec.build, INPUT))
    t1 = time.perf_counter()
    by = {k: v // 2 for k, v in count.by_kind.items() if v}
    return {"build_s": build, "op_s": t1 - t0, "total_s": t1 - t0, "macs": count.macs, "by": by}


def _cpu_model(model: str) -> tuple[Any, Any, float]:
    import torch

    import cnn_models

    t0 = time.perf_counter()
    net = cnn_models.get_model(model).eval()
    x = torch.randn(1, *INPUT)
    return net, x, time.perf_counter() - t0


def _cpu_counter(model: str) -> dict[str, Any]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net, x, build = _cpu_model(model)
    t0 = time.perf_counter()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    flops = counter.get_total_flops()
    t1 = time.perf_counter()
    by = {str(op): n // 2 for op, n in counter.get_flop_counts().get("Global", {}).items() if n}
    return {"build_s": build, "op_s": t1 - t0, "total_s": build + t1 - t0, "macs": flops // 2, "by": by}


def _fvcore(model: str) -> dict[str, Any]:
    from fvcore.nn import FlopCountAnalysis

    net, x, build = _cpu_model(model)
    t0 = time.perf_counter()
    analysis = FlopCountAnalysis(net, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = analysis.total()
    t1 = time.perf_counter()
    by = {str(k): int(v) for k, v in analysis.by_operator().items() if v}
    skipped = sorted(str(k) for k in analysis.unsupported_ops())
    return {"build_s": build, "op_s": t1 - t0, "total_s": build + t1 - t0, "macs": int(total), "by": by,
            "skipped": skipped}


def _ptflops(model: str) -> dict[str, Any]:
    from ptflops import get_model_complexity_info
    from ptflops.pytorch_ops import MODULES_MAPPING

    net, _x, build = _cpu_model(model)
    # record what each module hook adds, by module class (the hooks themselves are ptflops')
    added: dict[str, int] = defaultdict(int)

    def wrap(hook: Any) -> Any:
        def recording(module: Any, inp: Any, out: Any) -> None:
            before = module.__flops__
            hook(module, inp, out)
            added[type(module).__name__] += int(module.__flops__ - before)
        return recording

    hooks = {cls: wrap(h) for cls, h in MODULES_MAPPING.items()}
    t0 = time.perf_counter()
    macs, _params = get_model_complexity_info(
        net, INPUT, as_strings=False, print_per_layer_stat=False, verbose=False, custom_modules_hooks=hooks)
    t1 = time.perf_counter()
    by = {k: v for k, v in added.items() if v}
    functional = int(macs) - sum(by.values())
    if functional:
        by["patched F.*/torch.* calls"] = functional
    return {"build_s": build, "op_s": t1 - t0, "total_s": build + t1 - t0, "macs": int(macs), "by": by}


def _thop(model: str) -> dict[str, Any]:
    from thop import profile

    net, x, build = _cpu_model(model)
    t0 = time.perf_counter()
    macs, _params, layers = profile(net, inputs=(x,), verbose=False, ret_layer_info=True)
    t1 = time.perf_counter()
    by: dict[str, int] = defaultdict(int)

    def walk(module: Any, info: dict[str, Any]) -> None:
        for name, (ops, _p, children) in info.items():
            child = getattr(module, name)
            if children:
                walk(child, children)
            elif ops:
                by[type(child).__name__] += int(ops)

    walk(net, layers)
    return {"build_s": build, "op_s": t1 - t0, "total_s": build + t1 - t0, "macs": int(macs), "by": dict(by)}


TASKS = {CLOSED: _closed, META: _meta, BOUND: meta_build_alone, CPU_COUNTER: _cpu_counter, "fvcore": _fvcore,
         "ptflops": _ptflops, "thop": _thop}


# --- in the parent -------------------------------------------------------------------------
COUNT_COLUMNS = ["MACs", "vs closed form", "vs closed form %", "what makes the difference"]


def _explain(by: dict[str, int] | None, closed_by: dict[str, int] | None, diff: int | None) -> str:
    """The split of a tool's count beyond the closed form's conv + linear MACs."""
    if not by or diff is None:
        return "-"
    if diff == 0:
        return "same count"
    closed_by = closed_by or {}
    conv_like = ("Conv2d", "Linear", "conv", "linear", "aten.convolution", "aten.addmm", "aten.mm")
    extra = {k: v for k, v in by.items() if not any(k == c or k.startswith(c + ".") for c in conv_like)}
    core = sum(v for k, v in by.items() if k not in extra)
    parts = []
    core_diff = core - sum(closed_by.get(k, 0) for k in ("Conv2d", "Linear"))
    if core_diff:
        parts.append(f"conv/linear {core_diff:+,} (bias adds)" if core_diff > 0 else f"conv/linear {core_diff:+,}")
    parts += [f"{k} {v:+,}" for k, v in sorted(extra.items(), key=lambda kv: -kv[1])]
    return "; ".join(parts) if parts else f"{diff:+,}"


def run(opts: Options) -> Section:
    models = QUICK_MODELS if opts.quick else MODELS
    jobs = [Job(m, "{tool}", {"model": m}, warm=True) for m in models]
    tally = measure(__name__, TOOLS, jobs, opts)
    rows = timing_rows(tally, models, META, TOOLS, not_compared=(BOUND, CLOSED))
    for r in rows:
        model, tool = r["model"], r["tool"]
        macs = tally.first(tool, model, "macs")
        closed = tally.first(CLOSED, model, "macs")
        diff = macs - closed if macs is not None and closed is not None and tool != CLOSED else None
        r["MACs"] = macs
        r["vs closed form"] = diff
        r["vs closed form %"] = 100.0 * diff / closed if diff is not None and closed else None
        r["what makes the difference"] = _explain(tally.first(tool, model, "by"), tally.first(CLOSED, model, "by"),
                                                  diff)
        # ratios against the closed form too (the cheapest oracle: no model at all)
        r["closed form / theirs time"] = (
            None if tool in (CLOSED, META, BOUND) else
            _ratio(tally.med(CLOSED, model, "total_s"), tally.med(tool, model, "total_s")))
    columns = ["model", "tool", "call s", "e2e s", "e2e warm s", "added MB", "added warm MB",
               "time ours/theirs", "warm time ours/theirs", "mem ours/theirs", "closed form / theirs time",
               *COUNT_COLUMNS]
    targets = speed_targets(tally, models, META, PEERS, "FLOP counting, FlopCounterMode on meta", memory=False,
                            bound=BOUND)
    targets += speed_targets(tally, models, CLOSED, PEERS, "FLOP counting, closed form", memory=False)
    notes = [
        "ours/theirs = ours (FlopCounterMode on meta) over the row's tool; "
        "'closed form / theirs' uses the closed form.",
        f"{CPU_COUNTER}'s first call in a process imports torch._dynamo and sympy (about 1.8 s), so its cold time is "
        "mostly that import, which the imports line below does not cover; its warm time is the count itself.",
        "ours (FlopCounterMode, meta) = count_flops(factory), its build_on_meta timed inside the call. "
        "bound: meta build alone = build_on_meta(factory) "
        "in a worker of its own, the floor under it: a missed peer target says how far a counting pass costing "
        "nothing could get. The 1.5x target is judged on the build timed inside ours' own call.",
        WARM_NOTE,
        "ptflops 0.7.5's default (pytorch) backend counts nn.ReLU and nn.MaxPool2d twice: once by its module hook and "
        "once more by its patched F.relu / F.max_pool2d called inside the module (a ReLU on 16 values counts 32); "
        "backend_specific_config={'count_functional': False} turns the second count off "
        "(cf. sovrasov/flops-counter.pytorch#139).",
        "counting conventions: " + " | ".join(f"{k}: {v}" for k, v in CONVENTION.items()),
        import_note(tally),
    ]
    skipped = {m: tally.first("fvcore", m, "skipped") for m in models}
    if any(skipped.values()):
        notes.append("fvcore skipped (counted 0): "
                     + "; ".join(f"{m}: {', '.join(s)}" for m, s in skipped.items() if s))
    notes += [f"error: {r['tool']} on {r['model']}: {r['error']}" for r in rows if r.get("error")]
    return Section("flops", "2. MACs at 3x224x224 (batch 1, eval)", columns, rows, notes, targets, raw=tally.as_json())


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None

