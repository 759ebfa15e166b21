"""The meta-device layer table (conformance/layer_table.py): rows, meta copies, forward errors.

Oracles: closed-form layer formulas (conformance/formulas/layers.py, property-tested
against torch in test_macs.py), torchvision's weights meta ``num_params`` read live, and
the caller's own model (which must come back untouched).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torchvision

from conformance.formulas.layers import conv2d_out, conv2d_params, pool2d_out
from conformance.layer_table import (
    ForwardError,
    build_on_meta,
    layer_table,
    meta_inputs,
    meta_pass,
    run_forward,
    to_meta,
)


def test_resnet18_rows_on_meta() -> None:
    rows = layer_table(torchvision.models.resnet18, (3, 64, 64))
    by_name = {r.name: r for r in rows}
    # stem: 7x7/2 pad 3 conv, then 3x3/2 pad 1 max pool (He et al. 2016, Table 1)
    h = conv2d_out(64, 7, 2, 3)
    assert by_name["conv1"].out_shape == (64, h, h)
    assert by_name["conv1"].params == conv2d_params(3, 64, 7, bias=False)
    h = pool2d_out(h, 3, 2, 1)
    assert by_name["maxpool"].out_shape == (64, h, h)
    assert rows[-1].name == "" and rows[-1].kind == "ResNet" and rows[-1].out_shape == (1000,)
    leaves = sum(r.params for r in rows if r.is_leaf)
    assert leaves == torchvision.models.get_model_weights("resnet18").DEFAULT.meta["num_params"]


def test_rows_follow_call_order_containers_after_children() -> None:
    rows = layer_table(lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU())), (3, 8, 8))
    assert [(r.name, r.kind) for r in rows] == [("0", "Conv2d"), ("1.0", "ReLU"), ("1", "Sequential"),
                                                 ("", "Sequential")]


def test_layer_table_leaves_the_callers_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model, (3, 8, 8), train=False)
    assert model.training
    assert all(v.device.type == "cpu" and torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_to_meta_keeps_requires_grad_sharing_and_modes() -> None:
    a = nn.Linear(4, 4)
    model = nn.Sequential(a, nn.ReLU(), nn.Linear(4, 4))
    model[2].weight = a.weight  # tied weights
    model[2].bias.requires_grad_(False)
    model[1].eval()
    copy = to_meta(model)
    assert copy is not model and all(p.is_meta for p in copy.parameters())
    assert copy[2].weight is copy[0].weight
    assert not copy[2].bias.requires_grad and copy[0].bias.requires_grad
    assert copy.training and not copy[1].training
    assert next(model.parameters()).device.type == "cpu"


def test_build_on_meta_moves_what_the_factory_pinned_and_refuses_non_modules() -> None:
    class Pinned(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.ones(3, device="cpu"))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale[:, None, None]

    model = build_on_meta(Pinned)
    assert model.scale.is_meta
    assert layer_table(Pinned, (3, 4, 4))[-1].out_shape == (3, 4, 4)
    with pytest.raises(TypeError, match="not an nn.Module"):
        build_on_meta(lambda: "resnet")  # type: ignore[arg-type, return-value]


def test_meta_build_mode() -> None:
    """Meta is the default device, an explicit device is kept (moved afterwards), fills and
    nn.init calls on meta are skipped, a real tensor is still filled."""
    seen: dict[str, object] = {}

    def factory() -> nn.Module:
        seen["default"] = torch.get_default_device()
        real = torch.empty(4, device="cpu")
        nn.init.constant_(real, 2.5)  # a real tensor: must be filled
        seen["real"] = real.tolist()
        seen["explicit"] = torch.zeros(2, device="cpu").device
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))
        nn.init.kaiming_normal_(model[0].weight)
        model[2].weight.data.normal_()
        return model

    model = build_on_meta(factory)
    assert seen == {"default": torch.device("meta"), "real": [2.5] * 4, "explicit": torch.device("cpu")}
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert [tuple(p.shape) for p in model.parameters()] == [(8, 3, 3, 3), (8,), (8,), (8,), (2, 8), (2,)]
    assert torch.get_default_device() == torch.device("cpu")  # the mode is gone afterwards


def test_forward_error_names_the_innermost_module_and_keeps_rows() -> None:
    factory = lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.Flatten(), nn.Linear(5, 2)))  # noqa: E731
    with pytest.raises(ForwardError) as info:
        layer_table(factory, (3, 8, 8))
    err = info.value
    assert err.where == "1.1"
    assert "'1.1' (Linear)" in str(err) and "\n" not in str(err)
    assert [r.name for r in err.rows] == ["0", "1.0"]  # what ran before the failure


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


class _Wraps(nn.Module):
    """Calls its child through a helper and re-raises: the child's frames stay in the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _Raises()

    def _helper(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._helper(x)
        except RuntimeError:
            raise


class _Replaces(_Wraps):
    """Catches the child's error and raises its own: the failure is the parent's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._helper(x)
        except RuntimeError:
            raise ValueError("parent gave up") from None


class _AsksAChild(nn.Module):
    """Its forward reads a missing attribute of a child: the child's ``__getattr__`` raises,
    but the child was never called, so the failure is the parent's."""

    def __init__(self) -> None:
        super().__init__()
        self.child = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child.missing(x)


@pytest.mark.parametrize(("root", "where", "kind"), [
    (lambda: nn.Sequential(nn.ReLU(), _Wraps()), "1.inner", "_Raises"),
    (lambda: nn.Sequential(nn.ReLU(), _Replaces()), "1", "_Replaces"),
    (lambda: nn.Sequential(_AsksAChild()), "0", "_AsksAChild"),
    (_Raises, "", "_Raises"),  # the root itself: where "" ("in the root module")
])
def test_forward_error_attribution_follows_the_traceback(root: Callable[[], nn.Module], where: str, kind: str) -> None:
    model = root()
    with pytest.raises(ForwardError) as info:
        run_forward(model, meta_inputs((3, 4, 4)))
    assert info.value.where == where
    assert f"({kind})" in str(info.value)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # none left behind


class _FailsHoldingATensor(nn.Module):
    def __init__(self, made: list[weakref.ref[torch.Tensor]]) -> None:
        super().__init__()
        self.made = made

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        held = torch.zeros(4)  # a real tensor, alive in this frame when it raises
        self.made.append(weakref.ref(held))
        raise RuntimeError("boom")


def test_a_failed_pass_is_freed_without_the_garbage_collector() -> None:
    """Naming the failing module reads traceback frames; it must not tie the exception into a
    reference cycle, which would keep every frame of the failed pass (and its tensors) alive
    until a collection."""
    made: list[weakref.ref[torch.Tensor]] = []
    model = nn.Sequential(_FailsHoldingATensor(made))
    gc.collect()
    gc.disable()
    try:
        try:
            run_forward(model, meta_inputs((3, 4, 4)))
        except ForwardError as exc:
            assert exc.where == "0"
        assert made and made[0]() is None, "the failed pass's frames outlived the error"
    finally:
        gc.enable()


def test_meta_inputs_validates_sizes() -> None:
    (x,) = meta_inputs((3, 5, 7), batch_size=2)
    assert x.shape == (2, 3, 5, 7) and x.is_meta and x.dtype == torch.float32
    assert [t.shape for t in meta_inputs([(1, 2), (3,)])] == [(2, 1, 2), (2, 3)]
    with pytest.raises(ValueError, match="input_size"):
        meta_inputs((3, 0, 7))


def test_a_meta_module_is_used_as_it_is_and_gets_its_modes_back() -> None:
    from conformance.macs import count_flops

    model = build_on_meta(lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout()))
    model.train()
    model[1].eval()  # a mixed state the caller chose
    seen: list[bool] = []
    model[0].register_forward_pre_hook(lambda mod, _inp: seen.append(mod.training))
    rows = layer_table(model, (3, 8, 8), train=True)
    count_flops(model, (3, 8, 8))
    assert seen == [True, False]  # the same module object ran, in the mode each pass asked for
    assert [m.training for m in model] == [True, False, True] and model.training
    assert rows[0].out_shape == (4, 6, 6)


class _StaysInEval(nn.BatchNorm2d):
    """Overrides ``train``: frozen statistics whatever mode its parent is put in."""

    def train(self, mode: bool = True) -> _StaysInEval:
        return super().train(False)


@pytest.mark.parametrize("on_meta", [False, True])
def test_a_pass_sets_modes_as_module_train_does(on_meta: bool) -> None:
    """The pass's mode is what ``Module.train`` gives: an override of ``train`` is honoured,
    and a model already on meta gets its own flags back afterwards."""
    def factory() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), _StaysInEval(4), nn.Sequential(nn.ReLU())).eval()

    model = build_on_meta(factory) if on_meta else factory
    with meta_pass(model, True) as module:
        assert [m.training for m in module.modules()] == [True, True, False, True, True]
    with meta_pass(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval(), True) as plain:
        assert all(m.training for m in plain.modules())
    if on_meta:
        assert not any(m.training for m in model.modules())
