"""conformance/torch_private.py: every private torch name beside its public twin.

Oracle: the public twin itself (``public_only()``: FlopCounterMode's own dispatch and module
tracking, tensors made in the modes' sight, torch's meta kernels for the ops a counter
watches). On every registered architecture the layer table and the MAC count (total, per
aten op, per module, per layer type) must come out identical both ways; and each private
name's absence must fall back to the twin, not fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import cnn_models
from conformance import torch_private
from conformance.layer_table import build_on_meta, layer_table
from conformance.macs import count_flops
from conformance.torch_private import public_only


def test_layer_table_and_macs_are_the_same_through_the_public_twins(arch_spec: cnn_models.ArchSpec) -> None:
    model = build_on_meta(arch_spec.build)
    size = arch_spec.input_size
    fast_rows, fast_count = layer_table(model, size), count_flops(model, size)
    with public_only():
        public_rows, public_count = layer_table(model, size), count_flops(model, size)
    assert fast_rows == public_rows
    assert fast_count == public_count, (fast_count.macs, public_count.macs)


class Shared(nn.Module):
    """One conv registered under two parents and called twice: credit by subtraction (the
    public twin's) is wrong here, the innermost-module credit is right."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.a, self.b = nn.Sequential(conv), nn.Sequential(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_innermost_credit_counts_a_shared_module_once_per_call() -> None:
    count = count_flops(Shared, (2, 4, 4))
    per_call = 2 * 4 * 4 * 2 * 2 * 9  # 2 FLOPs per MAC x outputs x C_in x kernel
    assert count.flops == 2 * per_call
    assert sum(count.by_module.values()) == count.flops  # each op credited exactly once


def test_missing_private_names_fall_back_to_the_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone() -> None:
        raise ImportError("no such private name in this torch")

    monkeypatch.setattr(torch_private, "_current_dispatch_mode", gone)
    monkeypatch.setattr(torch_private, "_make_innermost_counter", gone)
    monkeypatch.setattr(torch_private, "_PYTHON_KEY", None)
    spec = cnn_models.get_spec("resnet18")
    with public_only():
        expected = count_flops(spec.build, spec.input_size)
    assert count_flops(spec.build, spec.input_size) == expected
    assert torch_private.counted_by_flop_counter() is False


def test_formulas_get_shapes_directly_only_for_flat_arguments() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    registry = FlopCounterMode(display=False).flop_registry
    mm = registry[torch.ops.aten.mm]
    a, b = torch.empty(4, 3, device="meta"), torch.empty(3, 5, device="meta")
    out = torch.empty(4, 5, device="meta")
    raw = torch_private._shape_formula(mm, out, (a, b), {})
    assert raw is not None
    assert raw(a.shape, b.shape, out_shape=out.shape) == mm(a, b, out_val=out) == 2 * 4 * 3 * 5
    # tensors nested in a list, keyword arguments, a formula not under torch's shape_wrapper: the wrapper runs
    assert torch_private._shape_formula(mm, out, ([a], b), {}) is None
    assert torch_private._shape_formula(mm, out, (a, b), {"x": 1}) is None
    assert torch_private._shape_formula(lambda *args, **kwargs: 0, out, (a, b), {}) is None


class _CountsInside(nn.Module):
    """Enters a FlopCounterMode inside its own forward: the counter tracks what runs after."""

    def __init__(self, make_counter) -> None:  # noqa: ANN001 - innermost_counter or FlopCounterMode
        super().__init__()
        self.make_counter = make_counter
        self.counts: dict[str, dict[str, int]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        counter = self.make_counter()
        with torch.no_grad(), counter:
            y = nn.Sequential(nn.Conv2d(3, 4, 3))(x)
        self.counts = {k: {str(op): n for op, n in v.items()} for k, v in counter.get_flop_counts().items()}
        return y


def test_a_counter_entered_inside_a_forward_tracks_only_what_runs_after() -> None:
    """The module running when the counter is entered is outside the pass, for torch's tracker
    (its pre-hook ran before the counter's hooks existed) and for the stack-reading one."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, 8, 8)
    ours, theirs = _CountsInside(lambda: torch_private.innermost_counter()[0]), \
        _CountsInside(lambda: FlopCounterMode(display=False))
    ours(x)
    theirs(x)
    flops = 2 * 4 * 3 * 3 * 3 * 6 * 6  # 2 x MACs: out channels x in channels x kernel x output positions
    assert theirs.counts == {"Global": {"aten.convolution": flops}, "Sequential": {"aten.convolution": flops},
                             "Sequential.0": {"aten.convolution": flops}}
    assert ours.counts == theirs.counts
