"""The wild zoo (tests/wild) computes exactly its specs' functions; its mutants do not.

Independent of the gate: the reference is our model of the spec (``cnn_models.get_model``, with
the builder kwargs of the reading the implementation follows) and, where the spec has one,
torchvision's builder. Every parameter and floating buffer of the reference (BN running
statistics too) is randomized with a seeded generator and copied into the candidate *by stored
order*: parameters with parameters, floating buffers with buffers (``num_batches_tracked``
left out), each pair of equal shape. The two then run in float64 on the same random input, in
eval mode and in train mode (``torch.manual_seed`` before each forward, so dropout draws the same
mask), and must agree to rtol 1e-10; after the train-mode pass the running statistics must agree
too. A mutant, given the same weights, must give another output (``kind="function"``), must not
take the reference's weights at all (``"shape"``), or computes the same function from another
initialisation (``"init"``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
import wild
from _shared import needs
from wild import IMPLEMENTATIONS, MUTANTS, REJECTED, Implementation, Mutant

import cnn_models

RTOL = 1e-10


def _reference(impl: Implementation, source: str) -> nn.Module:
    if source == "spec":
        spec = cnn_models.get_spec(impl.spec)
        missing = [k for k in impl.reading if k not in inspect.signature(spec.builder).parameters]
        if missing:
            pytest.skip(f"spec {impl.spec}'s builder has no {missing} option: the reading {dict(impl.reading)} "
                        "cannot be built")
        return spec.build(**impl.reading)
    spec = cnn_models.get_spec(impl.spec)
    kwargs = dict(spec.torchvision_kwargs) if spec.torchvision == source else {}
    return tvm.get_model(source, weights=None, **kwargs)


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter and floating buffer from a seeded generator: weights of rank >= 2
    U(+-sqrt(6 / fan_in)), 1-d weights (BN gammas) and running variances U(0.5, 1.5), the rest
    (biases, BN betas, running means) U(-0.5, 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if t.dim() >= 2:
                bound = math.sqrt(6.0 / t[0].numel())
                t.uniform_(-bound, bound, generator=gen)
            elif leaf in ("weight", "running_var"):
                t.uniform_(0.5, 1.5, generator=gen)
            else:
                t.uniform_(-0.5, 0.5, generator=gen)
    return model


def _stored(model: nn.Module) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[str, torch.Tensor]]]:
    params = list(model.named_parameters())
    buffers = [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
    return params, buffers


def _shape_mismatches(src: nn.Module, dst: nn.Module) -> list[str]:
    """Why ``src``'s tensors cannot be copied into ``dst`` by stored order ([] when they can)."""
    out = []
    for kind, a, b in zip(("parameters", "buffers"), _stored(src), _stored(dst), strict=True):
        if len(a) != len(b):
            out.append(f"{kind}: {len(a)} in the reference, {len(b)} in the candidate")
        out += [f"{kind}[{i}]: reference {na} {tuple(ta.shape)}, candidate {nb} {tuple(tb.shape)}"
                for i, ((na, ta), (nb, tb)) in enumerate(zip(a, b, strict=False)) if ta.shape != tb.shape]
    return out


def _copy_by_order(src: nn.Module, dst: nn.Module) -> None:
    problems = _shape_mismatches(src, dst)
    assert not problems, "tensors do not pair by stored order:\n" + "\n".join(problems[:10])
    with torch.no_grad():
        for a, b in zip(_stored(src), _stored(dst), strict=True):
            for (_, ta), (_, tb) in zip(a, b, strict=True):
                tb.copy_(ta)


def _input(impl: Implementation, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # scale 4: activations often pass 6, so a ReLU6 where a ReLU belongs shows in eval mode
    return 4.0 * torch.randn((impl.batch, *impl.input_size), generator=gen, dtype=torch.float64)


def _run(model: nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    model.train(train)
    torch.manual_seed(1234)
    with torch.no_grad():
        return model(x)


def _assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    torch.testing.assert_close(got, want, rtol=RTOL, atol=RTOL * float(want.abs().max()), msg=lambda m: f"{what}: {m}")


def _blank(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` in float64 without drawing its init (every value is overwritten next):
    built on meta, then given uninitialised CPU storage; integer buffers set to 0."""
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu").double()
    with torch.no_grad():
        for b in model.buffers():
            if not b.is_floating_point():
                b.zero_()
    return model


def _paired(impl: Implementation, source: str, candidate: Callable[[], nn.Module]) -> tuple[nn.Module, nn.Module]:
    """The reference (randomized) and ``candidate()`` holding the same tensors, both float64."""
    ref = _randomize(_blank(lambda: _reference(impl, source)), seed=0)
    cand = _blank(candidate)
    _copy_by_order(ref, cand)
    return ref, cand


def _sources(impl: Implementation) -> list[str]:
    return ["spec"] + ([impl.torchvision] if impl.torchvision else [])


FUNCTION_CASES = [(impl, source) for impl in IMPLEMENTATIONS for source in _sources(impl)]


@pytest.mark.parametrize(("impl", "source"), FUNCTION_CASES, ids=[f"{i.name}-vs-{s}" for i, s in FUNCTION_CASES])
def test_implementation_computes_the_spec_function(impl: Implementation, source: str) -> None:
    needs(impl.needs, impl.name)
    ref, cand = _paired(impl, source, impl.build)
    x = _input(impl)
    _assert_same(_run(cand, x, train=False), _run(ref, x, train=False), f"{impl.name} eval output")
    _assert_same(_run(cand, x, train=True), _run(ref, x, train=True), f"{impl.name} train output")
    for (na, ta), (nb, tb) in zip(_stored(ref)[1], _stored(cand)[1], strict=True):
        _assert_same(tb, ta, f"{impl.name} buffer {nb} (reference {na}) after one train-mode pass")


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_departs_from_the_spec(mutant: Mutant) -> None:
    impl = wild.implementation(mutant.of)
    needs(impl.needs, impl.name)
    if mutant.kind == "shape":
        ref = _reference(impl, "spec")
        assert _shape_mismatches(ref, mutant.build()), f"{mutant.name}: every tensor pairs with the reference"
        assert not _shape_mismatches(ref, impl.build()), f"{impl.name} itself does not pair"
        return
    ref, cand = _paired(impl, "spec", mutant.build)
    x = _input(impl)
    got, want = _run(cand, x, train=False), _run(ref, x, train=False)
    if mutant.kind == "function":
        gap = float((got - want).abs().max())
        assert gap > 1e-6 * float(want.abs().max()), f"{mutant.name} ({mutant.change}) computes the spec's function"
        return
    _assert_same(got, want, f"init-only {mutant.name} eval output")
    torch.manual_seed(0)
    fresh = impl.build().state_dict()
    torch.manual_seed(0)
    drawn = mutant.build().state_dict()
    assert any(not torch.equal(fresh[k], drawn[k]) for k in fresh), f"{mutant.name} draws {impl.name}'s init"


# --- facts the zoo's claims rest on ----------------------------------------------------------


def _cifar_params(n: int, widths: tuple[int, int, int] = (16, 32, 64), classes: int = 10) -> int:
    """Closed form of He et al. 2016 §4.2's 6n+2 net: 3x3 convs without bias, BN 2C per conv,
    fc 64 * 10 + 10 (option A shortcuts have no parameters)."""
    convs = 9 * 3 * widths[0]  # the stem
    bns = 2 * widths[0]
    c_in = widths[0]
    for width in widths:
        convs += 9 * c_in * width + (2 * n - 1) * 9 * width * width  # the first conv may widen
        bns += 2 * n * 2 * width
        c_in = width
    return convs + bns + widths[-1] * classes + classes


@pytest.mark.parametrize(("name", "n", "expected", "table6"), [
    ("akamaster_resnet20", 3, 269_722, 0.27e6),
    ("akamaster_resnet32", 5, 464_154, 0.46e6),
    ("akamaster_resnet56", 9, 853_018, 0.85e6),
])
def test_akamaster_parameter_counts(name: str, n: int, expected: int, table6: float) -> None:
    # expected: the closed form above, summed by hand (n=3: convs 267,696 + BN 1,376 + fc 650);
    # He et al. 2016 Table 6 prints 0.27M / 0.46M / 0.85M
    assert _cifar_params(n) == expected
    assert abs(expected - table6) <= 0.005e6
    with torch.device("meta"):
        model = wild.implementation(name).build()
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tutorial_mobilenet_departs_where_its_causes_say() -> None:
    (case,) = [r for r in REJECTED if r.name == "tutorial_mobilenet"]
    with torch.device("meta"):
        model = case.build()
    # Howard et al. 2017 Table 1: "Conv / s2" stem, global "Avg Pool 7x7" over the 7x7 map
    assert cnn_models.get_spec(case.spec).config["stem"] == (32, 2)
    stem = model.get_submodule("conv1")
    assert isinstance(stem, nn.Conv2d) and stem.stride == (1, 1)
    pool = model.get_submodule("avgpool")
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2


def test_the_zoo_is_large_enough_and_consistent() -> None:
    names = [i.name for i in IMPLEMENTATIONS]
    assert len(set(names)) == len(names) >= 8
    assert len({m.name for m in MUTANTS}) == len(MUTANTS) >= 8
    for mutant in MUTANTS:
        assert wild.implementation(mutant.of) and mutant.cause and all(mutant.cause), mutant.name
    for impl in IMPLEMENTATIONS:
        cnn_models.get_spec(impl.spec)  # registered
