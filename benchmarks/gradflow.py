"""Comparison 5: gradient flow, the default run and how its cost grows with depth and width.

* The default ``cnn-conformance gradflow`` run (``python -m conformance gradflow
  --no-progress --out TMP``): one whole process, wall time and peak RSS, run once.
* Scaling: ``conformance.gradflow.runner.run_setting`` on one setting at a time (He fan-in
  init, float64, batch 16, 8x8 maps, circular padding, as the default grid), timed in a
  worker fork like the other comparisons, for two net types (plain conv-ReLU; residual with
  BN), over depth 8..128 at width 32 and over width 16..128 at depth 16. The exponent ``b``
  of ``time ~ depth**b`` (and ``width**b``) is the log-log least-squares slope of the median
  times. Linear in depth means ``b`` near 1 (accepted: 0.75 <= b <= 1.2; a fixed cost per
  setting, such as building the input and the theory, bends ``b`` below 1 at small depths
  without making the cost anything but linear); per-layer cost grows
  with width roughly as C^2 (the conv MACs) once it exceeds the per-layer Python overhead.
* ``--model`` per architecture: ``model_profile.measure_variant`` on every registered
  architecture as ``gradflow --model NAME`` runs it by default (own init, 3 seeds, batch 8,
  float64, the spec's input capped at 64 px), timed in a worker fork (imports excluded);
  ``--quick``: three architectures. And the whole ``gradflow --model resnet18`` process.
* The default ``gradflow --train`` run (4 nets x 3 seeds x 200 steps): one whole process, wall
  time and peak RSS (``--quick``: 20 steps, 2 seeds).
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

from ._harness import Job, Options, measure
from ._proc import run_command
from ._stats import loglog_exponent
from ._tables import import_note
from .results import Section, Target

DEPTHS = (8, 16, 32, 64, 128)
WIDTHS = (16, 32, 64, 128)
QUICK_DEPTHS = (8, 16, 32)
QUICK_WIDTHS = (16, 32)
DEPTH_WIDTH = 32  # width of the depth sweep
WIDTH_DEPTH = 16  # depth of the width sweep
SEEDS = 2
NETS = {"plain": ("off", False), "residual+BN": ("on", True)}
LINEAR_BAND = (0.75, 1.2)  # below 1: a fixed cost per setting amortised; above 1.2: superlinear
TOOL = "gradflow"
QUICK_CLI = ["--depths", "8", "--inits", "he_fan_in", "--residual", "off", "--bn", "off", "--seeds", "2",
             "--sweep-depths", "none", "--no-cifar"]
QUICK_MODELS = ("cifar_resnet20", "mobilenet_v2", "resnet18")
MODEL_CLI = ["--model", "resnet18"]
TRAIN_CLI = ["--train"]
QUICK_TRAIN_CLI = ["--train", "--steps", "20", "--seeds", "2"]


def prepare(tool: str) -> None:
    import torch

    torch.set_num_threads(1)
    import conformance.gradflow.runner  # noqa: F401
    import conformance.gradflow.setting  # noqa: F401


def _setting(depth: int, width: int, net: str, seeds: int) -> dict[str, Any]:
    from conformance.gradflow.runner import run_setting
    from conformance.gradflow.setting import Setting

    residual, bn = NETS[net]
    s = Setting(depth=depth, width=width, init="he_fan_in", residual=residual, bn=bn, padding="circular",
                batch=16, spatial=8, dtype="float64")
    t0 = time.perf_counter()
    result = run_setting(s, seeds=seeds)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "verdict": result.verdict}


def _model(name: str) -> dict[str, Any]:
    """``gradflow --model NAME`` with its defaults, without the writing."""
    from conformance.gradflow.cli import MODEL_DEFAULTS, model_input_size
    from conformance.gradflow.model_profile import measure_variant, variants

    t0 = time.perf_counter()
    size = model_input_size(name)
    (variant,) = variants(models=[name])
    profile = measure_variant(variant, seeds=int(MODEL_DEFAULTS["seeds"]), input_size=size,
                              batch=int(MODEL_DEFAULTS["batch"]), dtype="float64")
    t1 = time.perf_counter()
    ratio, _ = profile.first_to_last_conv_grad()
    return {"total_s": t1 - t0, "layers": len(profile.layers), "input": "x".join(map(str, size)),
            "verdict": f"{len(profile.layers)} layers at {size[1]}x{size[2]}, first/last conv grad log {ratio:+.2f}"}


TASKS = {"setting": _setting, "model": _model}
COLUMNS = ["sweep", "net", "depth", "width", "s", "s per layer", "verdict"]  # verdict: theory check at SEEDS seeds


def _sweep_jobs(depths: tuple[int, ...], widths: tuple[int, ...]) -> list[Job]:
    jobs = []
    for net in NETS:
        for d in depths:
            jobs.append(Job(f"depth {net} {d}", "setting",
                            {"depth": d, "width": DEPTH_WIDTH, "net": net, "seeds": SEEDS}))
        for w in widths:
            jobs.append(Job(f"width {net} {w}", "setting",
                            {"depth": WIDTH_DEPTH, "width": w, "net": net, "seeds": SEEDS}))
    return jobs


def _process_row(label: str, argv: list[str], opts: Options, raw: dict[str, Any], key: str) -> dict[str, Any]:
    """Run ``python -m conformance gradflow ARGV --out TMP`` once; its row of the table."""
    with tempfile.TemporaryDirectory(prefix="bench-gradflow-") as out:
        args = [*argv, "--no-progress", "--out", out]
        opts.log(f"gradflow: cnn-conformance gradflow {' '.join(args)}")
        res = run_command([sys.executable, "-m", "conformance", "gradflow", *args], timeout=max(opts.timeout, 3600))
    raw[key] = {"argv": res.argv, "returncode": res.returncode, "wall_s": res.wall_s, "maxrss_mb": res.maxrss_mb,
                "tail": res.output_tail[-1500:]}
    last = [line for line in res.output_tail.splitlines() if line.startswith("gradflow")]
    return {"sweep": label, "net": "-", "depth": None, "width": None, "s": res.wall_s, "s per layer": None,
            "verdict": (f"peak RSS {res.maxrss_mb:.0f} MB; " if res.maxrss_mb else "")
            + (last[-1].split("; report:")[0][:80] if last else f"exit {res.returncode}")}


def _model_rows(opts: Options, raw: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    import cnn_models

    names = list(QUICK_MODELS) if opts.quick else cnn_models.list_models()
    jobs = [Job(f"model {n}", "model", {"name": n}) for n in names]
    tally = measure(__name__, (TOOL,), jobs, opts)
    raw["models"] = tally.as_json()
    rows = []
    for n in names:
        key = f"model {n}"
        t = tally.med(TOOL, key, "total_s")
        layers = tally.first(TOOL, key, "layers")
        rows.append({"sweep": "--model", "net": n, "depth": layers, "width": None, "s": t,
                     "s per layer": t / layers if t is not None and layers else None,
                     "verdict": tally.first(TOOL, key, "verdict") or tally.error(TOOL, key)})
    done = [r["s"] for r in rows if r["s"] is not None]
    notes = [f"--model per architecture: measure_variant with the defaults (own init, 3 seeds, batch 8, float64, "
             f"the spec's input at most 64 px), imports excluded; {len(done)} of {len(rows)} ran, "
             f"{sum(done):.0f} s in all" + (f", slowest {max(done):.1f} s" if done else "") + "."]
    return rows, notes


def run(opts: Options) -> Section:
    depths = QUICK_DEPTHS if opts.quick else DEPTHS
    widths = QUICK_WIDTHS if opts.quick else WIDTHS
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    extra_rows = [
        _process_row("CLI --model resnet18 (defaults)", MODEL_CLI, opts, raw, "model_run"),
        _process_row("CLI --train" + (" (--quick: 20 steps, 2 seeds)" if opts.quick else " (defaults)"),
                     QUICK_TRAIN_CLI if opts.quick else TRAIN_CLI, opts, raw, "train_run"),
    ]
    model_rows, model_notes = _model_rows(opts, raw)

    with tempfile.TemporaryDirectory(prefix="bench-gradflow-") as out:
        args = ["--no-progress", "--out", out, *(QUICK_CLI if opts.quick else [])]
        opts.log(f"gradflow: cnn-conformance gradflow {' '.join(args)}")
        res = run_command([sys.executable, "-m", "conformance", "gradflow", *args], timeout=max(opts.timeout, 3600))
    summary_line = next((line for line in res.output_tail.splitlines() if line.startswith("gradflow:")), "")
    default_row = {"sweep": "default CLI run" + (" (--quick: 1 setting)" if opts.quick else ""), "net": "-",
                   "depth": None, "width": None, "s": res.wall_s, "s per layer": None,
                   # the report went to a temporary folder, gone after the run: its path is left out
                   "verdict": summary_line.replace("gradflow: ", "").split("; report:")[0][:90]
                   or f"exit {res.returncode}"}
    raw["default_run"] = {"argv": res.argv, "returncode": res.returncode, "wall_s": res.wall_s,
                          "maxrss_mb": res.maxrss_mb, "tail": res.output_tail[-1500:]}

    tally = measure(__name__, (TOOL,), _sweep_jobs(depths, widths), opts)
    raw["sweeps"] = tally.as_json()
    targets: list[Target] = []
    notes = [
        f"default CLI run: one process, imports included; peak RSS {res.maxrss_mb:.0f} MB, exit {res.returncode}.",
        f"sweeps: run_setting with {SEEDS} seeds, He fan-in, float64, batch 16, 8x8, circular padding; "
        f"depth sweep at width {DEPTH_WIDTH}, width sweep at depth {WIDTH_DEPTH}; medians over repetitions, "
        "one fresh fork each (imports excluded). The verdict column is the theory check of that setting at "
        f"{SEEDS} seeds (the default run uses 5; its tolerances were set for 5), shown only as a sign the run did "
        "the full work.",
        import_note(tally),
    ]
    for net in NETS:
        for axis, values in (("depth", depths), ("width", widths)):
            xs, ys = [], []
            for v in values:
                key = f"{axis} {net} {v}"
                t = tally.med(TOOL, key, "total_s")
                d = v if axis == "depth" else WIDTH_DEPTH
                w = DEPTH_WIDTH if axis == "depth" else v
                rows.append({"sweep": axis, "net": net, "depth": d, "width": w, "s": t,
                             "s per layer": t / d if t is not None else None,
                             "verdict": tally.first(TOOL, key, "verdict") or tally.error(TOOL, key)})
                if t:
                    xs.append(float(v))
                    ys.append(t)
            if len(xs) >= 2:
                b, r2 = loglog_exponent(xs, ys)
                notes.append(f"{net}: time ~ {axis}^{b:.2f} (R^2 {r2:.3f}) over {axis} {int(xs[0])}..{int(xs[-1])}")
                raw[f"exponent_{axis}_{net}"] = {"b": b, "r2": r2}
                if axis == "depth":
                    lo, hi = LINEAR_BAND
                    targets.append(Target(f"gradient-flow cost linear in depth ({net})",
                                          f"exponent {b:.2f} (R^2 {r2:.3f}); accept {lo} <= b <= {hi}", lo <= b <= hi))
    rows.insert(0, default_row)
    rows[1:1] = extra_rows
    rows += model_rows
    notes += model_notes
    train_s = raw["train_run"]["wall_s"]
    if not opts.quick and train_s is not None:
        targets.append(Target("default --train run within 2 minutes", f"{train_s:.0f} s", train_s <= 120))
    return Section("gradflow", "5. Gradient flow", COLUMNS, rows, notes, targets, raw=raw)
