"""Trace and alignment (conformance/trace.py, conformance/align.py) on small models written
two ways: tensors are paired by their role in the computation, never by name, and a real
difference is named by its cause (the op and attribute where the computations part)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from conformance.align import align, canonical_ops
from conformance.layer_table import build_on_meta
from conformance.trace import trace_model


def _align(cand: type[nn.Module] | object, ref: object, size: tuple[int, ...] = (3, 8, 8)):  # noqa: ANN202
    return align(trace_model(build_on_meta(cand), size), trace_model(build_on_meta(ref), size))  # type: ignore[arg-type]


class ModuleNet(nn.Module):
    def __init__(self, eps: float = 1e-5, pool: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.pool = pool or nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


class FunctionalNet(nn.Module):
    """ModuleNet's function with other names, functional ops and a hand-written linear layer."""

    def __init__(self, relu: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(4, 3, 3, 3))
        self.g, self.b = nn.Parameter(torch.ones(4)), nn.Parameter(torch.zeros(4))
        self.register_buffer("mu", torch.zeros(4))
        self.register_buffer("var", torch.ones(4))
        self.head_w, self.head_b = nn.Parameter(torch.empty(5, 4)), nn.Parameter(torch.empty(5))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(F.conv2d(x, self.w, padding=1), self.mu, self.var, self.g, self.b, self.training, 0.1, 1e-5)
        if self.relu:
            x = F.relu(x)
        x = x.mean((2, 3))  # (N, 4)
        return x @ self.head_w.t() + self.head_b


def test_functional_ops_and_other_names_align_by_role() -> None:
    al = _align(FunctionalNet, ModuleNet)
    assert al.complete, [d.describe() for d in al.differences]
    assert al.pairs == {"w": "conv.weight", "g": "bn.weight", "b": "bn.bias", "mu": "bn.running_mean",
                        "var": "bn.running_var", "head_w": "fc.weight", "head_b": "fc.bias"}


def test_avg_pool_over_the_whole_map_is_a_global_pool_with_a_note() -> None:
    al = _align(lambda: ModuleNet(pool=nn.AvgPool2d(8)), ModuleNet)
    assert al.complete
    assert any("avg_pool(kernel (8, 8)) over (8, 8) maps" in n for n in al.notes), al.notes
    # a pool over part of the map is not global: the pool is named as the cause
    part = _align(lambda: ModuleNet(pool=nn.AvgPool2d(2)), ModuleNet, (3, 2, 2))
    assert part.complete
    part = _align(lambda: ModuleNet(pool=nn.Sequential(nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))), ModuleNet)
    assert not part.complete
    assert "pool(kind=avg, kernel=(2, 2), stride=(2, 2)" in part.differences[0].describe()


def test_a_different_bn_eps_is_named_as_that_attribute() -> None:
    al = _align(lambda: ModuleNet(eps=1e-3), ModuleNet)
    assert [d.describe() for d in al.differences] == ["bn: norm eps 0.001, reference 1e-05"]


def test_a_missing_relu_is_named() -> None:
    al = _align(lambda: FunctionalNet(relu=False), ModuleNet)
    assert not al.complete
    assert [d.describe() for d in al.differences] == [
        "the candidate has no counterpart of the reference's act(fn=relu) in relu -> (4, 8, 8) "
        "(after its norm in <root>)"]


class Branches(nn.Module):
    """Three convolutions of the same input, concatenated in the order (a, b, c); ``order``
    is the order in which they run, which must not matter."""

    def __init__(self, order: str = "abc", cat: str = "abc") -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(3, 2, 1)  # same shape as a: only the concat position tells them apart
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.order, self.cat = order, cat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = {k: getattr(self, k)(x) for k in self.order}
        return torch.cat([outs[k] for k in self.cat], 1)


def test_branches_pair_by_concat_position_not_execution_order() -> None:
    al = _align(lambda: Branches(order="cba"), Branches)
    assert al.complete
    assert al.pairs["a.weight"] == "a.weight" and al.pairs["b.weight"] == "b.weight"
    assert [op.module for op in canonical_ops(trace_model(build_on_meta(lambda: Branches(order="cba")), (3, 4, 4)))] \
        == ["a", "b", "c", ""]


def test_swapped_concatenation_pairs_the_swapped_branches() -> None:
    """cat(b, a) equals cat(a, b) up to the pairing: a's weight goes where b's stood."""
    al = _align(lambda: Branches(cat="bac"), Branches)
    assert al.pairs["b.weight"] == "a.weight" and al.pairs["a.weight"] == "b.weight"


def test_residual_sum_is_matched_whichever_operand_comes_first() -> None:
    class Res(nn.Module):
        def __init__(self, flip: bool = False) -> None:
            super().__init__()
            self.conv, self.flip = nn.Conv2d(3, 3, 3, padding=1), flip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return F.relu(x + y if self.flip else y + x)

    assert _align(lambda: Res(flip=True), Res).complete


def test_one_changed_conv_is_the_only_difference_however_deep_the_net() -> None:
    """A difference in the first block must not reorder the operands of every later residual
    sum (bn2 and the downsample's BN of layer4.0 have the same shapes: only the structure just
    above them tells them apart)."""
    import torchvision

    def five_by_five() -> nn.Module:
        model = torchvision.models.resnet18()
        model.layer1[0].conv2 = nn.Conv2d(64, 64, 5, padding=2, bias=False)
        return model

    al = _align(five_by_five, torchvision.models.resnet18, (3, 64, 64))
    assert [d.describe() for d in al.differences] == [
        "layer1.0.conv2: conv weight (64, 64, 5, 5), reference (64, 64, 3, 3); padding (2, 2), reference (1, 1)"]
    assert al.unpaired_candidate == al.unpaired_reference == ["layer1.0.conv2.weight"]
    keys = torchvision.models.resnet18().state_dict()
    assert al.pairs == {k: k for k in keys if k != "layer1.0.conv2.weight"}  # every other tensor, with itself


def test_trace_error_names_the_module() -> None:
    import pytest

    from conformance.trace import TraceError

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(7, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    with pytest.raises(TraceError, match=r"in fc: "):
        trace_model(build_on_meta(Broken), (3, 4, 4))


def test_a_spec_declaring_what_torchvision_does_not_draw_is_refused() -> None:
    """resnet18's spec with kaiming fan_in declared: torchvision's ResNet draws fan_out
    (torchvision/models/resnet.py), so the declaration itself fails, naming torchvision."""
    import dataclasses

    import cnn_models
    from conformance.check import check_candidate

    spec = cnn_models.get_spec("resnet18")
    wrong = spec.replace(init=dataclasses.replace(spec.init, conv="kaiming_normal_fan_in"))
    report = check_candidate(spec.build, "resnet18 with a fan_in declaration", spec=wrong)
    init = next(c for c in report.checks if c.name == "init")
    assert init.status == "fail"
    assert any("the spec declares what torchvision does not draw: torchvision:resnet18 conv1" in f
               for f in init.failures), init.failures
