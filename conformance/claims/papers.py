"""Claims the papers make about their own models: MobileNet (Howard et al. 2017, Tables 1, 2, 4,
Section 3.1, Eq. 5) and VGG (Simonyan & Zisserman 2015, Section 2.3, Table 2).

Instantiated: ``cnn_models``' reference MobileNet v1, the exhibits (Conv MobileNet, VGG
configuration C) and torchvision's VGGs, on meta. Closed forms: ``conformance.formulas``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch.nn as nn

import cnn_models
from cnn_models.mobilenet_v1 import BLOCKS, STEM

from ..formulas import spec_plan
from ..formulas.layers import conv2d_macs, conv2d_out, conv2d_params
from ..layer_table import build_on_meta
from ..macs import count_flops
from ._measure import meta_macs, meta_params
from .claim import CONDITIONAL, Claim, Judged, agree, exact, fmt, rounded, within
from .exhibits import ConvMobileNet, conv_mobilenet_plan, separable_pair, vgg_c_features, vgg_c_plan
from .vggnet import conv_stack_params, vgg_coefficients

__all__ = ["CLAIMS", "RATIO_FORMULAS", "RATIO_GRID", "TABLE2"]

GROUP = "The papers' own numbers"
SIZE = (3, 224, 224)
MOBILENET_T1 = "Howard et al. 2017 (MobileNets), Tables 1 and 7"
MOBILENET_T4 = "Howard et al. 2017 (MobileNets), Table 4"


@functools.cache
def _mobilenet() -> dict[str, int]:
    spec = cnn_models.get_spec("mobilenet_v1")
    plan = spec_plan(spec, SIZE)
    return {
        "params": agree("mobilenet_v1 params", meta_params(spec.build), plan.params),
        "mult-adds": agree("mobilenet_v1 mult-adds", meta_macs(spec.build, SIZE), plan.macs),
    }


@functools.cache
def _conv_mobilenet() -> dict[str, int]:
    plan = conv_mobilenet_plan()
    return {
        "params": agree("Conv MobileNet params", meta_params(ConvMobileNet), plan.params),
        "mult-adds": agree("Conv MobileNet mult-adds", meta_macs(ConvMobileNet, SIZE), plan.macs),
        "fc mult-adds": next(r.macs for r in plan.layers if r.kind == "Linear"),
    }


# --- "8 to 9 times less computation" (Section 3.1) -----------------------------------------------


def _savings() -> dict[str, Any]:
    per_block = []
    c, h = STEM[0], conv2d_out(SIZE[1], 3, STEM[1], 1)
    for out, stride in BLOCKS:
        def standard(c: int = c, out: int = out, s: int = stride) -> nn.Module:
            return nn.Conv2d(c, out, 3, s, 1, bias=False)

        def separable(c: int = c, out: int = out, s: int = stride) -> nn.Module:
            return nn.Sequential(nn.Conv2d(c, c, 3, s, 1, groups=c, bias=False), nn.Conv2d(c, out, 1, bias=False))

        h_out = conv2d_out(h, 3, stride, 1)
        std = agree(f"standard conv {c}->{out} MACs", meta_macs(standard, (c, h, h)),
                    conv2d_macs(c, out, 3, h_out, h_out))
        sep = agree(
            f"separable conv {c}->{out} MACs", meta_macs(separable, (c, h, h)),
            conv2d_macs(c, c, 3, h_out, h_out, groups=c) + conv2d_macs(c, out, 1, h_out, h_out),
        )
        per_block.append(rounded(std / sep))
        c, h = out, h_out
    whole = _conv_mobilenet()["mult-adds"] / _mobilenet()["mult-adds"]
    return {"per block": per_block, "whole network": rounded(whole)}


def _savings_judge(claimed: list[float], measured: dict[str, Any]) -> Judged:
    lo, hi = claimed
    ratios = [*measured["per block"], measured["whole network"]]
    inside = [lo <= r <= hi for r in ratios]
    if all(inside):
        return True, ""
    if not any(inside):
        return (
            False, f"every block saves outside {fmt(lo)}-{fmt(hi)}x ({fmt(measured['per block'])})",
            f"{min(ratios):g}-{max(ratios):g}x",
        )
    outside = [f"block {i + 1} ({r:g}x)" for i, r in enumerate(measured["per block"]) if not lo <= r <= hi]
    return CONDITIONAL, (
        f"the saving per 3x3 layer is 1/(1/C_out + 1/9): within {fmt(lo)}-{fmt(hi)}x for the whole network "
        f"({measured['whole network']:g}x) and C_out >= 72, but not for {', '.join(outside)}"
    ), f"for the whole network and every block with C_out >= 72; {', '.join(outside)} saves less"


# --- Table 4: Conv MobileNet ---------------------------------------------------------------------


def _conv_mobilenet_macs() -> dict[str, int]:
    m = _conv_mobilenet()
    return {"with the FC layer": m["mult-adds"], "without it": m["mult-adds"] - m["fc mult-adds"]}


def _conv_macs_judge(claimed: float, measured: dict[str, int]) -> Judged:
    ok = {k: abs(v - claimed) <= 0.5e6 for k, v in measured.items()}
    if all(ok.values()):
        return True, ""
    if ok["without it"]:
        return CONDITIONAL, (
            f"holds only without the final FC layer's mult-adds "
            f"({measured['with the FC layer'] / 1e6:,.1f}M with them), "
            f"a convention under which MobileNet itself would have "
            f"{(_mobilenet()['mult-adds'] - _conv_mobilenet()['fc mult-adds']) / 1e6:,.1f}M, "
            "not Table 4's 569M"
        ), f"without the FC layer; with it {measured['with the FC layer'] / 1e6:,.1f}M"
    text = (f"{measured['with the FC layer'] / 1e6:,.1f}M with the FC layer, "
            f"{measured['without it'] / 1e6:,.1f}M without")
    return False, text, text


# --- Table 2: resources per layer type ------------------------------------------------------------

# Howard et al. 2017, Table 2: (% of mult-adds, % of parameters) per layer type.
TABLE2: dict[str, list[float]] = {
    "Conv 1x1": [94.86, 74.59],
    "Conv DW 3x3": [3.06, 1.06],
    "Conv 3x3": [1.19, 0.02],
    "Fully Connected": [0.18, 24.33],
}


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "Fully Connected"
    if isinstance(module, nn.Conv2d):
        if module.groups > 1:
            return "Conv DW 3x3"
        return "Conv 1x1" if module.kernel_size == (1, 1) else "Conv 3x3"
    return None


def _table2() -> dict[str, list[float]]:
    """Shares of conv + FC mult-adds and of their weights (no biases, no BN: that is what sums
    to 100% in Table 2's parameter column)."""
    spec = cnn_models.get_spec("mobilenet_v1")
    model = build_on_meta(spec.build)
    flops = count_flops(spec.build, SIZE).by_module
    inst: dict[str, list[int]] = {k: [0, 0] for k in TABLE2}
    for name, m in model.named_modules():
        kind = _kind(m)
        if kind is not None:
            inst[kind][0] += flops.get(name, 0) // 2
            inst[kind][1] += m.weight.numel()
    closed: dict[str, list[int]] = {k: [0, 0] for k in TABLE2}
    for row in spec_plan(spec, SIZE).layers:
        if row.kind == "Linear":
            kind = "Fully Connected"
        elif row.kind == "Conv2d":
            kind = "Conv DW 3x3" if ".dw." in row.name else "Conv 1x1" if ".pw." in row.name else "Conv 3x3"
        else:
            continue
        closed[kind][0] += row.macs
        closed[kind][1] += row.macs // (row.out_shape[1] * row.out_shape[2]) if len(row.out_shape) == 3 else row.macs
    agree("MobileNet mult-adds and weights per layer type", inst, closed)
    totals = [sum(v[i] for v in inst.values()) for i in (0, 1)]
    return {k: [round(100 * v[i] / totals[i], 2) for i in (0, 1)] for k, v in inst.items()}


def _table2_judge(claimed: dict[str, list[float]], measured: dict[str, list[float]]) -> Judged:
    columns = ("mult-adds", "parameters")
    wrong = [(k, i) for k in claimed for i in (0, 1) if abs(claimed[k][i] - measured[k][i]) > 0.005]
    if not wrong:
        return True, ""
    parts = []
    for k, i in wrong:
        a, b = f"{claimed[k][i]:.2f}", f"{measured[k][i]:.2f}"
        swapped = " (the same digits transposed)" if sorted(a) == sorted(b) else ""
        printed_sum = sum(v[i] for v in claimed.values())
        parts.append(f"{k} {columns[i]}: {b}%, not {a}%{swapped}; the printed column sums to {printed_sum:.2f}%")
    held = 2 * len(claimed) - len(wrong)
    fixes = "; ".join(f"{k} {columns[i]} {measured[k][i]:.2f}%" for k, i in wrong)
    return False, f"{held} of {2 * len(claimed)} entries hold to 2 decimals; " + "; ".join(parts), fixes


# --- VGG Table 2 ------------------------------------------------------------------------------------


def _vgg_params() -> dict[str, int]:
    import torchvision.models as tvm

    out: dict[str, int] = {}
    for letter, name in (("A", "vgg11"), ("B", "vgg13"), ("C", None), ("D", "vgg16"), ("E", "vgg19")):
        if name is None:
            factory: Callable[[], nn.Module] = functools.partial(tvm.VGG, vgg_c_features())
            closed = vgg_c_plan().params
        else:
            factory = functools.partial(tvm.get_model, name, weights=None)
            spec = cnn_models.get_spec(name)
            closed = spec_plan(spec, SIZE).params
        out[letter] = agree(f"VGG configuration {letter} params", meta_params(factory), closed)
    return out


def _vgg_judge(claimed: dict[str, float], measured: dict[str, int]) -> Judged:
    wrong = [f"{k}: {fmt(measured[k])}, not {fmt(v)}M" for k, v in claimed.items()
             if abs(measured[k] - v * 1e6) > 0.5e6]
    if not wrong:
        return True, ""
    return (False, "rounded to millions, " + "; ".join(wrong),
            "; ".join(f"{k}: {measured[k] / 1e6:.0f}M" for k in claimed))


# --- Eq. 5: separable over standard cost -------------------------------------------------------------

# (C_in, C_out, k) at which the ratio separable / standard is measured.
RATIO_GRID: tuple[tuple[int, int, int], ...] = ((3, 10, 3), (32, 64, 3), (32, 64, 5), (512, 512, 3), (8, 1, 7),
                                                (1, 1, 1))

# Candidate closed forms a claim may state for the ratio (Howard et al. 2017, Eq. 5: 1/N + 1/D_K²).
RATIO_FORMULAS = {
    "1/C_out + 1/k²": lambda ci, co, k: Fraction(1, co) + Fraction(1, k * k),
    "1/C_in + 1/k²": lambda ci, co, k: Fraction(1, ci) + Fraction(1, k * k),
    "1/k²": lambda ci, co, k: Fraction(1, k * k),
}


def _ratios() -> dict[str, str]:
    out = {}
    for ci, co, k in RATIO_GRID:
        sep = meta_params(functools.partial(separable_pair, ci, co, k))
        std = conv_stack_params([ci, co], k)
        closed = conv2d_params(ci, ci, k, groups=ci, bias=False) + conv2d_params(ci, co, 1, bias=False)
        agree(f"separable {ci}->{co} {k}x{k} weights", sep, closed)
        ratio = Fraction(sep, std)
        out[f"{ci}→{co}, {k}x{k}"] = f"{ratio.numerator}/{ratio.denominator}"
    return out


def _ratio_judge(claimed: str, measured: dict[str, str]) -> Judged:
    formula = RATIO_FORMULAS[claimed]
    wrong = [
        f"{label}: {value}, not {formula(*cfg)}"
        for cfg, (label, value) in zip(RATIO_GRID, measured.items(), strict=True)
        if Fraction(value) != formula(*cfg)
    ]
    if not wrong:
        return True, ""
    right = [name for name, f in RATIO_FORMULAS.items()
             if all(Fraction(v) == f(*cfg) for cfg, v in zip(RATIO_GRID, measured.values(), strict=True))]
    return (False, f"{len(wrong)} of {len(RATIO_GRID)} configurations differ ({wrong[0]})",
            ", ".join(right) or "none listed")


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "mobilenet-params", GROUP, MOBILENET_T1,
        "1.0 MobileNet-224 has 4.2 million parameters.",
        4.2e6, lambda: _mobilenet()["params"], within(0.05e6, "{measured}, not {claimed} (one decimal in millions)"),
    ),
    Claim(
        "mobilenet-mult-adds", GROUP, MOBILENET_T1,
        "1.0 MobileNet-224 takes 569 million mult-adds per image.",
        569e6, lambda: _mobilenet()["mult-adds"], within(0.5e6, "{measured}, not {claimed} (rounded to millions)"),
    ),
    Claim(
        "mobilenet-8-9x", GROUP, "Howard et al. 2017 (MobileNets), Section 3.1",
        "MobileNet's 3x3 depthwise separable convolutions use between 8 and 9 times less computation "
        "than standard convolutions.",
        [8, 9], _savings, _savings_judge,
    ),
    Claim(
        "mobilenet-conv-params", GROUP, MOBILENET_T4,
        "Conv MobileNet (every separable block a full 3x3 conv) has 29.3 million parameters.",
        29.3e6, lambda: _conv_mobilenet()["params"],
        within(0.05e6, "{measured}, not {claimed} (one decimal in millions)"),
    ),
    Claim(
        "mobilenet-conv-mult-adds", GROUP, MOBILENET_T4,
        "Conv MobileNet takes 4866 million mult-adds per image.",
        4866e6, _conv_mobilenet_macs, _conv_macs_judge,
    ),
    Claim(
        "mobilenet-table2", GROUP, "Howard et al. 2017 (MobileNets), Table 2",
        "Resources per layer type (% of mult-adds, % of parameters): Conv 1x1 94.86/74.59, Conv DW 3x3 3.06/1.06, "
        "Conv 3x3 1.19/0.02, Fully Connected 0.18/24.33.",
        TABLE2, _table2, _table2_judge,
    ),
    Claim(
        "separable-ratio", GROUP, "Howard et al. 2017 (MobileNets), Eq. 5",
        "Depthwise separable over standard conv weights (and, at stride 1 with 'same' padding, "
        "mult-adds) is 1/C_out + 1/k².",
        "1/C_out + 1/k²", _ratios, _ratio_judge,
    ),
    Claim(
        "vgg-27c2-vs-49c2", GROUP, "Simonyan & Zisserman 2015 (VGG), Section 2.3",
        "Three stacked 3x3 conv layers of C channels have 3(3²C²) = 27C² weights, a single 7x7 layer 7²C² = 49C².",
        {"three 3x3": 27, "one 7x7": 49}, vgg_coefficients, exact(),
    ),
    Claim(
        "vgg-table2-params", GROUP, "Simonyan & Zisserman 2015 (VGG), Table 2",
        "Configurations A, B, C, D, E have 133, 133, 134, 138 and 144 million parameters.",
        {"A": 133, "B": 133, "C": 134, "D": 138, "E": 144}, _vgg_params, _vgg_judge,
    ),
)
