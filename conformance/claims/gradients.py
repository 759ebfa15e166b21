"""Claims about signals and gradients at initialisation, measured with ``conformance.gradflow``:
the tutorial's (deep plain nets lose their gradient, the shortcut's derivative f'(x) + 1 keeps
it, He init is the right scale for ReLU) and He et al. 2015's (a scale other than 2/n makes
the signal grow or shrink exponentially with depth).

Instantiated: seeded experiment nets (plain / residual 3x3 ReLU convs, constant width, circular
padding, float64) probed by ``gradflow``; closed forms: ``gradflow.theory``'s predictions
(He et al. 2015 variance propagation; Yang et al. 2019 for BN chains). A
measurement outside its prediction's tolerance is a ``ClaimError``, not a finding.

The residual-Jacobian claim is measured exactly with ``torch.autograd.functional.jacobian``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.functional import jacobian

from .. import gradflow
from .claim import CONDITIONAL, TUTORIAL, Claim, ClaimError, Judged, Judgement, agree, fmt, rounded
from .sections import HE_INIT, RESIDUAL

__all__ = ["CLAIMS", "DIRECTION_THRESHOLD", "GRADIENT_BANDS"]

GROUP = "tutorial: ResNet"  # the tutorial's claims here belong to its ResNet sections
PAPERS = "The papers' own numbers"  # He et al. 2015's claim
WIDTH, SEEDS, BATCH = 32, 3, 8
DEPTH = 10  # layers of the plain nets compared for the naive-init claim
# Per-layer factor of a second moment beyond which a net "explodes" (below 1/x: "vanishes").
DIRECTION_THRESHOLD = 1.1
# RMS of the first layer's activation gradient over the last layer's: below / above = vanished / exploded.
GRADIENT_BANDS = (1e-2, 1e2)
PLAIN_LAYERS = (8, 32)  # plain nets: conv layers
RESIDUAL_BLOCKS = (4, 16)  # residual nets: blocks of two convs (the same conv counts)
INITS = {"torch_default": "PyTorch default init", "he_fan_in": "He init"}
# inits compared for "He's is the right scale for ReLU": gradflow.INIT_SCHEMES names and labels
SCALES = {"he_fan_in": "He, N(0, 2/fan_in)", "xavier": "Xavier (Glorot), N(0, 2/(fan_in + fan_out))",
          "naive": "N(0, 1)"}


def _checked(result: gradflow.SettingResult) -> gradflow.SettingResult:
    if result.verdict != "agrees":
        p = result.prediction
        raise ClaimError(
            f"gradflow {result.setting.label}: measured slopes forward {result.slope_forward[0]:.3f}, backward "
            f"{result.slope_backward[0]:.3f}; predicted {p.slope_forward:.3f}, {p.slope_backward:.3f} "
            f"({result.verdict})"
        )
    return result


# --- naive N(0, 1) vs He --------------------------------------------------------------------------


@functools.cache
def _setting(init: str, bn: bool) -> gradflow.SettingResult:
    return _checked(gradflow.measure(depth=DEPTH, width=WIDTH, init=init, bn=bn, seeds=SEEDS, batch=BATCH))


def _naive_vs_he() -> dict[str, float]:
    """Per-layer factor of E[y²] (forward) and E[(dL/dy)²] (backward): N(0,1) nets over He nets."""
    out: dict[str, float] = {}
    for bn in (False, True):
        naive, he = (_setting(init, bn) for init in ("naive", "he_fan_in"))
        label = "BN" if bn else "no BN"
        for direction in ("forward", "backward"):
            # each setting agrees with its closed-form slope (``_checked``), so their difference does
            measured = getattr(naive, f"slope_{direction}")[0] - getattr(he, f"slope_{direction}")[0]
            out[f"{label}, {direction}"] = rounded(math.exp(measured))
    return out


def _direction(gain: float) -> str:
    if gain > DIRECTION_THRESHOLD:
        return "explode"
    return "vanish" if gain < 1 / DIRECTION_THRESHOLD else "constant"


def _naive_judge(claimed: str, measured: dict[str, float]) -> Judged:
    settings: dict[str, set[str]] = {}
    for key, gain in measured.items():
        settings.setdefault(key.split(",")[0], set()).add(_direction(gain))
    holds = {s: any(d in claimed for d in dirs) for s, dirs in settings.items()}
    if all(holds.values()):
        return True, ""
    if not any(holds.values()):
        text = f"measured {', '.join(f'{s}: {sorted(d)}' for s, d in settings.items())}"
        return False, text, text
    return CONDITIONAL, (
        f"holds without BN, and only as explosion: each layer multiplies both second moments by "
        f"~{measured['no BN, forward']:.0f} = 4.5·C (C = {WIDTH}) relative to He init, never shrinking them; with BN "
        "after every conv the weight scale cancels in train mode (factor 1.0)"
    ), (f"in nets without BN, where N(0, 1) weights explode (x{measured['no BN, forward']:.0f} per layer); "
        "BN cancels the scale")


def _scales() -> dict[str, float]:
    """Per-layer factor of E[y²] in a plain ReLU conv net without BN, by init (each agrees with He et al.
    2015's prediction ½·k²·C·Var[w], checked by ``_checked``)."""
    return {label: rounded(math.exp(_setting(init, False).slope_forward[0])) for init, label in SCALES.items()}


def _scales_judge(claimed: str, measured: dict[str, float]) -> Judgement:
    best = min(measured, key=lambda k: abs(math.log(measured[k])))
    if best == claimed:
        return Judgement(True)
    return Judgement(
        False, f"the init that keeps E[y²] constant is {best} (factor {measured[best]:g} per layer): {fmt(measured)}",
        best
    )


# --- the residual Jacobian ----------------------------------------------------------------------------


class _PreActBlock(nn.Module):
    """x + F(x), F = conv(ReLU(conv(ReLU(x)))): the block of He et al. 2016b (identity mappings)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def _basic_block_branch(block: Any, x: torch.Tensor) -> torch.Tensor:
    """torchvision's BasicBlock before its final ReLU: bn2(conv2(relu(bn1(conv1(x)))))."""
    return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))


def _jacobian_rows() -> dict[str, float]:
    """Fraction of Jacobian rows equal to the branch's Jacobian plus the identity."""
    from torchvision.models.resnet import BasicBlock

    c, size = 4, 4
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, size, size, generator=gen, dtype=torch.float64)
    eye = torch.eye(x.numel(), dtype=torch.float64)
    out = {}

    pre = _PreActBlock(c).double()
    tv = BasicBlock(c, c).double().eval()
    with torch.no_grad():
        for p in [*pre.parameters(), *tv.parameters()]:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
        for bn in (tv.bn1, tv.bn2):  # randomized running statistics (eval mode)
            bn.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)
            bn.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)

    for label, block, branch, post_relu in (
        ("x + F(x), pre-activation block", pre, pre.branch, False),
        ("relu(x + F(x)), torchvision BasicBlock", tv, lambda t: _basic_block_branch(tv, t), True),
    ):
        j_block = jacobian(block, x).reshape(x.numel(), x.numel())
        j_sum = jacobian(branch, x).reshape(x.numel(), x.numel()) + eye
        # closed form: J = D (J_F + I), D = diag(1[output > 0]) after a final ReLU, else D = I
        mask = (block(x) > 0).reshape(-1, 1).double() if post_relu else torch.ones(x.numel(), 1, dtype=torch.float64)
        error = float((j_block - mask * j_sum).abs().max())
        if error > 1e-12:
            raise ClaimError(f"{label}: Jacobian differs from D (J_F + I) by {error:.3g}")
        rows = (j_block - j_sum).abs().amax(dim=1) <= 1e-12
        out[label] = agree(f"{label}: rows equal to J_F + I", round(float(rows.double().mean()), 3),
                           round(float(mask.mean()), 3))
    return out


def _jacobian_judge(claimed: float, measured: dict[str, float]) -> Judged:
    holds = {k: v == claimed for k, v in measured.items()}
    if all(holds.values()):
        return True, ""
    if not any(holds.values()):
        text = f"fractions of rows equal to J_F + I: {fmt(measured)}"
        return False, text, text
    pre, post = measured.values()
    return CONDITIONAL, (
        "exact for a block that returns f(x) + x (the pre-activation block); torchvision's BasicBlock returns "
        f"relu(f(x) + x), whose Jacobian keeps the '+1' only on positive outputs ({post:.0%} of them here)"
    ), "for a block that returns f(x) + x; after a final ReLU only on the outputs that are positive"


# --- the shortcut and vanishing gradients -------------------------------------------------------------


def _band(log_ratio: float) -> str:
    lo, hi = GRADIENT_BANDS
    ratio = math.exp(log_ratio)
    return "vanishes" if ratio < lo else "explodes" if ratio > hi else "alive"


@functools.cache
def _shortcut() -> dict[str, float]:
    """RMS(dL/dh) at the first probed tensor over the last, deepest nets (32 convs)."""
    out: dict[str, float] = {}
    for init, init_label in INITS.items():
        for residual, depths, label in (("off", PLAIN_LAYERS, "plain, 32 layers"),
                                        ("on", RESIDUAL_BLOCKS, "residual, 16 blocks")):
            points = gradflow.first_layer_gradient_vs_depth(
                depths, residual=residual, bn=False, init=init, width=WIDTH, seeds=SEEDS, batch=BATCH
            )
            for p in points:
                if not p.within_band:
                    raise ClaimError(
                        f"gradflow {residual} {init} depth {p.depth}: log gradient ratio {p.log_ratio:.3f}, "
                        f"predicted {p.predicted_log_ratio:.3f} +- {p.tolerance:.3f}"
                    )
            deepest = points[-1]
            agree(f"{init_label}, {label}: gradient band", _band(deepest.log_ratio), _band(deepest.predicted_log_ratio))
            out[f"{init_label}, {label}"] = rounded(math.exp(deepest.log_ratio), 2)
    return out


def _shortcut_judge(claimed: dict[str, str], measured: dict[str, float]) -> Judged:
    per_init: dict[str, bool] = {}
    for key, ratio in measured.items():
        init, arch = key.split(", ")[0], key.split(", ")[1]
        per_init[init] = per_init.get(init, True) and _band(math.log(ratio)) == claimed[arch]
    if all(per_init.values()):
        return True, ""
    if not any(per_init.values()):
        text = f"first-layer over last-layer gradient RMS: {fmt(measured)}"
        return False, text, text
    m = {k.split(", ")[0] + ", " + k.split(", ")[1]: v for k, v in measured.items()}
    return CONDITIONAL, (
        f"holds where the plain net's gradient vanishes (PyTorch default init: {m['PyTorch default init, plain']:.2g} "
        f"of the last layer's over 32 layers; with shortcuts {m['PyTorch default init, residual']:.2g}); "
        f"with He init the plain net does not vanish ({m['He init, plain']:.2g}) and the unnormalised shortcut "
        f"doubles the gradient's second moment per block ({m['He init, residual']:.3g} after 16)"
    ), ("where the plain net's gradient vanishes (PyTorch's default init); "
        "with He init it does not vanish without shortcuts")


def _plain() -> dict[str, float]:
    return {k.split(", ")[0]: v for k, v in _shortcut().items() if ", plain" in k}


def _plain_judge(claimed: dict[str, str], measured: dict[str, float]) -> Judgement:
    got = {k: _band(math.log(v)) for k, v in measured.items()}
    ok = {k: got[k] == v for k, v in claimed.items()}
    if all(ok.values()):
        return Judgement(True)
    if not any(ok.values()):
        return Judgement(False, f"first-layer over last-layer gradient RMS, 32 layers: {fmt(measured)}", fmt(got))
    return Judgement(
        CONDITIONAL,
        f"over 32 plain layers the first layer's gradient RMS is {measured['PyTorch default init']:.2g} of the last "
        f"layer's with PyTorch's default init (Var[w] = 1/(3·fan_in)) but {measured['He init']:.2g} with He init",
        "with an init below He's scale, such as PyTorch's default; with He init (and with BN, He et al. 2016, "
        "Section 4.1) a deep plain net's gradient does not vanish",
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "deep-plain-gradients-vanish", GROUP, TUTORIAL,
        "Made too deep, a network's gradient vanishes in backpropagation (measured on 32-layer plain ReLU conv "
        "nets without BN; vanished: the first layer's gradient RMS below 0.01 of the last's).",
        {"PyTorch default init": "vanishes", "He init": "vanishes"}, _plain, _plain_judge, section=RESIDUAL,
    ),
    Claim(
        "residual-jacobian", GROUP, TUTORIAL,
        "Differentiating the residual module in backpropagation gives d/dx (f(x) + x) = d/dx f(x) + 1: one more "
        "than usual (on every output).",
        1.0, _jacobian_rows, _jacobian_judge, section=RESIDUAL,
    ),
    Claim(
        "shortcut-keeps-gradients", GROUP, TUTORIAL,
        "This stops the gradient from vanishing and lets networks grow deeper: in a deep plain net the first "
        "layer's gradient vanishes, with shortcuts it stays alive (RMS ratio to the last layer's between 0.01 "
        "and 100).",
        {"plain": "vanishes", "residual": "alive"}, _shortcut, _shortcut_judge, section=RESIDUAL,
    ),
    Claim(
        "he-init-best-for-relu", GROUP, TUTORIAL,
        "For ReLU networks the best initial weights are He's: N(0, √(2/n)), n the nodes the previous layer passes "
        "in (best: keeps E[y²] constant from layer to layer, He et al. 2015's criterion; 10-layer plain ReLU "
        "conv nets without BN).",
        SCALES["he_fan_in"], _scales, _scales_judge, section=HE_INIT,
    ),
    Claim(
        "naive-init-explodes", PAPERS, "He et al. 2015, Section 2.2 (Eqs. 10 and 14); conformance/gradflow/theory.py",
        "Unless ½·n·Var[w] = 1, a ReLU net's signal is magnified or reduced exponentially with depth: conv weights "
        "drawn from N(0, 1) instead of N(0, 2/fan_in) make its activations and gradients explode or vanish.",
        "explode or vanish", _naive_vs_he, _naive_judge,
    ),
)
