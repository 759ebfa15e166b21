"""Helpers the test files share: torchvision's weights metadata, parameter counts, layer-table
rows, FlopCounterMode MACs, randomized BatchNorm state for float64 gradchecks, a throwaway
spec to register, the gradflow command run in-process, and a pickle that would run code.

Imported as ``from _shared import ...`` (``tests/`` is on pytest's import path, as ``wild`` is).
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

import cnn_models
from cnn_models import ArchSpec, Expected, InitScheme
from conformance.layer_table import layer_table

PARAMETRIC = ("Conv2d", "BatchNorm2d", "Linear")


def tv_weights_info(name: str, entry: str = "DEFAULT") -> dict[str, Any]:
    """The metadata of a torchvision builder's weights entry (``num_params``, ``_ops``,
    ``min_size``...), read live from the installed torchvision; no download."""
    return torchvision.models.get_model_weights(name)[entry].meta


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rows(table: Iterable[Any], kinds: tuple[str, ...] | None = None) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, kind, per-sample output shape, params) of layer-table or closed-form rows,
    of the given kinds only when ``kinds`` is set."""
    return [(r.name, r.kind, tuple(r.out_shape), r.params) for r in table if kinds is None or r.kind in kinds]


def leaf_rows(model_or_factory: nn.Module | Callable[[], nn.Module], input_size: tuple[int, int, int],
              train: bool = False) -> list[tuple[str, str, tuple[int, ...], int]]:
    """``rows`` of the leaf modules of a model's layer table (built on meta)."""
    return rows(r for r in layer_table(model_or_factory, input_size, train=train) if r.is_leaf)


def assert_rows_equal(expected: list[Any], got: list[Any], what: str) -> None:
    """Closed-form rows vs a module's, failing on the first row that differs."""
    __tracebackhide__ = True
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        if e != g:
            pytest.fail(f"{what}: row {i} differs: expected {e} (closed form), got {g} (module)")
    if len(expected) != len(got):
        extra = expected[len(got):] or got[len(expected):]
        pytest.fail(f"{what}: expected {len(expected)} rows, got {len(got)}; first unmatched {extra[0]}")


def state_shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """State_dict keys with their shapes, in order."""
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def flop_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-adds per sample by FlopCounterMode on meta tensors (2 FLOPs per conv/matmul MAC)."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros((1, *input_size), device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0, f"FlopCounterMode returned an odd FLOP count {flops}"
    return flops // 2


def randomize_bn(module: nn.Module, gen: torch.Generator) -> None:
    """Every BatchNorm2d's running statistics and affine parameters random (running_var in
    [0.5, 2)), so an identity-like BN hides nothing from a gradient or output comparison."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.normal_(generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                if m.affine:
                    m.weight.normal_(generator=gen)
                    m.bias.normal_(generator=gen)


def randomize(module: nn.Module, gen: torch.Generator, scale: float = 0.5) -> None:
    """Every parameter drawn from N(0, scale²), BatchNorm scales then shifted to 1 + N(0, scale²),
    running statistics random (running_var in [0.5, 1.5)): a whole network stays O(1) in float64
    while no identity-like value hides a difference."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen, dtype=m.running_mean.dtype))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen, dtype=m.running_var.dtype) + 0.5)
                if m.affine:
                    m.weight.add_(1.0)


def gradcheck_block(block: nn.Module, in_shape: tuple[int, ...], seed: int = 0) -> None:
    """float64 eval-mode gradcheck of a block w.r.t. its input and every parameter, BN state
    randomized (``randomize_bn``)."""
    __tracebackhide__ = True
    gen = torch.Generator().manual_seed(seed)
    block = block.double().eval()
    randomize_bn(block, gen)
    names = [n for n, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in block.parameters())
    x = torch.randn(in_shape, dtype=torch.float64, generator=gen).requires_grad_(True)

    def f(inp: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(block, dict(zip(names, ps, strict=True)), (inp,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


def spec_config(name: str, **overrides: Any) -> dict[str, Any]:
    """A registered spec's closed-form config with some entries replaced."""
    return {**cnn_models.get_spec(name).config, **overrides}


TINY_INIT = InitScheme(conv="torch_default", linear="torch_default", source="test", authority="convention")


def tiny_net(*, num_classes: int = 3, flavour: str = "a") -> nn.Module:
    """A throwaway builder (12 inputs, one linear layer, one unused option): 12 * 3 + 3 = 39
    parameters at the default ``num_classes``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))


def tiny_spec(name: str = "tiny_test_net", **changes: Any) -> ArchSpec:
    """A well-formed spec around ``tiny_net``, with some fields replaced."""
    base = ArchSpec(
        name=name, family="none", builder=tiny_net, paper="none", torchvision=None, input_size=(3, 2, 2),
        init=TINY_INIT, expected={"params": Expected(39, "by hand: 12 * 3 + 3")}, config={}, num_classes=3,
    )
    return base.replace(**changes)


def run_gradflow(argv: list[str]) -> int:
    """``cnn-conformance gradflow ARGV`` in-process; its exit code."""
    from conformance.gradflow.cli import add_arguments, run

    parser = argparse.ArgumentParser(prog="cnn-conformance gradflow")
    add_arguments(parser)
    return run(parser.parse_args(argv))


class RunsCode:
    """A pickle payload that creates ``marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def needs(module: str | None, what: str = "this test") -> None:
    """Skip, saying why, when an optional module (a pyproject ``test`` extra) is missing."""
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{what} needs {module} (pyproject extra 'test')")
