"""Predicted per-layer second moments of activations and activation gradients at init.

Sources (each law below names its paper; [derived] marks one worked out here):
* P1/P2, He et al. 2015 Eqs. (7)-(14): plain ReLU convs with Var[w] = sigma^2 multiply the
  forward second moment by n*sigma^2/2 per layer (n = k^2 C_in) and the backward one by
  n_hat*sigma^2/2 (n_hat = k^2 C_out), going from the output towards the input.
* P3 [derived]: zero padding; E[y_p^2] = sigma^2 * sum over the valid neighbours q of p of
  E[x_q^2], so the per-position second moment map is propagated with the k x k ones kernel / k^2
  (zero padded). Circular padding keeps a uniform map uniform: the plain laws then hold as is.
* P6: residual x + F(x) without BN, He branch: x2 per block forward and backward; (x+F)/sqrt2
  keeps it flat; a zero last conv makes the block the identity (SkipInit / Fixup).
* P7/P8 (De & Smith 2020; kappa derived): BN in the branch, E[x_l^2] = q_0 + l*g, g =
  n*sigma_2^2/2; backward d_{l-1} = d_l * (1 + kappa*g / v_{l-1}), kappa = pi/(pi-1),
  v_l = 1 + l*g*(1 - 1/pi) the per-channel variance of the stream.
* P9 (Yang et al. 2019; constant derived): plain conv-BN-ReLU in train mode: forward flat,
  backward x kappa per layer. Where kappa comes from: BN divides the backward signal by the
  per-channel *variance* of the conv output, while the conv forward carries the *second
  moment* of its ReLU input; a ReLU of a standard normal has mean 1/sqrt(2 pi), second moment
  1/2, so variance / second moment = 1 - 1/pi.
* P12 [derived]: float32 onset: the largest of M Gaussian entries is about sqrt(2 ln M) RMS
  (extreme-value asymptotics), so activations overflow where log RMS + log sqrt(2 ln M) >
  log(float32 max), and are all zero (every gradient zero) where it is below log(smallest
  float32 subnormal).

Everything here is closed form from the Setting (layer shapes, the init table's variance):
no module, no measurement. ``predict`` returns the whole per-layer profile in log space, in
the order the probes record (plain: y_1 .. y_L; residual: x_0 .. x_L), and the least-squares
slopes over the fit range. Where the profile is exact in expectation (circular padding, plain
laws; BN residual laws) it is also compared point by point.

Sign convention of slopes: forward = d log E[h_l^2] / dl; backward = d log E[(dL/dh_l)^2] /
d(L - l), i.e. the growth per layer going from the output towards the input. Positive:
explodes (forward) or grows towards the input (backward); negative: vanishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .nets import init_variance
from .setting import Setting

__all__ = [
    "KAPPA",
    "ConvShape",
    "bn_chain_log_grad_ratio",
    "Prediction",
    "Tolerance",
    "float32_onset",
    "lsq_slope",
    "predict",
    "tolerance",
]

KAPPA = math.pi / (math.pi - 1.0)  # P8/P9: variance vs second moment of ReLU(N(0,1))
RELU_VAR_FRACTION = 1.0 - 1.0 / math.pi  # Var[ReLU(z)] / E[ReLU(z)^2], z ~ N(0, 1)
BN_EPS = 1e-5  # nn.BatchNorm2d default


def lsq_slope(y: np.ndarray, x: np.ndarray | None = None) -> float:
    """Least-squares slope of y against x (default 0, 1, 2, ...); nan with < 2 points."""
    y = np.asarray(y, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)
    if len(y) < 2 or not np.all(np.isfinite(y)):
        return math.nan
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def _slope_sensitivity(n_points: int) -> float:
    """Largest change of the lsq slope when every point moves by at most 1."""
    if n_points < 2:
        return math.inf
    x = np.arange(n_points, dtype=np.float64)
    xc = x - x.mean()
    return float(np.abs(xc).sum() / (xc * xc).sum())


# --- spatial maps: zero padding ------------------------------------------------------------


def _spread(v: np.ndarray, padding: str, k: int) -> np.ndarray:
    """Mean of v over each k x k neighbourhood (zero or circular padding): the map of
    E[y_p^2] / (sigma^2 * n) given the map of the input's second moments. Self-adjoint, so
    the backward pass uses it too."""
    if k == 1:
        return v
    r = k // 2
    out = np.zeros_like(v)
    if padding == "circular":
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                out += np.roll(np.roll(v, dy, axis=0), dx, axis=1)
    else:
        h, w = v.shape
        padded = np.zeros((h + 2 * r, w + 2 * r))
        padded[r : r + h, r : r + w] = v
        for dy in range(k):
            for dx in range(k):
                out += padded[dy : dy + h, dx : dx + w]
    return out / (k * k)


# --- tolerances (data, with where they come from) ------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    slope_forward: float  # absolute, per unit (layer or block)
    slope_backward: float
    profile_forward: float | None  # relative, every point of the profile; None: not checked
    profile_backward: float | None
    source: str
    extrapolated: bool = False  # width outside the range where the tolerance held
    # Downward allowance on both slopes for the finite-width drift (P5, Hanin 2018): the
    # mean over seeds of log E[.] falls below the log of the mean law by up to 5/(2C) per
    # ReLU-conv layer that the signal's energy goes through. Applied as
    # -max(slope, drift) <= measured - predicted <= slope. (Our 40-seed runs at C = 32:
    # -0.07 forward and -0.018 backward per layer, so a 5-seed mean misses the trials'
    # symmetric 0.062 / 0.013 about half the time.)
    drift: float = 0.0


def _by_width(width: int, at32: float, at16: float) -> tuple[float, bool]:
    if width >= 32:
        return at32, False
    if width >= 16:
        return at16, False
    return at16 * 16.0 / width, True  # finite-width drift scales like 1/C (Hanin 2018)


ZERO_PADDING_EXTRA = 0.03  # per conv; our trials of the map model at 8x8 (see report)


def tolerance(s: Setting) -> Tolerance:
    """The tolerance that held in trials for ``s`` (widths >= 32, 5 seeds; each case says why)."""
    if s.residual == "zeroinit":
        return Tolerance(1e-12, 1e-12, None, None, "exact: x + 0 == x (P6, SkipInit/Fixup)")
    convs_per_unit = 1 if s.plain else 2
    pad = ZERO_PADDING_EXTRA * convs_per_unit if s.padding == "zero" else 0.0
    if s.plain and not s.bn:
        f, ext = _by_width(s.width, 0.062, 0.159)
        b, _ = _by_width(s.width, 0.013, 0.030)
        return Tolerance(
            f + pad, b + pad, None, None,
            "trials, law P1, P2: held at C>=32 (C=16: 0.159/0.030), 5 seeds; "
            "finite-width drift <= 5/(2C) per layer (P5)", ext, drift=2.5 / s.width,
        )
    if s.plain and s.bn:
        return Tolerance(
            0.05 + pad, 0.05 + pad, None, None, "trials, law P9: +-0.05", False
        )
    if not s.bn:
        t, ext = _by_width(s.width, 0.10, 0.15)
        g = s.fan * init_variance(s.init, s.fan, s.fan) / 2.0
        branch_fraction = g * g / (1.0 + g * g)  # of the block output's energy
        return Tolerance(
            t + pad, t + pad, None, None,
            "trials, law P6: +-0.10 per block at C>=32 (0.15 at C=16); "
            "finite-width drift <= 5/(2C) per branch layer (P5)", ext,
            drift=2.0 * branch_fraction * 2.5 / s.width,
        )
    n = s.depth + 1
    rel_f, rel_b = 0.07, 0.05
    if s.padding == "zero":
        rel_f, rel_b = 0.15, 0.15
    sens = _slope_sensitivity(n)
    return Tolerance(
        math.log1p(rel_f) * sens, math.log1p(rel_b) * sens, rel_f, rel_b,
        "trials, law P7 (+-7% forward profile), P8 (+-5% backward profile)",
        s.width < 16,
    )


# --- predictions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    setting: Setting
    forward: np.ndarray  # predicted log E[h_l^2], probe order
    backward: np.ndarray  # predicted log E[(dL/dh_l)^2], probe order
    fit_from: int  # first probe index used in slope fits
    law_forward: str
    law_backward: str
    exact: bool  # profile exact in expectation over the weights (circular padding)
    tol: Tolerance
    asymptotic_forward: float  # the per-unit law in its simplest form (for the report)
    asymptotic_backward: float
    notes: list[str] = field(default_factory=list)

    @property
    def slope_forward(self) -> float:
        return lsq_slope(self.forward[self.fit_from :])

    @property
    def slope_backward(self) -> float:
        return -lsq_slope(self.backward[self.fit_from :])

    @property
    def log_first_to_last_grad(self) -> float:
        """log of RMS(dL/dh_first) / RMS(dL/dh_last)."""
        return 0.5 * float(self.backward[0] - self.backward[-1])


def fit_from(s: Setting) -> int:
    """Plain nets: skip y_1 (it sees the raw input, not a ReLU output); residual: from x_0."""
    return 1 if (s.plain and s.depth >= 3) else 0


def _plain(s: Setting) -> tuple[np.ndarray, np.ndarray]:
    n, k, pad = s.fan, s.kernel_size, s.padding
    var = init_variance(s.init, n, n)
    v = np.ones((s.spatial, s.spatial))  # E[x_0^2] = 1: the input is N(0, 1)
    fwd: list[float] = []
    chan_var: list[float] = []
    for layer in range(s.depth):
        if layer > 0:
            if s.bn:  # per-channel normalisation: the map keeps its shape, mean -> v/(v+eps)
                cv = chan_var[-1]
                v = v / v.mean() * cv / (cv + BN_EPS)
            v = v / 2.0  # ReLU of a symmetric variable halves the second moment
        v = n * var * _spread(v, pad, k)
        fwd.append(v.mean())
        # per-channel variance of y: its input is zero-mean (layer 1) or a ReLU output
        chan_var.append(v.mean() * (1.0 if layer == 0 else RELU_VAR_FRACTION))
    u = np.ones((s.spatial, s.spatial))  # dL/dy_L = g ~ N(0, 1)
    bwd = [1.0]
    for layer in range(s.depth - 1, 0, -1):  # from dL/dy_{layer+1} to dL/dy_layer
        u = n * var * _spread(u, pad, k) / 2.0  # conv^T then ReLU'
        if s.bn:
            cv = chan_var[layer - 1]
            u = u / (cv + BN_EPS)  # BN (train mode, gamma 1) divides by the batch std
        bwd.append(u.mean())
    return np.log(np.array(fwd)), np.log(np.array(bwd[::-1]))


def _residual(s: Setting) -> tuple[np.ndarray, np.ndarray]:
    n, k, pad = s.fan, s.kernel_size, s.padding
    var = init_variance(s.init, n, n)
    var2 = 0.0 if s.residual == "zeroinit" else var
    scale2 = 0.5 if s.residual == "scaled" else 1.0
    v = np.ones((s.spatial, s.spatial))  # x_0 ~ N(0, 1)
    stream_var = [1.0]  # per-channel variance of x_l (BN1's divisor)
    conv1_var = []  # per-channel variance of conv1's output (BN2's divisor)
    fwd = [v.mean()]
    for _ in range(s.depth):
        a = v
        if s.bn:
            a = a / a.mean() * stream_var[-1] / (stream_var[-1] + BN_EPS)
        b = n * var * _spread(a / 2.0, pad, k)  # ReLU, conv1
        conv1_var.append(b.mean() * (RELU_VAR_FRACTION if s.bn else 1.0))
        if s.bn:
            b = b / b.mean() * conv1_var[-1] / (conv1_var[-1] + BN_EPS)
        f = n * var2 * _spread(b / 2.0, pad, k)  # ReLU, conv2
        v = scale2 * (v + f)
        # the branch output's per-channel variance: conv2 of a ReLU output (BN case)
        stream_var.append(scale2 * (stream_var[-1] + f.mean() * RELU_VAR_FRACTION))
        fwd.append(v.mean())
    u = np.ones((s.spatial, s.spatial))  # dL/dx_L = g
    bwd = [1.0]
    for block in range(s.depth - 1, -1, -1):
        u = scale2 * u
        t = n * var2 * _spread(u, pad, k) / 2.0  # conv2^T, ReLU'
        if s.bn:
            t = t / (conv1_var[block] + BN_EPS)
        t = n * var * _spread(t, pad, k) / 2.0  # conv1^T, ReLU'
        if s.bn:
            t = t / (stream_var[block] + BN_EPS)
        u = u + t
        bwd.append(u.mean())
    return np.log(np.array(fwd)), np.log(np.array(bwd[::-1]))


def predict(s: Setting) -> Prediction:
    """Predicted profiles, slopes, law text and tolerance for one setting."""
    n = s.fan
    var = init_variance(s.init, n, n)
    gain = n * var / 2.0  # per conv + ReLU, forward (fan-in) = backward (fan-out): square convs
    if s.plain:
        fwd, bwd = _plain(s)
        if s.bn:
            af, ab = 0.0, math.log(KAPPA)
            law_f = "flat: BN resets the scale every layer"
            law_b = "x pi/(pi-1) = 1.467 per layer (BN divides by the variance, not the 2nd moment)"
        else:
            af = ab = math.log(gain)
            law_f = f"x n*Var[w]/2 = {gain:.4g} per layer"
            law_b = f"x n_out*Var[w]/2 = {gain:.4g} per layer"
    else:
        fwd, bwd = _residual(s)
        if s.residual == "zeroinit":
            af = ab = 0.0
            law_f = law_b = "exactly the identity (last branch conv is zero)"
        elif s.bn:
            g = gain
            af = ab = math.nan  # not exponential: linear / power law
            if s.residual == "scaled":
                law_f = f"E[x_l^2] -> (E[x_(l-1)^2] + {g:.4g})/2 (tends to {g:.4g})"
            else:
                law_f = f"linear: E[x_l^2] = 1 + {g:.4g} l"
            law_b = "x (1 + kappa*g/v_l) per block (power law in depth)"
        else:
            ratio = 1.0 + gain * gain
            if s.residual == "scaled":
                ratio /= 2.0
            af = ab = math.log(ratio)
            law_f = law_b = (
                f"x (1 + (n*Var[w]/2)^2){'/2' if s.residual == 'scaled' else ''} = {ratio:.4g} per block"
            )
    exact = s.padding == "circular" and (s.plain or s.bn or s.residual == "zeroinit")
    notes = []
    if s.padding == "zero":
        notes.append("zero padding: per-position map model (approximate)")
    return Prediction(
        setting=s, forward=fwd, backward=bwd, fit_from=fit_from(s), law_forward=law_f,
        law_backward=law_b, exact=exact, tol=tolerance(s), asymptotic_forward=af,
        asymptotic_backward=ab, notes=notes,
    )


# --- float32 onset ------------------------------------------------------------------------


@dataclass(frozen=True)
class Onset:
    kind: str  # "overflow" | "underflow" | "none"
    layer: int | None  # 1-based index of the first non-finite / all-zero y_l (mean law)
    earliest: int | None = None  # the range the finite-width drift allows (P5)
    latest: int | None = None


def float32_onset(s: Setting) -> Onset:
    """First plain layer l whose predicted max |y_l| leaves the float32 range (P12).

    max |y_l| ~ sqrt(2 ln M) * RMS(y_l), M = N*C*H*W entries; overflow above float32 max
    (3.4e38), all zero below the smallest subnormal (1.4e-45). ``layer`` uses the mean law
    (the plain, no-BN forward profile of ``s``); ``earliest``/``latest`` also let log E[y_l^2]
    drift down by up to 5/(2C) per layer after the first (P5), which delays an overflow and
    hastens an underflow.
    """
    if not s.plain or s.bn:
        raise ValueError("float32_onset: only plain nets without BN have a predicted onset")
    fwd, _ = _plain(s)
    m = s.batch * s.width * s.spatial * s.spatial
    tail = 0.5 * math.log(2.0 * math.log(m))
    top = math.log(float(np.finfo(np.float32).max))
    bottom = math.log(float(np.finfo(np.float32).smallest_subnormal))

    def first(drift: float) -> tuple[str, int | None]:
        for i, lf in enumerate(fwd):
            log_peak = 0.5 * (lf - drift * i) + tail
            if log_peak > top:
                return "overflow", i + 1
            if log_peak < bottom:
                return "underflow", i + 1
        return "none", None

    kind, layer = first(0.0)
    _, drifted = first(2.5 / s.width)
    if layer is None or drifted is None:
        return Onset(kind, layer, layer, layer)
    return Onset(kind, layer, min(layer, drifted), max(layer, drifted))


# --- conv-BN-ReLU chains with changing shapes (the CIFAR plain nets) -------------------------


@dataclass(frozen=True)
class ConvShape:
    """What the chain law needs of one conv: fans and the weight variance."""

    c_in: int
    c_out: int
    kernel_area: int  # k_h * k_w
    stride_area: int  # s_h * s_w
    var: float  # Var[w] (the model's own init; BN makes the law depend only on ratios)


def bn_chain_log_grad_ratio(convs: list[ConvShape]) -> float:
    """Predicted log E[(dL/dy_first)^2] - log E[(dL/dy_last)^2] over conv outputs y of a
    chain conv -> BN -> ReLU -> conv ... in train mode (P9 with changing widths and strides).

    From conv l+1 back to conv l: conv^T multiplies the second moment by
    Var[w_{l+1}] * C_out * k^2 / s^2 (each input position feeds k^2/s^2 outputs on average),
    the ReLU by 1/2, and BN divides by the per-channel variance of y_l, which is
    Var[w_l] * C_in * k^2 * Var[x_{l-1}]: Var[x] = 1 for the first conv (a zero-mean N(0,1)
    input), (1 - 1/pi)/2 for a ReLU(BN) input. Equal shapes and inits give kappa per layer.
    Zero padding is ignored (circular-padding law).
    """
    total = 0.0
    for i in range(len(convs) - 1):
        cur, nxt = convs[i], convs[i + 1]
        back = 0.5 * nxt.var * nxt.c_out * nxt.kernel_area / nxt.stride_area
        input_var = 1.0 if i == 0 else 0.5 * RELU_VAR_FRACTION
        total += math.log(back / (cur.var * cur.c_in * cur.kernel_area * input_var))
    return total
