"""Run the gradient-flow experiments: Monte Carlo over seeds, compared with ``theory``.

For one ``Setting`` and seed: build the experiment net from a seeded generator, draw
x_0 ~ N(0, 1) of shape (N, C, H, W) and a probe direction g ~ N(0, 1) shaped like the output,
run the forward pass and backward the probe loss <g, h_L> (the backward pass then
starts from E[g^2] = 1, independent of the forward scale), and read the probes.
Per seed: the least-squares slopes of the log second moments; over seeds: the mean of the
log profiles and of the slopes, with standard errors (std / sqrt(seeds)).

The verdict: ``agrees`` when |measured - predicted| <= the tolerance (``theory.tolerance``)
+ 2 standard errors for both slopes, and, where the profile law is exact, every point of the
mean profile is within the relative profile tolerance.

Public helpers for the claims catalogue: ``run_setting``, ``measure`` (keyword shortcut),
``first_layer_gradient_vs_depth``, ``probe_model``, ``float32_onset_measured``,
``bn_scale_invariance`` and ``zero_init_identity``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import theory
from .nets import build_net, init_weight_, probe_names
from .probes import LayerStats, Probe
from .setting import Setting

__all__ = [
    "DepthPoint",
    "SeedRun",
    "SettingResult",
    "bn_scale_invariance",
    "first_layer_gradient_vs_depth",
    "float32_onset_measured",
    "measure",
    "probe_model",
    "run_grid",
    "run_seed",
    "run_setting",
    "zero_init_identity",
]

SEED_BASE = 20_240_000  # generator seed = SEED_BASE + seed index (common across settings)

# Student t 97.5% quantiles for 1..30 degrees of freedom (standard table); 1.96 beyond.
# The verdicts allow t * SE: with 5 seeds the SE itself is uncertain (t = 2.776, not 2).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
    2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
    2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t975(dof: int) -> float:
    """Two-sided 95% Student t quantile (0 when there is no standard error)."""
    if dof <= 0:
        return 0.0
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def _dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


@dataclass
class SeedRun:
    """One network (one seed): per-probe records in forward order."""

    seed: int
    records: list[LayerStats]

    @property
    def log_forward(self) -> np.ndarray:
        return np.array([r.act_log_second_moment for r in self.records])

    @property
    def log_backward(self) -> np.ndarray:
        return np.array([r.grad_log_second_moment for r in self.records])


def run_seed(
    setting: Setting, seed: int, *, device: torch.device | str = "cpu"
) -> SeedRun:
    """Build, probe and backward one seeded experiment net."""
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    dtype = _dtype(setting.dtype)
    net = build_net(
        depth=setting.depth, width=setting.width, init=setting.init,
        residual=setting.residual, bn=setting.bn, padding=setting.padding,
        kernel_size=setting.kernel_size, generator=gen, dtype=dtype, device=device,
    )
    shape = (setting.batch, setting.width, setting.spatial, setting.spatial)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    x.requires_grad_(True)
    g = torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    with Probe(net, modules=probe_names(setting.depth, setting.residual)) as probe:
        out = net(x)  # (N, C, H, W): constant width and size
        (g * out).sum().backward()
        records = list(probe.records)
    return SeedRun(seed=seed, records=records)


@dataclass
class SettingResult:
    """Measured vs predicted for one setting over its seeds."""

    setting: Setting
    prediction: theory.Prediction
    runs: list[SeedRun]
    slopes_forward: np.ndarray = field(init=False)
    slopes_backward: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        k = self.prediction.fit_from
        self.slopes_forward = np.array([theory.lsq_slope(r.log_forward[k:]) for r in self.runs])
        self.slopes_backward = np.array(
            [-theory.lsq_slope(r.log_backward[k:]) for r in self.runs]
        )

    # -- aggregates over seeds -----------------------------------------------------------
    @property
    def profile_forward(self) -> np.ndarray:
        """Mean over seeds of log E[h_l^2] (nan where a seed was not finite)."""
        return np.mean([r.log_forward for r in self.runs], axis=0)

    @property
    def profile_backward(self) -> np.ndarray:
        return np.mean([r.log_backward for r in self.runs], axis=0)

    @staticmethod
    def _mean_se(values: np.ndarray) -> tuple[float, float]:
        if len(values) == 0 or not np.all(np.isfinite(values)):
            return math.nan, math.nan
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        return float(values.mean()), se

    @property
    def slope_forward(self) -> tuple[float, float]:
        return self._mean_se(self.slopes_forward)

    @property
    def slope_backward(self) -> tuple[float, float]:
        return self._mean_se(self.slopes_backward)

    @property
    def log_first_to_last_grad(self) -> float:
        """Mean over seeds of log RMS(dL/dh_first) / RMS(dL/dh_last)."""
        b = self.profile_backward
        return 0.5 * float(b[0] - b[-1])

    @property
    def finite(self) -> bool:
        return all(r.act_finite and r.grad_finite for run in self.runs for r in run.records)

    def profile_error(self, direction: str) -> float:
        """Largest relative error of the mean profile against the predicted one."""
        measured = self.profile_forward if direction == "forward" else self.profile_backward
        predicted = self.prediction.forward if direction == "forward" else self.prediction.backward
        return float(np.max(np.abs(np.expm1(measured - predicted))))

    def profile_excess(self, direction: str, tol: float) -> float:
        """Largest amount by which a layer's relative error exceeds ``tol`` + t * SE of that
        layer's log (over seeds); <= 0 means every layer is within."""
        logs = np.array(
            [r.log_forward if direction == "forward" else r.log_backward for r in self.runs]
        )
        predicted = self.prediction.forward if direction == "forward" else self.prediction.backward
        err = np.abs(np.expm1(logs.mean(axis=0) - predicted))
        if len(self.runs) > 1:
            se = logs.std(axis=0, ddof=1) / math.sqrt(len(self.runs))
            allowance = np.expm1(t975(len(self.runs) - 1) * se)
        else:
            allowance = np.zeros_like(err)
        return float(np.max(err - tol - allowance))

    # -- verdict -------------------------------------------------------------------------
    def checks(self) -> dict[str, Any]:
        p, tol = self.prediction, self.prediction.tol
        (mf, sef), (mb, seb) = self.slope_forward, self.slope_backward
        t = t975(len(self.runs) - 1)
        se_f = 0.0 if math.isnan(sef) else t * sef
        se_b = 0.0 if math.isnan(seb) else t * seb
        err_f, err_b = mf - p.slope_forward, mb - p.slope_backward
        below_f = max(tol.slope_forward, tol.drift)
        below_b = max(tol.slope_backward, tol.drift)
        out: dict[str, Any] = {
            "forward_error": err_f,
            "backward_error": err_b,
            "forward_ok": -(below_f + se_f) <= err_f <= tol.slope_forward + se_f,
            "backward_ok": -(below_b + se_b) <= err_b <= tol.slope_backward + se_b,
        }
        if p.exact and tol.profile_forward is not None and tol.profile_backward is not None:
            out["profile_error_forward"] = self.profile_error("forward")
            out["profile_error_backward"] = self.profile_error("backward")
            out["forward_ok"] = out["forward_ok"] and (
                self.profile_excess("forward", tol.profile_forward) <= 0
            )
            out["backward_ok"] = out["backward_ok"] and (
                self.profile_excess("backward", tol.profile_backward) <= 0
            )
        return out

    @property
    def verdict(self) -> str:
        if not self.finite:
            return "non-finite"
        if math.isnan(self.slope_forward[0]) or math.isnan(self.prediction.slope_forward):
            return "n/a"
        c = self.checks()
        return "agrees" if (c["forward_ok"] and c["backward_ok"]) else "disagrees"

    def summary(self) -> dict[str, Any]:
        """One JSON object for summary.json (non-finite numbers become None)."""
        s, p = self.setting, self.prediction
        (mf, sef), (mb, seb) = self.slope_forward, self.slope_backward
        checks = self.checks() if self.finite else {}
        row: dict[str, Any] = {
            "depth": s.depth,
            "width": s.width,
            "init": s.init,
            "residual": s.residual,
            "bn": s.bn,
            "padding": s.padding,
            "unit": s.unit,
            "seeds": len(self.runs),
            "batch": s.batch,
            "spatial": s.spatial,
            "dtype": s.dtype,
            "measured_slope_forward": mf,
            "measured_slope_forward_se": sef,
            "predicted_slope_forward": p.slope_forward,
            "tolerance_forward": p.tol.slope_forward,
            "drift_allowance": p.tol.drift,
            "t_quantile": t975(len(self.runs) - 1),
            "measured_slope_backward": mb,
            "measured_slope_backward_se": seb,
            "predicted_slope_backward": p.slope_backward,
            "tolerance_backward": p.tol.slope_backward,
            "first_to_last_grad_ratio": math.exp(self.log_first_to_last_grad)
            if math.isfinite(self.log_first_to_last_grad) and self.log_first_to_last_grad < 700
            else None,
            "log_first_to_last_grad_ratio": self.log_first_to_last_grad,
            "predicted_first_to_last_grad_ratio": math.exp(p.log_first_to_last_grad)
            if p.log_first_to_last_grad < 700
            else None,
            "predicted_log_first_to_last_grad_ratio": p.log_first_to_last_grad,
            "law_forward": p.law_forward,
            "law_backward": p.law_backward,
            "profile_exact": p.exact,
            "profile_error_forward": checks.get("profile_error_forward"),
            "profile_error_backward": checks.get("profile_error_backward"),
            "profile_tolerance_forward": p.tol.profile_forward,
            "profile_tolerance_backward": p.tol.profile_backward,
            "tolerance_source": p.tol.source,
            "tolerance_extrapolated": p.tol.extrapolated,
            "verdict": self.verdict,
        }
        return {k: _json_number(v) for k, v in row.items()}


def _json_number(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def run_setting(
    setting: Setting,
    *,
    seeds: int = 5,
    device: torch.device | str = "cpu",
    on_seed: Callable[[], None] | None = None,
) -> SettingResult:
    """Measure ``setting`` over ``seeds`` seeded nets and compare with ``theory.predict``."""
    runs = []
    for seed in range(seeds):
        runs.append(run_seed(setting, seed, device=device))
        if on_seed is not None:
            on_seed()
    return SettingResult(setting=setting, prediction=theory.predict(setting), runs=runs)


def measure(
    *,
    depth: int,
    width: int = 32,
    init: str = "he_fan_in",
    residual: str = "off",
    bn: bool = False,
    padding: str = "circular",
    seeds: int = 5,
    batch: int = 32,
    spatial: int = 8,
    dtype: str = "float64",
    device: str = "cpu",
) -> SettingResult:
    """Keyword shortcut: ``measure(depth=16, init="naive").summary()``."""
    s = Setting(
        depth=depth, width=width, init=init, residual=residual, bn=bn, padding=padding,
        batch=batch, spatial=spatial, dtype=dtype,
    )
    return run_setting(s, seeds=seeds, device=device)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def progress_bar(*, total: int, desc: str, unit: str, enabled: bool) -> Any:
    """A tqdm bar on stderr, or a silent stand-in when disabled or tqdm is missing."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    import sys

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


def run_grid(
    settings: Sequence[Setting],
    *,
    seeds: int,
    device: str = "cpu",
    progress: bool = True,
) -> list[SettingResult]:
    """Run every setting, with a tqdm progress bar on stderr (one tick per net)."""
    bar = progress_bar(total=len(settings) * seeds, desc="gradflow", unit="net", enabled=progress)
    results = []
    try:
        for s in settings:
            bar.set_postfix_str(s.label, refresh=False)
            results.append(run_setting(s, seeds=seeds, device=device, on_seed=bar.update))
    finally:
        bar.close()
    return results


# --- first-layer gradient vs depth -----------------------------------------------------------


@dataclass(frozen=True)
class DepthPoint:
    depth: int
    residual: str
    bn: bool
    init: str
    log_ratio: float  # mean over seeds of log RMS(dL/dh_first)/RMS(dL/dh_last)
    log_ratio_se: float
    predicted_log_ratio: float
    tolerance: float  # absolute, on log_ratio (from the setting's profile / slope tolerance)
    t: float = 2.0  # Student t quantile for the seeds' standard error

    @property
    def within_band(self) -> bool:
        return abs(self.log_ratio - self.predicted_log_ratio) <= self.tolerance + self.t * (
            0.0 if math.isnan(self.log_ratio_se) else self.log_ratio_se
        )


def _ratio_tolerance(result: SettingResult) -> float:
    tol, p = result.prediction.tol, result.prediction
    if p.exact and tol.profile_backward is not None:
        return 0.5 * math.log1p(tol.profile_backward)  # RMS: half of the 2nd-moment error
    return 0.5 * max(tol.slope_backward, tol.drift) * (len(p.backward) - 1)


def first_layer_gradient_vs_depth(
    depths: Iterable[int],
    *,
    residual: str,
    bn: bool,
    init: str = "he_fan_in",
    width: int = 16,
    seeds: int = 3,
    batch: int = 16,
    spatial: int = 8,
    padding: str = "circular",
    device: str = "cpu",
) -> list[DepthPoint]:
    """RMS of dL/dh at the first probed tensor over that at the last, for each depth."""
    out = []
    for depth in depths:
        s = Setting(
            depth=depth, width=width, init=init, residual=residual, bn=bn, padding=padding,
            batch=batch, spatial=spatial,
        )
        res = run_setting(s, seeds=seeds, device=device)
        per_seed = np.array([0.5 * (r.log_backward[0] - r.log_backward[-1]) for r in res.runs])
        mean, se = SettingResult._mean_se(per_seed)
        out.append(
            DepthPoint(
                depth=depth, residual=residual, bn=bn, init=init, log_ratio=mean,
                log_ratio_se=se, predicted_log_ratio=res.prediction.log_first_to_last_grad,
                tolerance=_ratio_tolerance(res), t=t975(seeds - 1),
            )
        )
    return out


# --- any model --------------------------------------------------------------------------------


def probe_model(
    model: nn.Module,
    x: torch.Tensor,
    *,
    modules: Iterable[str] | Callable[[str, nn.Module], bool] | None = None,
    seed: int = 0,
) -> list[LayerStats]:
    """Forward ``x``, backward the probe loss <g, output> (g ~ N(0,1), seeded), return the
    per-layer records (default: every Conv2d and Linear). The model's mode is left as is."""
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    with Probe(model, modules=modules) as probe:
        out = model(x)
        g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out)
        (g * out).sum().backward()
        return list(probe.records)


def float32_onset_measured(
    setting: Setting, *, seeds: int = 1, device: str = "cpu"
) -> list[tuple[str, int | None]]:
    """Per seed: the first layer (1-based) whose y_l is non-finite ("overflow") or all zero
    ("underflow") in a float32 forward pass; ("none", None) if neither happens."""
    s = Setting(**{**setting.as_dict(), "dtype": "float32"})
    out: list[tuple[str, int | None]] = []
    for seed in range(seeds):
        run = run_seed(s, seed, device=device)
        found: tuple[str, int | None] = ("none", None)
        for i, r in enumerate(run.records):
            if not r.act_finite:
                found = ("overflow", i + 1)
                break
            if r.act_zero_fraction == 1.0:
                found = ("underflow", i + 1)
                break
        out.append(found)
    return out


@dataclass(frozen=True)
class ScaleInvariance:
    max_rel_output_diff: float  # max |out_scaled - out| / max |out|
    max_grad_norm_error: float  # max over scaled convs of | a * |grad_scaled| / |grad| - 1 |
    max_grad_angle: float  # max over scaled convs of 1 - cos(grad_scaled, grad)
    scales: dict[str, float]


def bn_scale_invariance(
    model: nn.Module,
    x: torch.Tensor,
    *,
    convs: Sequence[str],
    scheme: str = "naive",
    seed: int = 0,
) -> ScaleInvariance:
    """Rescale the named convs (each must feed a BatchNorm) to the weight scale of ``scheme``
    and compare train-mode outputs and weight gradients with the original (P11).

    Each conv's weights are multiplied by a = RMS(scheme) / RMS(current), keeping their
    direction: BN cancels a up to its eps, so the outputs agree to about eps / Var and each
    weight gradient is divided by a. Gradients are compared by norm and angle: the ~1e-4
    eps perturbation flips ReLU / max-pool kinks at a few positions, which changes single
    gradient entries by O(1) relative amounts, so an elementwise comparison is not the law.
    """
    import copy

    named = dict(model.named_modules())
    scaled = copy.deepcopy(model)
    scaled_named = dict(scaled.named_modules())
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    scales = {}
    with torch.no_grad():
        for name in convs:
            w = named[name].weight
            ref = torch.empty_like(w)
            init_weight_(ref, scheme, gen)
            a = float(ref.pow(2).mean().sqrt() / w.pow(2).mean().sqrt())
            scaled_named[name].weight.copy_(w * a)
            scales[name] = a
    gen_g = torch.Generator()

    def run(m: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m.zero_grad(set_to_none=True)
        out = m(x)
        gen_g.manual_seed(SEED_BASE + seed + 1)  # the same probe direction g for both
        g = torch.randn(out.shape, generator=gen_g, dtype=torch.float64).to(out)
        (g * out).sum().backward()
        mods = dict(m.named_modules())
        return out.detach(), {n: mods[n].weight.grad.detach().clone() for n in convs}

    out_a, grads_a = run(model)
    out_b, grads_b = run(scaled)
    rel = float((out_b - out_a).abs().max() / out_a.abs().max())
    norm_err, angle = 0.0, 0.0
    for name in convs:
        ga, gb = grads_a[name].flatten(), grads_b[name].flatten()
        norm_err = max(norm_err, abs(float(gb.norm() * scales[name] / ga.norm()) - 1.0))
        angle = max(angle, 1.0 - float(torch.nn.functional.cosine_similarity(ga, gb, dim=0)))
    return ScaleInvariance(
        max_rel_output_diff=rel, max_grad_norm_error=norm_err, max_grad_angle=angle,
        scales=scales,
    )


def zero_init_identity(
    model: nn.Module, x: torch.Tensor, *, blocks: Sequence[str]
) -> dict[str, bool]:
    """For each named block: does it return exactly its input (``torch.equal``)?"""
    named = dict(model.named_modules())
    seen: dict[str, bool] = {}
    handles = []
    for name in blocks:

        def hook(module: nn.Module, inputs: Any, output: Any, name: str = name) -> None:
            seen[name] = isinstance(output, torch.Tensor) and torch.equal(output, inputs[0])

        handles.append(named[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen
