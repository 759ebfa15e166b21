"""Ops answered by their shape formula on meta (``layer_table._MetaShapeOnly``) agree with torch.

The oracle is torch itself: the same op with the same arguments run by its own meta kernel
(with the shortcut switched off). Where the real op raises, the shortcut must not answer (it
falls through to the op, which raises as before); where it answers, the shape, dtype and
device must be the kernel's. Then the layer tables and FlopCounterMode counts of one
architecture per block structure, and torchvision's own models' tables, must come out the same
with and without the shortcut.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from hypothesis import given
from hypothesis import strategies as st

import cnn_models
from conformance import layer_table as ins
from conformance import torch_private
from conformance.layer_table import layer_table
from conformance.macs import count_flops
from conformance.torch_private import public_only


@contextmanager
def kernels_only() -> Iterator[None]:
    """Switch the shortcut off: every op runs its own meta kernel."""
    old = ins._MetaShapeOnly.__torch_function__

    def passthrough(self: Any, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))

    ins._MetaShapeOnly.__torch_function__ = passthrough  # type: ignore[method-assign]
    try:
        yield
    finally:
        ins._MetaShapeOnly.__torch_function__ = old  # type: ignore[method-assign]


def _run(fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the kind of failure is part of the comparison
        return "raises", type(exc).__name__
    return "ok", (tuple(out.shape), out.dtype, out.device.type)


def _same_as_kernel(fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` gives the same shape, dtype and device (or the same exception
    type) with the shortcut as with the meta kernel."""
    with kernels_only():
        expected = _run(fn, *args, **kwargs)
    with ins._MetaShapeOnly():
        got = _run(fn, *args, **kwargs)
    assert got == expected, (fn, args, kwargs)


def m(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An empty meta tensor (``m()`` is a 0-dim one)."""
    return torch.empty(shape, device="meta", dtype=dtype)


small = st.integers(1, 5)


@given(n=small, c_in_per_group=small, c_out_per_group=small, groups=st.integers(1, 3), size=st.integers(1, 12),
       k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 3), d=st.integers(1, 2), bias=st.booleans(),
       wrong_channels=st.booleans())
def test_conv2d_shape_matches_the_kernel(n: int, c_in_per_group: int, c_out_per_group: int, groups: int, size: int,
                                         k: int, s: int, p: int, d: int, bias: bool, wrong_channels: bool) -> None:
    x = m(n, c_in_per_group * groups + int(wrong_channels), size, size + 1)
    w = m(c_out_per_group * groups, c_in_per_group, k, k)
    b = m(c_out_per_group * groups) if bias else None
    _same_as_kernel(lambda: F.conv2d(x, w, b, (s, 1), (p, 0), (d, 1), groups))


@given(size=st.integers(1, 14), k=st.integers(1, 5), s=st.one_of(st.none(), st.integers(1, 3)), p=st.integers(0, 3),
       d=st.integers(1, 2), ceil=st.booleans(), is_max=st.booleans())
def test_pool2d_shape_matches_the_kernel(size: int, k: int, s: int | None, p: int, d: int, ceil: bool,
                                         is_max: bool) -> None:
    x = m(2, 3, size, size + 2)
    if is_max:
        _same_as_kernel(lambda: F.max_pool2d(x, k, s, p, d, ceil_mode=ceil))
    else:
        _same_as_kernel(lambda: F.avg_pool2d(x, k, s, p, ceil_mode=ceil))


@given(h=st.integers(1, 9), w=st.integers(1, 9),
       out=st.one_of(st.integers(1, 7), st.tuples(st.integers(1, 7), st.none())))
def test_adaptive_pool_shape_matches_the_kernel(h: int, w: int, out: Any) -> None:
    _same_as_kernel(lambda: F.adaptive_avg_pool2d(m(2, 3, h, w), out))


shapes = st.lists(st.integers(1, 3), min_size=0, max_size=4)


@given(a=shapes, b=shapes, op=st.sampled_from(["add", "mul", "sub", "iadd", "add_", "radd"]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_broadcasting_arithmetic_matches_the_kernel(a: list[int], b: list[int], op: str, dtype: torch.dtype) -> None:
    x, y = m(*a), m(*b, dtype=dtype)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y, "iadd": lambda: x.__iadd__(y),
        "add_": lambda: x.add_(y), "radd": lambda: 2.0 + x,
    }
    _same_as_kernel(fns[op])


@given(sizes=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=3),
       dim=st.integers(-4, 3))
def test_cat_shape_matches_the_kernel(sizes: list[tuple[int, int, int]], dim: int) -> None:
    tensors = [m(2, *s) for s in sizes]
    _same_as_kernel(lambda: torch.cat(tensors, dim))


def test_pool_and_conv_shapes_match_the_kernel_on_an_exhaustive_small_grid() -> None:
    """Every (size, kernel, stride, padding, dilation, ceil_mode) in a small grid, including the
    ceil_mode rule that drops a last window starting in the right padding, and the errors
    (window larger than the input, padding over half the kernel)."""
    for size in range(1, 9):
        x = m(1, 2, size, size)
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(3):
                    for d in (1, 2):
                        for ceil in (False, True):
                            _same_as_kernel(F.max_pool2d, x, k, s, p, d, ceil_mode=ceil)
                        _same_as_kernel(F.conv2d, x, m(3, 2, k, k), None, s, p, d)
                    for ceil in (False, True):
                        _same_as_kernel(F.avg_pool2d, x, k, s, p, ceil_mode=ceil)


@pytest.mark.parametrize(("a", "b"), [((2, 3), (4,)), ((2, 3), (3,)), ((2, 1, 4), (3, 1)), ((), (2,)), ((0, 3), (1,)),
                                      ((2, 0), (2, 1))])
@pytest.mark.parametrize("op", ["add", "mul", "sub", "add_"])
def test_broadcasting_edge_cases_match_the_kernel(a: tuple[int, ...], b: tuple[int, ...], op: str) -> None:
    x, y = m(*a), m(*b)
    fns: dict[str, Callable[[], torch.Tensor]] = {"add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y,
                                                  "add_": lambda: x.add_(y)}
    _same_as_kernel(fns[op])


@pytest.mark.parametrize("fn", [
    lambda: F.batch_norm(m(2, 4, 3, 3), m(4), m(4), m(4), m(4), training=True),
    lambda: F.batch_norm(m(2, 4, 3, 3), m(5), m(5), training=False),
    lambda: F.local_response_norm(m(2, 4, 3, 3), 5),
    lambda: F.linear(m(2, 8), m(4, 8), m(4)),
    lambda: F.linear(m(2, 8), m(4, 7)),
    lambda: torch.sigmoid(m(2, 3)),
    lambda: F.hardtanh(m(2, 3), 0.0, 6.0),
    lambda: F.dropout(m(2, 3), 0.3, training=True),
    lambda: torch.flatten(m(2, 3, 4, 5), 1),
    lambda: m(2, 3, 4, 5).flatten(1, 2),
    lambda: torch.flatten(m(2, 3), 1, 0),
    lambda: torch.flatten(m(), 0),
    lambda: F.pad(m(2, 3, 4, 5), (0, 0, 0, 0, 2, 3)),
    lambda: F.pad(m(2, 3, 4, 5), (1, 2)),
    lambda: F.pad(m(2, 3), (1, 2, 3, 4, 5, 6)),
    lambda: m(dtype=torch.int64).add_(1),
    lambda: m(2, 3, dtype=torch.uint8) * 3,
    lambda: m(2, 3, dtype=torch.bool) + 1,
    lambda: m(2, dtype=torch.int32).add_(1.5),
], ids=["bn-train", "bn-wrong-channels", "lrn", "linear", "linear-mismatch", "sigmoid", "relu6", "dropout",
        "flatten", "flatten-method", "flatten-reversed", "flatten-0d", "pad-channels", "pad-last", "pad-too-many",
        "int-counter-add", "uint8-times-int", "bool-plus-int", "int-plus-float-in-place"])
def test_other_answered_ops_match_the_kernel(fn: Callable[[], torch.Tensor]) -> None:
    _same_as_kernel(fn)


# One architecture per distinct block structure (every op the built-ins use, in train and eval
# mode); the exhaustive grid above covers the hyper-parameters of each op.
# chosen to cover each family's block kinds (both ResNet blocks, BN and no BN, both GoogLeNet
# layouts, the narrowest MobileNet), plus the first architecture of any family not among them,
# so a new family is covered the day it is registered
CHOSEN = ["cifar_plain20", "cifar_resnet20", "googlenet", "googlenet_paper", "inception_v3", "mobilenet_v1_025",
          "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50", "resnext50_32x4d",
          "vgg11", "vgg11_bn"]


def _representatives() -> list[str]:
    chosen = list(CHOSEN)  # a name no longer registered fails collection, loudly
    covered = {cnn_models.get_spec(n).family for n in chosen}
    first_of_family: dict[str, str] = {}
    for name in cnn_models.list_models():  # sorted
        first_of_family.setdefault(cnn_models.get_spec(name).family, name)
    return chosen + sorted(n for fam, n in first_of_family.items() if fam not in covered)


REPRESENTATIVES = _representatives()


def _table(factory: Callable[[], nn.Module], size: tuple[int, int, int], train: bool) -> list[Any]:
    return [(r.name, r.kind, r.out_shape, r.params) for r in layer_table(factory, size, train=train)]


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_layer_tables_are_the_same_without_the_shortcut(name: str) -> None:
    spec = cnn_models.get_spec(name)
    for train in (False, True):
        fast = _table(spec.build, spec.input_size, train)
        with kernels_only():
            assert fast == _table(spec.build, spec.input_size, train), f"{name}, train={train}"


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_flop_counts_are_the_same_without_the_shortcut(name: str) -> None:
    """FlopCounterMode handed the answered convolutions and linears counts what it counts when
    it dispatches them itself: per op, per module and per layer type."""
    spec = cnn_models.get_spec(name)
    fast = count_flops(spec.build, spec.input_size)
    with kernels_only():
        slow = count_flops(spec.build, spec.input_size)
    assert fast == slow
    assert fast.flops > 0


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "mobilenet_v3_small", "resnext50_32x4d", "squeezenet1_1",
                                  "densenet121"])
def test_torchvision_layer_tables_are_the_same_without_the_shortcut(name: str) -> None:
    def factory() -> nn.Module:
        return torchvision.models.get_model(
            name, weights=None, **({"init_weights": False} if name in ("googlenet", "inception_v3") else {}))

    size = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
    fast = _table(factory, size, False)
    with kernels_only():
        assert fast == _table(factory, size, False)


@pytest.mark.parametrize("path", ["private guard", "public twin"])
def test_answered_tensors_are_hidden_from_dispatch_modes_where_torch_allows(path: str) -> None:
    """An answered op's empty result is made with Python dispatch excluded
    (``torch_private.hidden_empty``): a mode watching the pass sees no ``aten.empty``, and the
    tensor is a plain meta tensor of the right shape and dtype; the mode works afterwards. The
    public twin makes the same tensor in the mode's sight."""
    from torch.utils._python_dispatch import TorchDispatchMode

    if path == "private guard" and torch_private._PYTHON_KEY is None:
        pytest.skip("this torch has no dispatch-key guard: the public twin is all it runs")
    seen: list[str] = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    like = torch.empty(1, dtype=torch.float64, device="meta")
    with Spy(), (public_only() if path == "public twin" else contextlib.nullcontext()):
        out = ins._empty((2, 5, 3), like)
        assert seen == ([] if path == "private guard" else ["aten.empty.memory_format"])
        torch.empty(1, device="meta")
    assert (tuple(out.shape), out.dtype, out.device.type) == ((2, 5, 3), torch.float64, "meta")
    assert seen[-1] == "aten.empty.memory_format"
