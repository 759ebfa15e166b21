"""Closed-form layer formulas, the Tracer, FlopCounterMode's conventions and the MACs report.

Oracles: torch itself (output shapes of modules run on CPU and on meta, ``numel`` of their
parameters, ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2), autograd (the
receptive field as the support of an input gradient), torchvision's weights meta ``_ops``
read live, and the spec's paper values. conformance/formulas/layers.py and
conformance/macs.py are the code under test.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import cnn_models
from conformance.errors import UsageError
from conformance.formulas.layers import (
    Tracer,
    bn_params,
    conv2d_macs,
    conv2d_out,
    conv2d_params,
    linear_macs,
    linear_params,
    pool2d_out,
)
from conformance.macs import (
    CLOSED_FORM,
    FLOP_COUNTER,
    TORCHVISION,
    TV_OPS_ABS_TOL,
    FlopCount,
    TorchvisionOps,
    count_flops,
    flops_report,
    torchvision_ops,
)
from conformance.torch_private import public_only


def fcm_flops(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """FlopCounterMode's FLOPs by op for one call (the torch oracle)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return {str(k): v for k, v in counter.get_flop_counts().get("Global", {}).items()}


def on_meta(factory):
    with torch.device("meta"):
        return factory()


# --- single layers: closed form vs torch ---------------------------------------------------
@st.composite
def conv_configs(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 4))
    return {
        "c_in": groups * draw(st.integers(1, 4)),
        "c_out": groups * draw(st.integers(1, 4)),
        "groups": groups,
        "kernel": (draw(st.integers(1, 7)), draw(st.integers(1, 7))),
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": (draw(st.integers(0, 3)), draw(st.integers(0, 3))),
        "dilation": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "bias": draw(st.booleans()),
        "size": (draw(st.integers(1, 24)), draw(st.integers(1, 24))),
    }


@given(conv_configs())
def test_conv2d_shape_params_macs_match_torch(cfg: dict) -> None:
    c_in, c_out, g = cfg["c_in"], cfg["c_out"], cfg["groups"]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w) = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"],
                                                      cfg["size"])
    make = lambda: nn.Conv2d(c_in, c_out, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups=g, bias=cfg["bias"])  # noqa: E731
    try:
        ho, wo = conv2d_out(h, kh, sh, ph, dh), conv2d_out(w, kw, sw, pw, dw)
    except ValueError:
        with pytest.raises(RuntimeError):  # too small an input: torch refuses too
            make()(torch.zeros(1, c_in, h, w))
        return
    cpu_out = make()(torch.zeros(1, c_in, h, w))
    meta = on_meta(make)
    x = torch.empty(1, c_in, h, w, device="meta")
    assert tuple(cpu_out.shape) == tuple(meta(x).shape) == (1, c_out, ho, wo)
    assert sum(p.numel() for p in meta.parameters()) == conv2d_params(c_in, c_out, (kh, kw), g, cfg["bias"])
    flops = fcm_flops(meta, x)
    assert flops == {"aten.convolution": 2 * conv2d_macs(c_in, c_out, (kh, kw), ho, wo, g)}


@st.composite
def pool_configs(draw: st.DrawFn) -> dict:
    kernel = draw(st.integers(1, 6))
    return {
        "max": draw(st.booleans()),
        "kernel": kernel,
        "stride": draw(st.integers(1, 4)),
        "padding": draw(st.integers(0, kernel // 2)),  # torch: padding at most half the kernel
        "dilation": draw(st.integers(1, 3)),
        "ceil_mode": draw(st.booleans()),
        "size": draw(st.integers(1, 30)),
    }


@given(pool_configs())
def test_pool2d_shape_matches_torch(cfg: dict) -> None:
    k, s, p, ceil, h = cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], cfg["size"]
    d = cfg["dilation"] if cfg["max"] else 1  # AvgPool2d has no dilation
    pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil) if cfg["max"] else nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    x = torch.zeros(1, 2, h, h + 3)
    try:
        want = (pool2d_out(h, k, s, p, d, ceil), pool2d_out(h + 3, k, s, p, d, ceil))
    except ValueError:
        with pytest.raises(RuntimeError):
            pool(x)
        return
    assert tuple(pool(x).shape[2:]) == want
    assert tuple(pool(x.to("meta")).shape[2:]) == want
    assert fcm_flops(pool, x.to("meta")) == {}  # pooling counts 0 FLOPs


@given(st.integers(1, 64), st.integers(1, 64), st.booleans(), st.integers(1, 3))
def test_linear_params_macs_match_torch(n_in: int, n_out: int, bias: bool, batch: int) -> None:
    lin = on_meta(lambda: nn.Linear(n_in, n_out, bias=bias))
    assert sum(p.numel() for p in lin.parameters()) == linear_params(n_in, n_out, bias)
    flops = fcm_flops(lin, torch.empty(batch, n_in, device="meta"))
    # addmm with a bias, mm without: 2 FLOPs per MAC, the bias addition not counted
    assert flops == {("aten.addmm" if bias else "aten.mm"): 2 * batch * linear_macs(n_in, n_out)}


@given(st.integers(1, 64), st.booleans())
def test_batchnorm_params_match_torch(c: int, affine: bool) -> None:
    bn = on_meta(lambda: nn.BatchNorm2d(c, affine=affine))
    assert sum(p.numel() for p in bn.parameters()) == bn_params(c, affine)


# --- FlopCounterMode's conventions, as conformance/macs.py states them -------------------
def test_flop_counter_ignores_bias_and_non_matmul_ops() -> None:
    x = torch.empty(2, 8, 10, 10, device="meta")
    with_bias = fcm_flops(on_meta(lambda: nn.Conv2d(8, 4, 3)), x)
    without = fcm_flops(on_meta(lambda: nn.Conv2d(8, 4, 3, bias=False)), x)
    assert with_bias == without == {"aten.convolution": 2 * 2 * conv2d_macs(8, 4, 3, 8, 8)}
    zero_ops = on_meta(lambda: nn.Sequential(
        nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Softmax(1)
    ))
    assert fcm_flops(zero_ops, x) == {}
    assert fcm_flops(zero_ops.train(), x) == {}  # train-mode BN too


def test_flop_counter_transposed_conv_counts_input_positions() -> None:
    # each of the 5x5 input positions scatters a 3x3 kernel into C_out=4 channels per C_in=8
    deconv = on_meta(lambda: nn.ConvTranspose2d(8, 4, 3, stride=2))
    assert fcm_flops(deconv, torch.empty(1, 8, 5, 5, device="meta")) == {"aten.convolution": 2 * 5 * 5 * 3 * 3 * 8 * 4}


class MatmulBlock(nn.Module):
    """A matmul written in forward, outside any Linear: FlopCounterMode counts it here."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.proj = nn.Parameter(torch.zeros(4, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((2, 3))  # (N, 4)
        return y @ self.proj  # (N, 6): mm, 4*6 MACs per sample


def test_count_flops_attributes_ops_to_the_innermost_module() -> None:
    net = lambda: nn.Sequential(MatmulBlock(), nn.ReLU(), nn.Linear(6, 2))  # noqa: E731
    count = count_flops(net, (3, 8, 8), batch_size=3)
    conv = conv2d_macs(3, 4, 3, 8, 8)
    assert dict(count.by_module) == {"0.conv": 2 * conv, "0": 2 * 4 * 6, "2": 2 * linear_macs(6, 2)}
    assert dict(count.by_kind) == {"Conv2d": 2 * conv, "MatmulBlock": 2 * 4 * 6, "Linear": 2 * 12}
    assert count.macs == conv + 24 + 12
    assert dict(count.by_op) == {"aten.convolution": 2 * conv, "aten.mm": 48, "aten.addmm": 24}


class Recurse(nn.Module):
    """Calls itself once more from inside its own forward (a re-entrant module call)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, again: bool = True) -> torch.Tensor:
        y = self(x, again=False) if again else x
        return self.conv(y)


class SharedAndParamInput(nn.Module):
    """The cases where torch's ModuleTracker does more than record names: one module called
    twice; one module registered under two parents (named after the parent seen last); a
    re-entrant call; a module called on a parameter (an input that requires grad)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        shared = nn.Conv2d(3, 3, 1)
        self.left = nn.Sequential(shared, nn.ReLU())
        self.right = nn.Sequential(nn.Identity(), shared)
        self.recurse = Recurse()
        self.bias_map = nn.Parameter(torch.zeros(1, 3, 8, 8))
        self.mix = nn.Conv2d(3, 3, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.conv(x)) + self.mix(self.bias_map)
        y = self.right(self.left(y))
        return self.head(self.recurse(y))


def _with_torchs_tracker(factory: Callable[[], nn.Module], size: tuple[int, ...], train: bool) -> FlopCount:
    """The public twin: FlopCounterMode with torch's own module tracker, own FLOPs by subtraction."""
    with public_only():
        return count_flops(factory, size, batch_size=2, train=train)


@pytest.mark.parametrize("train", [False, True])
def test_forward_tracker_counts_googlenet_as_torchs_tracker(train: bool) -> None:
    """count_flops swaps FlopCounterMode's module tracker for one that records names and the
    call stack only; on a tree of modules (GoogLeNet, aux heads on in train mode) it counts
    what torch's own tracker counts, per op, per module and per layer type."""

    def factory() -> nn.Module:
        return torchvision.models.googlenet(weights=None, init_weights=False, aux_logits=True)

    ours = count_flops(factory, (3, 224, 224), batch_size=2, train=train)
    assert ours == _with_torchs_tracker(factory, (3, 224, 224), train)
    assert ours.flops > 0 and ("aux1.fc2" in ours.by_module) == train


def test_shared_and_reentrant_modules_are_credited_once_to_the_innermost() -> None:
    """Each op counts once, for the module that ran it: a module registered under two parents
    (named after the last, ``right.1``) and one called from inside itself, where torch's
    tracker, by subtracting children from parents, credits negative FLOPs to a parent."""
    count = count_flops(SharedAndParamInput, (3, 8, 8), batch_size=2)
    conv, shared, mix = conv2d_macs(3, 3, 3, 8, 8), conv2d_macs(3, 3, 1, 8, 8), conv2d_macs(3, 3, 1, 8, 8)
    assert dict(count.by_module) == {
        "conv": 2 * 2 * conv,  # called twice; FLOPs = 2 x MACs
        "right.1": 2 * 2 * shared,  # once inside left, once inside right
        "recurse.conv": 2 * 2 * conv,  # once per call of recurse
        "mix": 2 * mix // 2,  # run on a parameter of batch 1, so half a sample's worth per sample of 2
        "head.1": 2 * linear_macs(3 * 8 * 8, 5),
    }
    assert dict(count.by_kind) == {"Conv2d": sum(v for k, v in count.by_module.items() if k != "head.1"),
                                   "Linear": 2 * linear_macs(192, 5)}
    theirs = _with_torchs_tracker(SharedAndParamInput, (3, 8, 8), False)
    assert (theirs.flops, theirs.by_op) == (count.flops, count.by_op)  # the same ops counted
    assert min(theirs.by_module.values()) < 0  # what the innermost credit avoids


def test_count_flops_leaves_the_callers_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    count_flops(model, (3, 8, 8))
    assert model.training and model[0].weight.device.type == "cpu"


# --- torchvision's _ops: GMACs of conv + linear at the crop size, 3 decimals --------------
@pytest.mark.parametrize("name", ["resnet50", "vgg16", "googlenet", "mobilenet_v2", "inception_v3"])
def test_flop_counter_halved_equals_torchvision_ops(name: str) -> None:
    tv = torchvision_ops(name)
    assert tv is not None
    weights = torchvision.models.get_model_weights(name).DEFAULT
    assert tv.gmacs == weights.meta["_ops"] and tv.crop_size == weights.transforms().crop_size[0]
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    count = count_flops(lambda: torchvision.models.get_model(name, **kwargs), (3, tv.crop_size, tv.crop_size))
    assert abs(count.macs - tv.macs) <= TV_OPS_ABS_TOL


def test_torchvision_ops_in_macs_is_exact_decimal() -> None:
    assert TorchvisionOps("vgg16", "w", 15.47, 224).macs == 15_470_000_000
    assert TorchvisionOps("mobilenet_v2", "w", 0.301, 224).macs == 301_000_000
    assert torchvision_ops("no_such_model") is None


# --- the report ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mobilenet_v1"])
def test_report_oracles_agree_for_registered_models(name: str) -> None:
    spec = cnn_models.get_spec(name)
    report = flops_report(spec.build, spec=spec)
    assert report.ok, "\n".join(a.describe() for a in report.agreements if not a.ok)
    counter, closed = report.oracle(FLOP_COUNTER), report.oracle(CLOSED_FORM)
    assert counter is not None and closed is not None and closed.available
    assert closed.macs == counter.macs
    tolerances = {(a.expected_from, a.got_from): a.abs_tol for a in report.agreements}
    assert tolerances[(CLOSED_FORM, FLOP_COUNTER)] == 0
    if spec.torchvision:
        assert tolerances[(TORCHVISION, FLOP_COUNTER)] == TV_OPS_ABS_TOL == 0.0005e9
    assert "Conv2d" in report.table() and "agreement:" in report.table()


def test_report_catches_a_wrong_candidate() -> None:
    spec = cnn_models.get_spec("resnet34")
    report = flops_report(lambda: torchvision.models.resnet18(), spec=spec, subject="resnet18 as resnet34")
    assert not report.ok
    bad = [a for a in report.agreements if not a.ok]
    assert any(a.what == "Conv2d MACs" and a.got < a.expected for a in bad)
    assert "MISMATCH" in report.table()


def test_report_without_spec_measures_only() -> None:
    report = flops_report(lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), (3, 2, 2))
    assert [o.name for o in report.oracles] == [FLOP_COUNTER]
    assert report.oracle(FLOP_COUNTER).macs == linear_macs(12, 5)  # type: ignore[union-attr]
    assert report.ok and report.agreements == ()


def _args(argv: list[str]) -> argparse.Namespace:
    from conformance.commands import flops as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    from conformance.commands import flops as cmd

    cnn_models.get_spec("resnet34")
    assert cmd.run(_args(["resnet34"])) == 0
    assert "FlopCounterMode" in capsys.readouterr().out
    path = tmp_path / "cand.py"
    path.write_text("import torchvision\ndef build():\n    return torchvision.models.resnet18()\n")
    assert cmd.run(_args(["--candidate", f"{path}:build", "--spec", "resnet34"])) == 1
    assert cmd.run(_args(["--candidate", f"{path}:build", "--input-size", "3", "32", "32"])) == 0
    with pytest.raises(UsageError, match="unknown architecture"):
        cmd.run(_args(["resnet34x"]))
    with pytest.raises(UsageError, match="--spec"):
        cmd.run(_args(["resnet34", "--spec", "resnet18"]))


# --- the Tracer: receptive field and jump vs autograd ------------------------------------
def test_three_3x3_convs_see_7x7() -> None:
    t = Tracer((16, 32, 32))
    for i in range(3):
        t.conv(f"c{i}", 32, 3, padding=1)
    assert (t.rf, t.jump) == (7, 1)  # VGG paper, Sec. 2.3: three 3x3 layers have a 7x7 field
    t = Tracer((3, 32, 32)).conv("a", 8, 3, stride=2).conv("b", 8, 3, stride=2)
    assert (t.rf, t.jump) == (1 + 2 + 2 * 2, 4)


Chain = list[tuple[str, int, int, int]]  # (kind, kernel, stride, dilation)


@st.composite
def chains(draw: st.DrawFn) -> Chain:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "avgpool"]))
        dilation = draw(st.integers(1, 2)) if kind == "conv" else 1
        out.append((kind, draw(st.integers(1, 4)), draw(st.integers(1, 3)), dilation))
    return out


def measured_field(chain: Chain, size: int) -> tuple[int, int]:
    """(receptive field, jump) along H from autograd: the input rows that output rows 0 and 1
    depend on (positive weights, no padding, so no cancellation and no border effect)."""
    layers: list[nn.Module] = []
    for kind, k, s, d in chain:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, (k, 1), (s, 1), dilation=(d, 1), bias=False).double()
            nn.init.constant_(conv.weight, 1.0)
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d((k, 1), (s, 1)))
    net = nn.Sequential(*layers)
    rows = []
    for row in (0, 1):
        x = torch.ones(1, 1, size, 1, dtype=torch.float64, requires_grad=True)
        net(x)[0, 0, row, 0].backward()
        nonzero = torch.nonzero(x.grad[0, 0, :, 0]).flatten()
        rows.append((int(nonzero.min()), int(nonzero.max())))
    (a0, a1), (b0, _) = rows
    return a1 - a0 + 1, b0 - a0


@given(chains())
def test_tracer_receptive_field_and_jump_match_autograd(chain: Chain) -> None:
    rf, jump = 1, 1
    for _kind, k, s, d in chain:  # the input size that yields exactly two output rows
        rf, jump = rf + d * (k - 1) * jump, jump * s
    size = rf + jump
    t = Tracer((1, size, 1))
    for i, (kind, k, s, d) in enumerate(chain):
        if kind == "conv":
            t.conv(f"c{i}", 1, (k, 1), stride=(s, 1), dilation=(d, 1), bias=False)
        else:
            t.avgpool(f"p{i}", (k, 1), stride=(s, 1))
    assume(t.shape[1] >= 2)
    assert (t.rf, t.jump) == measured_field(chain, size)
    assert t.jump == math.prod(s for _, _, s, _ in chain)


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), ceil=st.booleans(), h=st.integers(4, 20),
       w=st.integers(4, 20))
def test_functional_ops_move_the_tracer_as_their_modules_do_without_a_row(k: int, s: int, p: int, ceil: bool,
                                                                         h: int, w: int) -> None:
    assume(p <= k // 2)  # torch refuses padding over half the kernel
    x = torch.empty(1, 3, h, w, device="meta")
    module, functional = (Tracer((3, h, w)).maxpool("pool", k, s, p, ceil),
                          Tracer((3, h, w)).functional_pool(k, s, p, ceil))
    assert (functional.shape, functional.rf, functional.jump) == (module.shape, module.rf, module.jump)
    assert functional.shape == tuple(F.max_pool2d(x, k, s, p, ceil_mode=ceil).shape[1:])  # torch's meta kernel
    assert functional.plan.layers == [] and [r.kind for r in module.plan.layers] == ["MaxPool2d"]
    pooled = Tracer((3, h, w)).functional_global_pool()
    assert (pooled.shape, pooled.rf, pooled.plan.layers) == (tuple(F.adaptive_avg_pool2d(x, 1).shape[1:]), h, [])
    assert Tracer((3, h, w)).channels(8).shape == (8, h, w)
