"""Every architecture with a torchvision counterpart is weight-compatible with it.

Oracles: torchvision's weights meta ``num_params`` (read live), and torchvision's model built
with ``weights=None``. Numerics: the reference's parameters *and buffers* are randomized,
copied into ours, and both run in float64 (eval and train mode, input and parameter
gradients, BN running statistics after a step).
"""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

import cnn_models
from conformance.check import torchvision_meta
from conformance.compare import numerics_checks, state_dict_diff
from conformance.inspect import build_on_meta

TV_NAMES = [n for n in cnn_models.list_models() if cnn_models.get_spec(n).torchvision]


def _tv(spec: cnn_models.ArchSpec, **extra: object) -> torch.nn.Module:
    kwargs = {**spec.torchvision_kwargs, **extra}
    return tvm.get_model(spec.torchvision, weights=None, num_classes=spec.num_classes, **kwargs)


@pytest.mark.parametrize("name", TV_NAMES)
def test_param_count_equals_torchvision_meta(name: str) -> None:
    spec = cnn_models.get_spec(name)
    meta = torchvision_meta(spec.torchvision)
    ours = sum(p.numel() for p in build_on_meta(spec.build).parameters())
    assert ours == meta["num_params"], f"{name}: expected {meta['num_params']:,} (torchvision meta), got {ours:,}"
    # the number written in our spec must agree with torchvision too
    assert spec.expected["params"].holds_for(meta["num_params"]), f"{name}: spec says {spec.expected['params'].describe()}"


@pytest.mark.parametrize("name", TV_NAMES)
def test_state_dict_keys_and_shapes_match_both_ways(name: str) -> None:
    spec = cnn_models.get_spec(name)
    ours, theirs = build_on_meta(spec.build), build_on_meta(lambda: _tv(spec))
    assert state_dict_diff(ours, theirs) == []
    assert list(ours.state_dict()) == list(theirs.state_dict()), "same keys, same order"


@pytest.mark.parametrize("name", TV_NAMES)
def test_randomized_weights_give_identical_numerics(name: str) -> None:
    spec = cnn_models.get_spec(name)
    extra = dict(spec.numerics_kwargs)  # applied to both sides alike
    failures = numerics_checks(lambda: spec.build(**extra), lambda: _tv(spec, **extra), spec.small_input_size)
    bad = {k: v for k, v in failures.items() if v}
    assert not bad, "\n".join(f"{k}: {m}" for k, v in bad.items() for m in v)


@pytest.mark.parametrize("name", TV_NAMES[:1])
def test_torchvision_state_dict_loads_into_ours_and_back(name: str) -> None:
    spec = cnn_models.get_spec(name)
    ours, theirs = spec.build(), _tv(spec)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
