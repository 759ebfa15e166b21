"""A family's direct parameter total (``params(config, input_size)``) equals its layer plan's.

Two derivations from the same config: the per-layer plan (itself held to the built modules,
torchvision's weights meta and the papers in the family test files) and the stage-by-stage
sum. They must agree on every config hypothesis draws, not only on the registered ones, and on
every registered architecture they must also equal the parameter count of the module built on
meta.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import cnn_models
from conformance.formulas import family_module, params_for, plan_for
from conformance.layer_table import build_on_meta

DIRECT = sorted({cnn_models.get_spec(n).family for n in cnn_models.list_models()
                 if callable(getattr(family_module(cnn_models.get_spec(n).family), "params", None))})


def _both(family: str, config: dict[str, Any], size: tuple[int, int, int]) -> tuple[int, int]:
    return params_for(family, config, size), plan_for(family, config, size).params


def test_registered_architectures_agree_with_the_module(arch_spec: cnn_models.ArchSpec) -> None:
    spec = arch_spec
    config = {**spec.config, "num_classes": spec.num_classes}
    built = sum(p.numel() for p in build_on_meta(spec.build).parameters())
    assert _both(spec.family, config, spec.input_size) == (built, built)


@given(n=st.integers(1, 30), widths=st.lists(st.integers(1, 96), min_size=1, max_size=4),
       shortcut=st.sampled_from("AB"), plain=st.booleans(), classes=st.integers(1, 1000), c_in=st.integers(1, 4))
def test_cifar_resnet(n: int, widths: list[int], shortcut: str, plain: bool, classes: int, c_in: int) -> None:
    config = {"n": n, "widths": tuple(widths), "shortcut": shortcut, "plain": plain, "num_classes": classes}
    direct, plan = _both("cifar_resnet", config, (c_in, 32, 32))
    assert direct == plan


@given(alpha=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.75, 1.0, 1.4]), classes=st.integers(1, 1000),
       c_in=st.integers(1, 4))
def test_mobilenet_v1(alpha: float, classes: int, c_in: int) -> None:
    config = {**cnn_models.get_spec("mobilenet_v1").config, "alpha": alpha, "num_classes": classes}
    direct, plan = _both("mobilenet_v1", config, (c_in, 224, 224))
    assert direct == plan


@given(mult=st.sampled_from([0.35, 0.5, 0.75, 1.0, 1.3, 1.4]), divisor=st.sampled_from([1, 4, 8]),
       classes=st.integers(1, 1000))
def test_mobilenet_v2(mult: float, divisor: int, classes: int) -> None:
    config = {**cnn_models.get_spec("mobilenet_v2").config, "width_mult": mult, "round_nearest": divisor,
              "num_classes": classes}
    direct, plan = _both("mobilenet_v2", config, (3, 224, 224))
    assert direct == plan


@given(which=st.sampled_from(["mobilenet_v3_large", "mobilenet_v3_small"]),
       mult=st.sampled_from([0.5, 0.75, 1.0, 1.25]), classes=st.integers(1, 1000))
def test_mobilenet_v3(which: str, mult: float, classes: int) -> None:
    config = {**cnn_models.get_spec(which).config, "width_mult": mult, "num_classes": classes}
    direct, plan = _both("mobilenet_v3", config, (3, 224, 224))
    assert direct == plan


def test_a_family_without_a_direct_sum_falls_back_to_its_plan() -> None:
    spec = cnn_models.get_spec("resnet50")
    assert not hasattr(family_module(spec.family), "params")
    config = {**spec.config, "num_classes": spec.num_classes}
    assert params_for(spec.family, config, spec.input_size) == 25_557_032  # torchvision weights meta num_params
