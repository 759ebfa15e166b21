"""Probes: statistics are right and the probed model computes exactly what it did before.

Oracles: plain torch arithmetic on the same tensors ((y**2).mean(), retain_grad()), and
bitwise equality of outputs and every parameter gradient with and without the probes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from conformance.gradflow import Probe, build_net, log_mean_square, probe_names


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(
    model: nn.Module, x: torch.Tensor, g_seed: int = 0
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(g_seed), dtype=out.dtype)
    (g * out).sum().backward()
    return out.detach(), _grads(model), x.grad.clone()


@pytest.mark.parametrize(
    "residual,bn", [("off", False), ("off", True), ("on", False), ("on", True), ("scaled", True)]
)
def test_probes_do_not_change_outputs_or_gradients(residual: str, bn: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    net = build_net(depth=4, width=8, init="he_fan_in", residual=residual, bn=bn, generator=gen)
    x = torch.randn(4, 8, 6, 6, generator=gen, dtype=torch.float64)
    out_a, grads_a, gx_a = _run(net, x)
    with Probe(net, modules=probe_names(4, residual)) as probe:
        out_b, grads_b, gx_b = _run(net, x)
        assert len(probe.records) == (4 if residual == "off" else 5)
    out_c, grads_c, gx_c = _run(net, x)  # after detaching: still the same
    assert torch.equal(out_a, out_b) and torch.equal(out_a, out_c)
    assert torch.equal(gx_a, gx_b) and torch.equal(gx_a, gx_c)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), f"gradient of {name} changed"


def test_probes_do_not_change_a_torchvision_style_resnet() -> None:
    """Default selection (every Conv2d and Linear) on resnet18, whose blocks use in-place
    ReLUs right after the probed BN outputs' convs and reuse one ReLU module twice."""
    import cnn_models

    torch.manual_seed(0)
    model = cnn_models.get_model("resnet18", num_classes=5).double().train()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    out_a, grads_a, gx_a = _run(model, x)
    with Probe(model) as probe:
        out_b, grads_b, gx_b = _run(model, x)
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), f"gradient of {name} changed"
    assert len(probe.records) == 21  # 20 convs (incl. 3 downsample) + fc
    assert all(r.grad_seen for r in probe.records)


def test_statistics_match_plain_torch_arithmetic() -> None:
    torch.manual_seed(1)
    conv1 = nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    conv2 = nn.Conv2d(5, 4, 3, padding=1, bias=False).double()
    model = nn.Sequential(conv1, nn.ReLU(inplace=True), conv2)  # in-place ReLU on conv1's output
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    g = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    # oracle: the same computation without in-place ops, with retain_grad
    y1 = conv1(x)
    y1.retain_grad()
    y2 = conv2(torch.relu(y1))
    y2.retain_grad()
    (g * y2).sum().backward()
    with Probe(model, modules=["0", "2"]) as probe:
        out = model(x)
        (g * out).sum().backward()
    r1, r2 = probe.records
    for rec, y in ((r1, y1), (r2, y2)):
        yd = y.detach()
        assert rec.act_second_moment == pytest.approx(float((yd**2).mean()), rel=1e-12)
        assert rec.act_mean == pytest.approx(float(yd.mean()), rel=1e-12, abs=1e-15)
        assert rec.act_variance == pytest.approx(float(yd.var(unbiased=False)), rel=1e-12)
        chan = float(yd.var(dim=(0, 2, 3), unbiased=False).mean())
        assert rec.act_channel_variance == pytest.approx(chan, rel=1e-12)
        assert rec.grad_second_moment == pytest.approx(float((y.grad**2).mean()), rel=1e-12)
        assert rec.grad_norm == pytest.approx(float(y.grad.norm()), rel=1e-12)
        assert rec.shape == tuple(y.shape)


def test_module_called_twice_gets_two_records() -> None:
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with Probe(model, modules=["1"]) as probe:
        model(torch.randn(2, 3, requires_grad=True)).sum().backward()
    assert [r.key for r in probe.records] == ["1", "1#1"]
    assert [r.call for r in probe.records] == [0, 1]


def test_unknown_module_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="layer9"):
        Probe(nn.Sequential(nn.Linear(2, 2)), modules=["layer9"])


def test_log_mean_square_beyond_the_float64_range() -> None:
    big = torch.full((10,), 1e200, dtype=torch.float64)  # squares overflow float64
    assert log_mean_square(big) == pytest.approx(2 * 200 * math.log(10), rel=1e-14)
    tiny = torch.tensor([3e-300, -4e-300], dtype=torch.float64)  # squares underflow
    assert log_mean_square(tiny) == pytest.approx(2 * math.log(1e-300) + math.log(12.5), rel=1e-12)
    assert log_mean_square(torch.zeros(3)) == -math.inf
    assert math.isnan(log_mean_square(torch.tensor([1.0, math.inf])))
