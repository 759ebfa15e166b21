"""Write ``gradflow --model`` / ``--candidate`` results: CSV, JSON, one PNG per model, report.md.

Every profile is described in a sentence computed from its numbers (what the activations,
the gradients with respect to them and the weight gradients do across the layers, how far
the laws of ``reach`` are from the measurement where they apply, and how the variant
compares with the model it varies). Plots use matplotlib's Agg backend, imported inside the
plotting function.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model_profile import OWN_INIT, LayerProfile, ModelProfile
from .writeup import times_text

__all__ = ["ModelRunInfo", "sentence", "write_model_outputs"]

LOG10E = 1.0 / math.log(10.0)


@dataclass
class ModelRunInfo:
    command: str
    device: str
    wall_seconds: float = math.nan
    notes: list[str] = field(default_factory=list)


def _fin(v: float) -> float | None:
    return float(v) if isinstance(v, (int, float, np.floating)) and math.isfinite(v) else None


def _pow10(log_value: float) -> str:
    if not math.isfinite(log_value):
        return "n/a"
    return f"10^{log_value * LOG10E:.1f}"


def _pct(log_err: float) -> str:
    return f"{100 * math.expm1(abs(log_err)):.0f}%" if math.isfinite(log_err) else "n/a"


def _overflowed(a: np.ndarray) -> bool:
    return bool(np.any(np.isnan(a)) or np.any(a == math.inf))


def _first_bad(p: ModelProfile) -> tuple[int, LayerProfile] | None:
    for i, layer in enumerate(p.layers):
        if _overflowed(layer.act) or _overflowed(layer.grad):
            return i, layer
    return None


def _trend(slope: float) -> str:
    if not math.isfinite(slope):
        return "n/a"
    if abs(slope) < 0.02:
        return "keep their scale"
    return "grow" if slope > 0 else "shrink"


def sentence(p: ModelProfile, reference: ModelProfile | None = None) -> str:
    """What the profile shows, in words (one paragraph)."""
    v = p.variant
    n_conv = len(p.convs)
    n_lin = len(p.layers) - n_conv
    c, h, w = (p.input_size + (0, 0, 0))[:3]
    head = (
        f"**{v.label}** ({n_conv} conv + {n_lin} linear outputs; input {c}x{h}x{w}, batch {p.batch}, "
        f"{p.seeds} seeds, {p.dtype}, train mode"
        + ("" if v.init == OWN_INIT else f"; every conv and linear weight re-drawn from {v.init}")
        + "): "
    )
    bad = _first_bad(p)
    if bad is not None:
        i, layer = bad
        what = "the activation overflows (inf/nan)" if _overflowed(layer.act) else "the gradient overflows (inf/nan)"
        return head + (
            f"the values leave the {p.dtype} range: {what} first at layer {i + 1} ({layer.key}). "
            "Nothing after it is a measurement."
        )
    acts = np.array([layer.mean_sd("act")[0] for layer in p.layers])
    acts = acts[np.isfinite(acts)]
    wg = np.array([layer.mean_sd("wgrad")[0] for layer in p.layers])
    slope_a = p.slope("act")
    ratio, ratio_sd = p.first_to_last_conv_grad()
    parts = [
        f"the activations {_trend(slope_a)} across the layers (E[y^2] from {_pow10(acts.min())} to "
        f"{_pow10(acts.max())}, least-squares slope {slope_a:+.3f} per layer in log)"
    ]
    if math.isfinite(ratio):
        way = "larger" if ratio > 0 else "smaller"
        parts.append(
            f"the gradient with respect to them is {times_text(ratio)} (RMS, ±{ratio_sd:.2f} in log over seeds) "
            f"at the first conv against the last, i.e. {way} towards the input"
        )
    finite_wg = wg[np.isfinite(wg)]
    if len(finite_wg):
        parts.append(f"weight gradients E[(dL/dW)^2] span {_pow10(finite_wg.min())} to {_pow10(finite_wg.max())}")
    zero = p.zero_grad_layers
    if zero:
        parts.append(
            f"the gradient is exactly zero at {len(zero)} of {len(p.layers)} layers (e.g. {zero[0]}): "
            "nothing reaches them through a branch that starts at zero"
        )
    text = head + "; ".join(parts) + ". "
    nf, med_f, max_f = p.deviation("act")
    nb, med_b, max_b = p.deviation("grad")
    if nf or nb:
        text += (
            f"The init-time laws reach {nf} of {n_conv} convs forward and {nb} backward (conv-BN-ReLU and conv-ReLU "
            "links, convs on the input)"
        )
        reached = []
        if nf:
            reached.append(f"forward within a median {_pct(med_f)} (worst {_pct(max_f)})")
        if nb:
            reached.append(f"backward within a median {_pct(med_b)} (worst {_pct(max_b)})")
        text += "; the measured means are " + " and ".join(reached) + " of the predictions"
        pred = p.predicted_first_to_last_conv_grad()
        if math.isfinite(pred):
            text += f"; one chain spans the net, and it predicts {times_text(pred)} for the first conv against the last"
        text += ". "
    else:
        text += "No conv follows BN-ReLU or ReLU from another conv alone, so the init-time laws do not reach it. "
    if reference is not None and reference.finite:
        r_ref, _ = reference.first_to_last_conv_grad()
        if math.isfinite(r_ref) and math.isfinite(ratio):
            text += (
                f"Against {reference.variant.label} ({times_text(r_ref)}), {v.change or 'this variant'} "
                f"multiplies the first-conv gradient relative to the last conv by {times_text(ratio - r_ref)}."
            )
    return text.strip()


# --- files ------------------------------------------------------------------------------------

CSV_FIELDS = [
    "model", "base", "change", "init", "seed", "index", "layer", "kind", "shape", "act_log_second_moment",
    "grad_log_second_moment", "weight_grad_log_second_moment", "predicted_act_log_second_moment",
    "predicted_grad_log_second_moment", "anchor", "law",
]


def write_csv(profiles: Sequence[ModelProfile], path: Path) -> None:
    """One row per variant, seed and conv / linear call (natural logs; empty where not predicted)."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in profiles:
            v = p.variant
            for i, layer in enumerate(p.layers):
                for s in range(p.seeds):
                    writer.writerow({
                        "model": v.label, "base": v.base, "change": v.change, "init": v.init, "seed": s,
                        "index": i, "layer": layer.key, "kind": layer.kind,
                        "shape": "x".join(map(str, layer.shape)),
                        "act_log_second_moment": _fin(layer.act[s]),
                        "grad_log_second_moment": _fin(layer.grad[s]),
                        "weight_grad_log_second_moment": _fin(layer.wgrad[s]),
                        "predicted_act_log_second_moment": _fin(layer.pred_act[s]),
                        "predicted_grad_log_second_moment": _fin(layer.pred_grad[s]),
                        "anchor": layer.anchor, "law": layer.law,
                    })


def profile_json(p: ModelProfile, sentence_text: str) -> dict[str, Any]:
    v = p.variant
    ratio, ratio_sd = p.first_to_last_conv_grad()
    nf, med_f, max_f = p.deviation("act")
    nb, med_b, max_b = p.deviation("grad")
    layers = []
    for layer in p.layers:
        row: dict[str, Any] = {"layer": layer.key, "kind": layer.kind, "shape": list(layer.shape), "law": layer.law,
                               "anchor": layer.anchor}
        for what in ("act", "grad", "wgrad"):
            m, sd = layer.mean_sd(what)
            row[f"{what}_log_mean"], row[f"{what}_log_sd"] = _fin(m), _fin(sd)
        row["predicted_act_log_mean"] = _fin(float(np.mean(layer.pred_act)))
        row["predicted_grad_log_mean"] = _fin(float(np.mean(layer.pred_grad)))
        layers.append(row)
    return {
        "model": v.label, "base": v.base, "change": v.change, "init": v.init, "reference": v.reference,
        "input_size": list(p.input_size), "batch": p.batch, "seeds": p.seeds, "dtype": p.dtype,
        "finite": p.finite, "seconds": _fin(p.seconds),
        "activation_slope_per_layer": _fin(p.slope("act")),
        "log_first_to_last_conv_grad_rms": _fin(ratio), "log_first_to_last_conv_grad_rms_sd": _fin(ratio_sd),
        "predicted_log_first_to_last_conv_grad_rms": _fin(p.predicted_first_to_last_conv_grad()),
        "reached_forward": nf, "median_abs_log_error_forward": _fin(med_f), "max_abs_log_error_forward": _fin(max_f),
        "reached_backward": nb, "median_abs_log_error_backward": _fin(med_b),
        "max_abs_log_error_backward": _fin(max_b),
        "sentence": sentence_text, "layers": layers,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PANELS = (
    ("act", "activation E[y²]", "pred_act"),
    ("grad", "gradient w.r.t. activation E[(dL/dy)²]", "pred_grad"),
    ("wgrad", "weight gradient E[(dL/dW)²]", None),
)


def plot_profiles(profiles: Sequence[ModelProfile], path: Path, title: str) -> None:
    """Three panels (activation, its gradient, weight gradient) against the layer index; one
    colour per variant, error bars: sd over seeds; dashed: the laws where they reach."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), squeeze=False)
    for j, p in enumerate(profiles):
        color = f"C{j % 10}"
        x = np.arange(1, len(p.layers) + 1)
        for ax, (what, label, pred) in zip(axes[0], PANELS, strict=True):
            ms = np.array([layer.mean_sd(what) for layer in p.layers])
            ms[~np.isfinite(ms[:, 0])] = np.nan  # exact zeros (log -inf) and overflows are not drawn
            ax.errorbar(x, ms[:, 0] * LOG10E, yerr=np.nan_to_num(ms[:, 1]) * LOG10E, fmt="o-", ms=2.5, lw=1,
                        capsize=1.5, color=color, label=p.variant.label)
            if pred is not None:
                y = np.array([float(np.mean(getattr(layer, pred))) for layer in p.layers])
                if pred == "pred_grad":  # the anchors are measurements: draw the chains, not them alone
                    keep = np.array([layer.reached_backward or layer.anchor for layer in p.layers])
                    y = np.where(keep, y, np.nan)
                if np.any(np.isfinite(y)):
                    ax.plot(x, y * LOG10E, "x--", ms=5, lw=1.2, color=color, alpha=0.75,
                            label=f"{p.variant.label}: laws" if what == "act" else None)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("conv / linear output, forward order")
            ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("log10")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"{title}: per-layer second moments at init (error bars: sd over seeds; dashed: the laws; "
                 "exact zeros not drawn)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_model_outputs(profiles: Sequence[ModelProfile], info: ModelRunInfo, out: Path) -> dict[str, Path]:
    """Write every output into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    by_label = {p.variant.label: p for p in profiles}
    sentences = [sentence(p, by_label.get(p.variant.reference or "")) for p in profiles]
    paths = {"csv": out / "model_profiles.csv", "json": out / "model_profiles.json", "report": out / "report.md"}
    write_csv(profiles, paths["csv"])
    paths["json"].write_text(json.dumps(
        {"command": info.command, "device": info.device, "wall_seconds": _fin(info.wall_seconds),
         "models": [profile_json(p, s) for p, s in zip(profiles, sentences, strict=True)]}, indent=1) + "\n")
    bases: dict[str, list[ModelProfile]] = {}
    for p in profiles:
        bases.setdefault(p.variant.base, []).append(p)
    figures: dict[str, str] = {}
    try:
        for base, group in bases.items():
            name = f"profile_{_slug(base)}.png"
            plot_profiles(group, out / name, base)
            figures[base] = name
            paths[name] = out / name
    except ImportError:
        info.notes.append("matplotlib is not installed: no figures (pip install matplotlib)")
    lines = [
        "# Gradient flow of a model at initialisation", "",
        f"Command: `{info.command}`  ",
        f"Device {info.device}; wall time {info.wall_seconds:.1f} s.", "",
        "## What was measured", "",
        "Each model is built with a fixed seed per run (its own initialisation unless a variant says otherwise), "
        "put in train mode (BN uses batch statistics) and fed x ~ N(0, 1). The loss is a random projection "
        "sum <g, output> with g ~ N(0, 1), so the backward pass starts from gradients of second moment 1 "
        "whatever the forward scale. Hooks on every Conv2d and Linear call record the second moment of its output "
        "E[y²] (the activation, before BN and ReLU), of the gradient with respect to it E[(dL/dy)²], and of its "
        "weight gradient E[(dL/dW)²]. Values are means over seeds of the natural log; the plots show log10 with "
        "the seeds' standard deviation as error bars.", "",
        "Where the laws reach (conformance/gradflow/reach.py), the prediction is drawn dashed: a conv fed by "
        "BN then ReLU sees a unit-variance input per channel, so E[y²] = n·E[w²]/2 (He et al. 2015, Eq. (7), "
        "n = fan-in); going back along a conv-BN-ReLU link, BN divides the gradient by the per-channel variance "
        "of the conv before it (π/(π−1) per layer in a chain of equal convs; Yang et al. 2019 for the growth); "
        "along a conv-ReLU link without BN, the gradient changes by n_out·E[w²]/2 (He et al. 2015, Eq. (12)). "
        "Backward predictions are anchored on the measured gradient at each chain's last conv. Zero padding "
        "enters through the taps that fall inside the map and a border term whose weight (1/2) is fitted, "
        "not derived (reach.BORDER_WEIGHT). Sums with shortcuts, pools and concatenations are outside the "
        "laws' reach: the dashed line stops there.", "",
    ]
    lines += [f"> {n}" for n in info.notes] + ([""] if info.notes else [])
    for base, group in bases.items():
        lines += [f"## {base}", ""]
        if base in figures:
            lines += [f"![{base}]({figures[base]})", ""]
        for p in group:
            lines += [f"- {sentences[profiles.index(p)]}"]
        lines += [""]
    lines += [
        "## Files", "",
        "`model_profiles.csv` (one row per model, seed and layer; natural logs), `model_profiles.json` "
        "(per model: the sentence, summary numbers, per-layer means and sds), `profile_<model>.png`.",
    ]
    paths["report"].write_text("\n".join(lines) + "\n")
    return paths
