"""The statistics of conformance/init_check.py: a few extreme draws cannot fail a correct init,
a normal is told from a uniform of the same std, and ``compare_init`` judges a candidate's
fresh tensors against a reference's fresh tensors (torchvision's ResNet-18 here).

Weights are drawn by torch's own init functions; expected laws are written out from their
sources (He et al. 2015, Eq. (14) for torchvision's ResNet convs, ``kaiming_normal_`` with
``mode="fan_out"``; PyTorch's default ``kaiming_uniform_(a=sqrt(5))``, U(+-1/sqrt(fan_in))).
"""

from __future__ import annotations

import math
import re
from statistics import NormalDist

import pytest
import torch
import torch.nn as nn
import torchvision

from cnn_models import InitScheme
from conformance.init_check import N_SHAPE, Z, compare_init, init_failures

TRUNC = InitScheme(conv="kaiming_normal_fan_out", linear="trunc_normal_0.1", linear_bias="zeros", source="test")
HE = InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01", source="test")
C = NormalDist().inv_cdf(0.75)  # half of a normal's |w| lies below C std


def _trunc_normal_linear(n_in: int, n_out: int, seed: int, planted: int) -> nn.Module:
    """N(0, 0.1^2) truncated at +-2 (torch's ``trunc_normal_``), ``planted`` weights set to +2.0."""
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        nn.init.trunc_normal_(lin.weight, std=0.1, a=-2.0, b=2.0, generator=gen)
        lin.weight.view(-1)[torch.arange(planted) * 1009] = 2.0  # the truncation bound, 20 sigma
        nn.init.zeros_(lin.bias)
    return nn.Sequential(lin)


# --- the one-sample checks (init_failures) ---------------------------------------------------


def test_shape_test_starts_at_the_least_n_whose_bands_are_disjoint() -> None:
    """P(|X| < c sigma) is 2 Phi(c) - 1 for a normal and c / sqrt(3) for a uniform of the same
    std; binomial SE sqrt(p (1 - p) / n); the bands of Z SE around each are disjoint from n on."""
    p_normal, p_uniform = 2 * NormalDist().cdf(C) - 1, C / math.sqrt(3)
    assert p_normal == pytest.approx(0.5) and p_uniform == pytest.approx(0.3894, abs=1e-4)

    def disjoint(n: int) -> bool:
        spread = math.sqrt(p_normal * (1 - p_normal)) + math.sqrt(p_uniform * (1 - p_uniform))
        return Z * spread / math.sqrt(n) <= p_normal - p_uniform

    assert disjoint(N_SHAPE) and not disjoint(N_SHAPE - 1)
    assert N_SHAPE < 4096  # the layers the kurtosis test covered are still covered


@pytest.mark.parametrize("planted", [1, 3])
def test_trunc_normal_with_draws_at_the_truncation_bound_passes(planted: int) -> None:
    model = _trunc_normal_linear(640, 640, seed=planted, planted=planted)  # 409,600 weights
    w = model[0].weight.detach().double().reshape(-1)
    # the case a moment test cannot take: the sample excess kurtosis (SE sqrt(24/n) for a
    # normal, Fisher 1930) lies far outside its 6-SE band because of the planted values
    excess = float((w**4).mean() / (w**2).mean() ** 2 - 3)
    assert excess > 6 * math.sqrt(24 / w.numel())
    assert init_failures(model, TRUNC) == []


def test_one_draw_at_twenty_sigma_never_fails_a_small_layer() -> None:
    """n = 4096: unclipped, (20 sigma)^2 adds 400/n = 0.098 to the variance ratio, 4.4 of its
    standard errors sqrt(2/n); every seed must pass (a sanity bound over 50 seeds)."""
    assert 400 / 4096 / math.sqrt(2 / 4096) > 4
    failures = {seed: init_failures(_trunc_normal_linear(64, 64, seed, planted=1), TRUNC) for seed in range(50)}
    assert {s: f for s, f in failures.items() if f} == {}


def test_uniform_of_the_right_std_declared_normal_is_caught() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(128, 128, 3, bias=False)  # 147,456 weights; He fan_out std sqrt(2/1152)
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (128 * 9))  # U(+-b) has std b / sqrt(3)
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound, generator=gen)
    (msg,) = init_failures(nn.Sequential(conv), HE)
    assert msg.startswith("0: conv weight (kaiming_normal_fan_out) shape:") and "expected 0.500 for a normal" in msg


def test_uniform_declared_normal_is_caught_from_the_least_n_on() -> None:
    """Just above N_SHAPE the uniform's fraction (0.389) is outside the normal's 6-SE band for
    every seed tried (a sanity bound over 20 seeds)."""
    lin = nn.Linear(64, 48, bias=False)  # 3072 weights, declared N(0, 0.01^2)
    assert lin.weight.numel() >= N_SHAPE
    bound = math.sqrt(3.0) * 0.01
    for seed in range(20):
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=torch.Generator().manual_seed(seed))
        assert any(" shape: " in f for f in init_failures(nn.Sequential(lin), HE)), seed


def test_normal_declared_uniform_is_caught() -> None:
    gen = torch.Generator().manual_seed(0)
    scheme = InitScheme(conv="kaiming_uniform_fan_in", linear="normal_0.01", source="test")
    conv = nn.Conv2d(128, 128, 3, bias=False)  # U(+-sqrt(6/fan_in)) has std sqrt(2/fan_in)
    with torch.no_grad():
        conv.weight.normal_(0.0, math.sqrt(2.0 / (128 * 9)), generator=gen)
    failures = init_failures(nn.Sequential(conv), scheme)
    assert any("has values outside" in f for f in failures), failures
    assert any(" shape: " in f and "expected 0.389 for a uniform" in f for f in failures), failures


# --- the two-sample comparison (compare_init) ------------------------------------------------


def _resnet18(seed: int, **kwargs: object) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, **kwargs)


def _by_name(candidate: nn.Module, reference: nn.Module) -> list[tuple[str, torch.Tensor, str, torch.Tensor]]:
    cand, ref = candidate.state_dict(), reference.state_dict()
    return [(k, cand[k], k, ref[k]) for k in ref]


def _conv_weights(model: nn.Module) -> list[str]:
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _failing(failures: list[str]) -> set[str]:
    return {f.split(":", 1)[0] for f in failures}


def test_resnet18_against_itself_with_another_seed_passes() -> None:
    assert compare_init(_by_name(_resnet18(1), _resnet18(0))) == []


def test_convs_drawn_from_a_standard_normal_fail_naming_each_tensor() -> None:
    reference, candidate = _resnet18(0), _resnet18(1)
    for m in candidate.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 1.0)
    failures = compare_init(_by_name(candidate, reference))
    assert _failing(failures) == set(_conv_weights(reference))
    (first,) = [f for f in failures if f.startswith("layer1.0.conv1.weight:")]
    assert "(as reference layer1.0.conv1.weight)" in first and "second-moment ratio" in first


def test_a_conv_left_at_pytorchs_default_init_fails() -> None:
    """layer2.0.conv1 (64 -> 128, 3x3): U(+-1/sqrt(576)) has variance 1/(3*576), He fan_out
    2/1152: the second moments differ by a factor 3."""
    reference, candidate = _resnet18(0), _resnet18(1)
    candidate.layer2[0].conv1.reset_parameters()
    (failure,) = compare_init(_by_name(candidate, reference))
    assert failure.startswith("layer2.0.conv1.weight: std ") and "(as reference layer2.0.conv1.weight)" in failure
    ratio = float(re.search(r"second-moment ratio ([0-9.]+)", failure).group(1))
    assert ratio == pytest.approx((1 / (3 * 576)) / (2 / 1152), rel=0.05)


def test_bn_gammas_at_zero_where_the_reference_has_one_fail() -> None:
    candidate = _resnet18(1, zero_init_residual=True)  # torchvision zeroes bn2 of each BasicBlock
    failures = compare_init(_by_name(candidate, _resnet18(0)))
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]  # ResNet-18: [2, 2, 2, 2]
    assert failures == [
        f"{b}.bn2.weight: expected all 1 (as reference {b}.bn2.weight), got values in [0, 0]" for b in blocks
    ]


def test_he_uniform_for_he_normal_of_the_same_std_fails_on_the_law() -> None:
    """``kaiming_uniform_(mode="fan_out")`` draws U(+-sqrt(6/fan_out)), std sqrt(2/fan_out) as
    He normal's: only the law differs, and every ResNet-18 conv has >= 8192 weights, enough
    for the two-sample shape test (1/n + 1/n <= 1/N_SHAPE)."""
    reference, candidate = _resnet18(0), _resnet18(1)
    for m in candidate.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="relu")
    failures = compare_init(_by_name(candidate, reference))
    assert _failing(failures) == set(_conv_weights(reference))
    assert all(": law differs: " in f for f in failures), failures


def _draw(law: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    w = torch.empty(shape)
    if law == "he_normal":
        return nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen)
    if law == "torch_default":
        return nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
    nn.init.trunc_normal_(w, std=0.1, a=-2.0, b=2.0, generator=gen)
    w.view(-1)[:3] = 2.0  # three draws at the truncation bound, 20 sigma
    return w


@pytest.mark.parametrize("law", ["he_normal", "torch_default", "trunc_normal_planted"])
def test_two_draws_of_one_law_never_fail(law: str) -> None:
    """A sanity bound over 50 seeds: a 64x64x3x3 conv weight, a 64-element bias-sized tensor
    and a 10-element one (under N_STAT: only constancy is judged) never fail."""
    gen = torch.Generator().manual_seed(0)
    failures = []
    for _ in range(50):
        pairs = [(f"t{i}", _draw(law, shape, gen), f"r{i}", _draw(law, shape, gen))
                 for i, shape in enumerate([(64, 64, 3, 3), (64, 1), (10, 1)])]
        failures += compare_init(pairs)
    assert failures == []


def test_a_shifted_mean_fails() -> None:
    gen = torch.Generator().manual_seed(0)
    ref = _draw("he_normal", (64, 64, 3, 3), gen)
    cand = _draw("he_normal", (64, 64, 3, 3), gen) + 0.1 * math.sqrt(2 / 576)  # 0.1 std, ~13 SE
    (failure,) = compare_init([("conv.weight", cand, "ref.weight", ref)])
    assert failure.startswith("conv.weight: mean ") and "(as reference ref.weight; difference limit" in failure


def test_exact_comparisons_and_small_tensors() -> None:
    rand = torch.randn(100, generator=torch.Generator().manual_seed(0))
    rms = float(rand.square().mean().sqrt())
    pairs = [
        ("bn.num_batches_tracked", torch.tensor(3), "ref.num_batches_tracked", torch.tensor(0)),
        ("scalar", torch.tensor([0.52]), "ref.scalar", torch.tensor([0.37])),  # one draw: not judged
        ("gamma", torch.tensor([0.5]), "ref.gamma", torch.tensor([1.0])),  # a whole number: a constant
        ("bias", torch.zeros(100), "ref.bias", rand),
        ("w", torch.zeros(3, 4), "ref.w", torch.zeros(4, 3)),
        ("nan", torch.full((100,), math.nan), "ref.nan", rand),
    ]
    assert compare_init(pairs) == [
        "bn.num_batches_tracked: expected 0 (as reference ref.num_batches_tracked), got 3",
        "gamma: expected all 1 (as reference ref.gamma), got values in [0.5, 0.5]",
        f"bias: expected random values (std {rms:.4g}, as reference ref.bias), got all 0",
        "w: expected shape (4, 3) (as reference ref.w), got (3, 4)",
        "nan: expected finite values (as reference ref.nan), got 100 of 100 non-finite",
    ]
