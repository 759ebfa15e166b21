"""The registry and the spec contract: sorted names, helpful errors, refusals at import time."""

from __future__ import annotations

import pytest
from _shared import tiny_spec

import cnn_models
from cnn_models import ArchSpec, Expected, InitScheme, SpecError
from cnn_models._registry import register_model, unregister_model


def test_list_models_is_sorted_and_nonempty() -> None:
    names = cnn_models.list_models()
    assert names == sorted(names)
    assert len(names) == len(set(names))
    # the families every installation must have
    for required in ("vgg16", "vgg16_bn", "googlenet", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
                     "mobilenet_v1", "mobilenet_v2", "cifar_resnet20", "cifar_plain20"):
        assert required in names, f"{required!r} is not registered; registered: {names}"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(KeyError, match="resnet50") as info:
        cnn_models.get_model("resnet5")
    assert isinstance(info.value, ValueError)  # both a KeyError and a ValueError
    assert "close matches" in str(info.value)


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(KeyError, match="unknown architecture 'zzzz'"):
        cnn_models.get_spec("zzzz")


def test_get_model_passes_kwargs() -> None:
    model = cnn_models.get_model("resnet18", num_classes=7)
    assert model.fc.out_features == 7


def test_duplicate_name_is_refused() -> None:
    spec = tiny_spec(name="resnet50")
    with pytest.raises(SpecError, match="duplicate architecture name 'resnet50'"):
        register_model(spec)


@pytest.mark.parametrize("field", ArchSpec.REQUIRED)
def test_incomplete_spec_names_the_missing_field(field: str) -> None:
    spec = tiny_spec(**{field: cnn_models.MISSING})
    with pytest.raises(SpecError, match=f"missing field '{field}'"):
        register_model(spec)
    assert "tiny_test_net" not in cnn_models.list_models()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": (3, 224)}, "field 'input_size'"),
        ({"expected": {}}, "needs at least a 'params' entry"),
        ({"expected": {"params": Expected(1, "")}}, "has no source"),
        ({"init": InitScheme(conv="he", linear="normal_0.01", source="x")}, "init.conv='he'"),
        ({"init": InitScheme(conv="kaiming_normal_fan_out", linear="normal_0.01")}, "init.source is empty"),
        ({"name": "not a name"}, "field 'name'"),
        ({"builder": 3}, "field 'builder'"),
        ({"num_classes": 0}, "field 'num_classes'"),
    ],
)
def test_malformed_spec_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        register_model(tiny_spec(**changes))


def test_register_and_unregister_roundtrip() -> None:
    spec = tiny_spec(name="tiny_roundtrip_net")
    register_model(spec)
    try:
        assert "tiny_roundtrip_net" in cnn_models.list_models()
        assert cnn_models.get_model("tiny_roundtrip_net", num_classes=5)[1].out_features == 5
    finally:
        unregister_model("tiny_roundtrip_net")
    assert "tiny_roundtrip_net" not in cnn_models.list_models()


def test_every_spec_is_complete_and_documented(arch_name: str) -> None:
    # arch_name: every registered architecture (conformance/pytest_plugin.py)
    name = arch_name
    spec = cnn_models.get_spec(name)
    assert spec.problems() == []
    assert spec.builder.__doc__, f"{name}: builder {spec.builder.__qualname__} has no docstring"
    module = __import__(spec.builder.__module__, fromlist=["_"])
    assert module.__doc__ and len(module.__doc__) > 80, f"{spec.builder.__module__} does not open with its sources"
    assert spec.name == name
    if spec.torchvision is not None:
        import torchvision.models as tvm

        assert spec.torchvision in tvm.list_models(), f"{name}: torchvision has no builder {spec.torchvision!r}"
