"""Declared readings of open paper points (``ArchSpec.readings``) and the init's authority.

Oracles, each named where it is used:
* ``F.pad``'s documented semantics (the pad tuple's last pair pads dim -3, the channels:
  ``(before, after)``), worked out by hand on ``arange`` inputs for option A's two readings;
* He et al. 2016 §3.3 / §4.2: option A is parameter-free, so both readings have the same
  state_dict; Howard et al. 2017 Table 1: a 224 px input reaches the pool as a 7x7 map, a
  192 px one as 6x6 (192 / 32: five stride-2 layers), which a 7x7 pool cannot pool;
* the spec contract of ``cnn_models._spec``: ``readings[0]`` is the default build, every
  other reading is ``spec.build(**reading.kwargs)``; ``InitScheme.authority`` is one of
  ``INIT_AUTHORITIES``, and a torchvision-backed spec's init is torchvision's.
"""

from __future__ import annotations

import re
from types import MappingProxyType

import pytest
import torch
import torch.nn as nn
from _shared import tiny_spec

from cnn_models import InitScheme, get_spec, list_models
from cnn_models._spec import INIT_AUTHORITIES, Reading
from cnn_models.cifar_resnet import CifarBasicBlock, ShortcutA, cifar_plain20, cifar_resnet20
from cnn_models.mobilenet_v1 import mobilenet_v1
from conformance.layer_table import build_on_meta

WITH_READINGS = [name for name in list_models() if get_spec(name).readings]
CIFAR_RESNETS = [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110)]
CIFAR_PLAINS = [f"cifar_plain{d}" for d in (20, 32, 44, 56, 110)]
MOBILENET_V1 = ["mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050", "mobilenet_v1_025"]


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _reading_ids() -> list[tuple[str, str]]:
    return [(name, r.name) for name in WITH_READINGS for r in get_spec(name).readings]


def _reading(name: str, reading: str) -> Reading:
    return next(r for r in get_spec(name).readings if r.name == reading)


# --- which specs declare readings ---------------------------------------------------------


def test_the_expected_specs_declare_readings() -> None:
    # option A (He et al. 2016 §3.3) only exists where there is a shortcut; Table 1's 7x7 pool
    # ends every MobileNet v1 width
    assert set(CIFAR_RESNETS + MOBILENET_V1) <= set(WITH_READINGS)
    assert not set(CIFAR_PLAINS) & set(WITH_READINGS), "plain nets have no shortcut, so no option A reading"
    for name in WITH_READINGS:
        assert get_spec(name).torchvision is None, f"{name}: torchvision binds it, it should declare no readings"


def test_readings_name_their_sources() -> None:
    for name in WITH_READINGS:
        readings = get_spec(name).readings
        assert len(readings) >= 2
        assert len({r.name for r in readings}) == len(readings)
        for r in readings:
            assert r.source, f"{name}: reading {r.name!r} has no source"


def test_cifar_and_mobilenet_readings_select_the_builder_options() -> None:
    # the spec contract: readings[0] is the default build
    for name in CIFAR_RESNETS:
        kwargs = [dict(r.kwargs) for r in get_spec(name).readings]
        assert kwargs == [{"option_a_pad": "after"}, {"option_a_pad": "split"}], name
    for name in MOBILENET_V1:
        kwargs = [(r.point, dict(r.kwargs)) for r in get_spec(name).readings]
        assert kwargs == [("final pool", {"pool": "global"}), ("final pool", {"pool": "avg7"}),
                          ("activation", {"act": "relu"}), ("activation", {"act": "relu6"})], name


def test_mobilenet_v1_admits_every_pool_and_activation_pair() -> None:
    # two open points (the final pool, the activation), two readings each: four builds, the
    # default (first reading of each point) first
    combos = get_spec("mobilenet_v1").reading_combinations()
    assert [(name, kwargs) for name, kwargs, _ in combos] == [
        ("global_pool + relu", {"pool": "global", "act": "relu"}),
        ("global_pool + relu6", {"pool": "global", "act": "relu6"}),
        ("avg_pool_7x7 + relu", {"pool": "avg7", "act": "relu"}),
        ("avg_pool_7x7 + relu6", {"pool": "avg7", "act": "relu6"}),
    ]
    assert [name for name, _, _ in get_spec("cifar_resnet20").reading_combinations()] == ["zeros_after", "zeros_split"]
    assert get_spec("cifar_plain20").reading_combinations() == []


def test_mobilenet_v1_relu6_clips_where_relu_does_not() -> None:
    # min(max(x, 0), 6) against max(x, 0): the same weights give another function once a
    # pre-activation passes 6, which unit-scale weights on a 224 input reach
    torch.manual_seed(0)
    relu = mobilenet_v1().eval()
    relu6 = mobilenet_v1(act="relu6").eval()
    relu6.load_state_dict(relu.state_dict())
    assert sum(isinstance(m, nn.ReLU6) for m in relu6.modules()) == 27  # stem + 13 blocks x 2 (Table 1)
    assert not any(isinstance(m, nn.ReLU6) for m in relu.modules())
    with torch.no_grad():
        for p in relu.parameters():
            p.normal_()
        relu6.load_state_dict(relu.state_dict())
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        assert not torch.allclose(relu(x), relu6(x))


# --- every reading builds, with the default's state_dict ----------------------------------


@pytest.mark.parametrize(("name", "reading"), _reading_ids(), ids=[f"{n}-{r}" for n, r in _reading_ids()])
def test_every_reading_builds_with_the_default_state_dict(name: str, reading: str) -> None:
    spec = get_spec(name)
    default = build_on_meta(spec.build)
    other = build_on_meta(lambda: spec.build(**_reading(name, reading).kwargs))
    # He et al. 2016 §3.3: option A is parameter-free; neither final pool has state
    assert _shapes(other) == _shapes(default), f"{name}/{reading}: state_dict keys or shapes differ"
    assert list(other.state_dict()) == list(default.state_dict()), f"{name}/{reading}: key order differs"


@pytest.mark.parametrize("name", WITH_READINGS)
def test_first_reading_is_the_default_build(name: str) -> None:
    spec = get_spec(name)
    torch.manual_seed(0)
    default = spec.build().eval()
    first = spec.build(**spec.readings[0].kwargs).eval()
    first.load_state_dict(default.state_dict())
    x = torch.randn(2, *spec.small_input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(first(x), default(x), rtol=0, atol=0)


# --- the readings compute different (or, where the paper says so, equal) functions ---------


def test_cifar_resnet20_split_and_after_differ_with_the_same_weights() -> None:
    torch.manual_seed(0)
    after = cifar_resnet20().eval()
    split = cifar_resnet20(option_a_pad="split").eval()
    split.load_state_dict(after.state_dict())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out_after, out_split = after(x), split(x)
    assert out_after.shape == out_split.shape == (2, 10)
    assert not torch.allclose(out_after, out_split), "the zero channels' place must change the function"


def test_plain_builders_take_no_option_a_pad() -> None:
    with pytest.raises(TypeError, match="option_a_pad"):
        cifar_plain20(option_a_pad="split")  # type: ignore[call-arg]


def test_mobilenet_v1_avg7_equals_global_pool_at_224() -> None:
    torch.manual_seed(0)
    glob = mobilenet_v1().eval()
    avg7 = mobilenet_v1(pool="avg7").eval()
    avg7.load_state_dict(glob.state_dict())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = glob.features(x)
        assert features.shape == (2, 1024, 7, 7)  # Table 1: 7x7x1024 into the pool
        # both average the same 49 values; only the summation order may differ
        torch.testing.assert_close(avg7.avgpool(features), glob.avgpool(features), rtol=1e-6, atol=0)
        torch.testing.assert_close(avg7(x), glob(x))


def test_mobilenet_v1_avg7_cannot_pool_a_192_input() -> None:
    torch.manual_seed(0)
    glob = mobilenet_v1().eval()
    avg7 = mobilenet_v1(pool="avg7").eval()
    x = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert glob(x).shape == (1, 1000)  # Table 7 runs 1.0 MobileNet at 192 px
        assert glob.features(x).shape == (1, 1024, 6, 6)  # 192 / 32
        with pytest.raises(RuntimeError, match="too small"):
            avg7(x)


# --- option A's split reading on the block, by hand -----------------------------------------


def _arange_input() -> torch.Tensor:
    # x[0, c, i, j] = 16 c + 4 i + j; keeping every second pixel leaves, per channel c,
    # [[16c, 16c + 2], [16c + 8, 16c + 10]]
    return torch.arange(64, dtype=torch.float32).reshape(1, 4, 4, 4)


def _subsampled(c: int) -> list[list[float]]:
    return [[16.0 * c, 16.0 * c + 2], [16.0 * c + 8, 16.0 * c + 10]]


ZERO = [[0.0, 0.0], [0.0, 0.0]]


def test_split_shortcut_pads_zeros_on_both_sides() -> None:
    # 4 -> 8 channels: F.pad(..., (0, 0, 0, 0, 2, 2)) puts 2 zero channels before and 2 after,
    # planes // 4 = 8 // 4 = 2 on each side
    expected = torch.tensor([[ZERO, ZERO, *(_subsampled(c) for c in range(4)), ZERO, ZERO]])
    out = ShortcutA(4, 8, stride=2, pad="split")(_arange_input())
    assert out.shape == (1, 8, 2, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_after_shortcut_appends_the_zeros() -> None:
    # F.pad(..., (0, 0, 0, 0, 0, 4)): the 4 input channels, then 4 zero channels
    expected = torch.tensor([[*(_subsampled(c) for c in range(4)), ZERO, ZERO, ZERO, ZERO]])
    out = ShortcutA(4, 8, stride=2)(_arange_input())
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_split_shortcut_puts_an_odd_extra_zero_after() -> None:
    # 4 -> 7: 3 zero channels, 3 // 2 = 1 before the input's, 2 after (stride 1: no subsampling)
    x = _arange_input()
    out = ShortcutA(4, 7, stride=1, pad="split")(x)
    zero = torch.zeros(1, 1, 4, 4)
    torch.testing.assert_close(out, torch.cat([zero, x, zero, zero], 1), rtol=0, atol=0)


def test_block_with_split_reading_adds_the_split_shortcut() -> None:
    torch.manual_seed(0)
    block = CifarBasicBlock(4, 8, stride=2, option_a_pad="split").eval()
    x = _arange_input()
    padded = torch.tensor([[ZERO, ZERO, *(_subsampled(c) for c in range(4)), ZERO, ZERO]])
    with torch.no_grad():
        assert block.downsample is not None
        torch.testing.assert_close(block.downsample(x), padded, rtol=0, atol=0)
        torch.testing.assert_close(block(x), torch.relu(block.branch(x) + padded), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "argname"),
    [
        (lambda: cifar_resnet20(option_a_pad="middle"), "option_a_pad"),  # type: ignore[arg-type]
        (lambda: CifarBasicBlock(4, 8, 2, option_a_pad="before"), "option_a_pad"),  # type: ignore[arg-type]
        (lambda: ShortcutA(4, 8, 2, pad="both"), "pad"),  # type: ignore[arg-type]
        (lambda: mobilenet_v1(pool="max"), "pool"),
        (lambda: mobilenet_v1(act="gelu"), "act"),
    ],
    ids=["cifar-builder", "cifar-block", "shortcut-a", "mobilenet-pool", "mobilenet-act"],
)
def test_bad_reading_options_name_the_argument(make, argname: str) -> None:
    with pytest.raises(ValueError, match=f"^{argname} must be one of"):
        make()


# --- the spec contract for readings ---------------------------------------------------------


def _r(name: str, kwargs: object, source: str = "test", point: str = "") -> Reading:
    return Reading(name=name, kwargs=kwargs, source=source, point=point)  # type: ignore[arg-type]


def test_well_formed_readings_pass() -> None:
    readings = (_r("a", {}), _r("b", MappingProxyType({"flavour": "b"})))
    assert tiny_spec(readings=readings).problems() == []
    assert tiny_spec(readings=(_r("a", {"flavour": "a"}), _r("b", {"flavour": "b"}))).problems() == []
    # builder_kwargs are part of the default build
    assert tiny_spec(builder_kwargs={"flavour": "b"}, readings=(_r("b", {"flavour": "b"}), _r("a", {"flavour": "a"}))
                 ).problems() == []
    # two open points, each with its default first
    two = (_r("a", {}, point="flavour"), _r("b", {"flavour": "b"}, point="flavour"),
           _r("c3", {"num_classes": 3}, point="head"), _r("c5", {"num_classes": 5}, point="head"))
    assert tiny_spec(readings=two).problems() == []
    assert [(n, k) for n, k, _ in tiny_spec(readings=two).reading_combinations()] == [
        ("a + c3", {"num_classes": 3}), ("a + c5", {"num_classes": 5}),
        ("b + c3", {"flavour": "b", "num_classes": 3}), ("b + c5", {"flavour": "b", "num_classes": 5})]


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ([_r("a", {}), _r("b", {"flavour": "b"})], "not a tuple"),
        ((_r("a", {}),), "a single reading"),
        ((_r("a", {}), _r("a", {"flavour": "b"})), "duplicate reading name 'a'"),
        ((_r("a", {}), _r("b", {"flavour": "b"}, source="")), "'b'.*has no source"),
        ((_r("a", {}), _r("b", [("flavour", "b")])), "not a mapping of str keys"),
        ((_r("a", {}), _r("b", {})), "is the default build again"),
        ((_r("a", {}), _r("b", {"colour": "b"})), "takes no keyword 'colour'"),
        ((_r("b", {"flavour": "b"}), _r("a", {"flavour": "a"})), "differs from the default 'a'"),
        ((_r("", {}), _r("b", {"flavour": "b"})), "name '' is not a non-empty str"),
        (("a", _r("b", {"flavour": "b"})), "must be a Reading"),
        ((_r("a", {}), _r("b", {"flavour": "b"}), _r("c", {"num_classes": 3}, point="head")),
         "point 'head' has one reading"),
        ((_r("a", {}), _r("b", {"flavour": "b"}), _r("c5", {"num_classes": 5}, point="head"),
          _r("c3", {"num_classes": 3}, point="head")), "'c5'.*differs from the default 3"),
    ],
    ids=["list", "single", "duplicate", "no-source", "kwargs-list", "no-kwargs", "unknown-kwarg",
         "first-not-default", "empty-name", "not-a-reading", "point-single", "point-first-not-default"],
)  # fmt: skip
def test_malformed_readings_are_reported(readings: object, message: str) -> None:
    problems = "; ".join(tiny_spec(readings=readings).problems())
    assert problems, "expected a problem"
    assert re.search(message, problems), problems


# --- authority of the declared initialisation ------------------------------------------------


def test_init_authority_values() -> None:
    assert INIT_AUTHORITIES == ("paper", "torchvision", "convention")
    ok = InitScheme(conv="torch_default", linear="torch_default", source="test", authority="paper",
                    linear_authority="convention")  # fmt: skip
    assert ok.problems() == []
    assert ok.effective_linear_authority == "convention"
    assert InitScheme(conv="torch_default", linear="torch_default", source="t", authority="paper"
                      ).effective_linear_authority == "paper"  # fmt: skip
    bad = InitScheme(conv="torch_default", linear="torch_default", source="test", authority="folklore")
    assert any("init.authority='folklore'" in p for p in bad.problems())
    bad_linear = InitScheme(conv="torch_default", linear="torch_default", source="test", authority="paper",
                            linear_authority="blog")  # fmt: skip
    assert any("init.linear_authority='blog'" in p for p in bad_linear.problems())


def test_every_registered_spec_declares_its_init_authority(arch_name: str) -> None:
    name = arch_name
    init = get_spec(name).init
    assert init.authority in INIT_AUTHORITIES, f"{name}: init.authority={init.authority!r}"
    assert init.linear_authority is None or init.linear_authority in INIT_AUTHORITIES, name
    if get_spec(name).torchvision is not None:
        # a torchvision-backed spec is bound by torchvision's model, whose module the source names
        assert init.authority == "torchvision", name
        assert "torchvision/models/" in init.source, f"{name}: source {init.source!r} names no torchvision module"
    else:
        assert init.authority in ("paper", "convention"), name


def test_paper_only_init_authorities() -> None:
    # He et al. 2016 §3.4 / §4.2 adopt He et al. 2015's conv init and say nothing of the fc
    for name in CIFAR_RESNETS + CIFAR_PLAINS:
        init = get_spec(name).init
        assert (init.authority, init.effective_linear_authority) == ("paper", "convention"), name
        assert "He et al. 2016 §3.4" in init.source, name
    # Howard et al. 2017 state no initialisation; neither do Szegedy et al. 2015
    for name in [*MOBILENET_V1, "googlenet_paper"]:
        init = get_spec(name).init
        assert (init.authority, init.effective_linear_authority) == ("convention", "convention"), name
