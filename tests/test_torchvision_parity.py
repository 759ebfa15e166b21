"""Every architecture with a torchvision counterpart is weight-compatible with it.

(The numerical half, randomized weights copied across and compared in float64, runs once per
architecture inside the full gate: tests/test_conformance_gate.py.)

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
from conformance.compare import state_dict_diff
from conformance.layer_table import build_on_meta

# The tests below take tv_arch_name from the pytest plugin (conformance/pytest_plugin.py):
# every registered architecture whose spec names a torchvision builder, sorted, id = name.
# The full-size load round trip runs for the first of them only.
TV_NAMES = [n for n in cnn_models.list_models() if cnn_models.get_spec(n).torchvision]


def _tv(spec: cnn_models.ArchSpec, **extra: object) -> torch.nn.Module:
    kwargs = {**spec.torchvision_kwargs, **extra}
    return tvm.get_model(spec.torchvision, weights=None, num_classes=spec.num_classes, **kwargs)


def test_param_count_equals_torchvision_meta(tv_arch_name: str) -> None:
    name = tv_arch_name
    spec = cnn_models.get_spec(name)
    meta = torchvision_meta(spec.torchvision)
    ours = sum(p.numel() for p in build_on_meta(spec.build).parameters())
    assert ours == meta["num_params"], f"{name}: expected {meta['num_params']:,} (torchvision meta), got {ours:,}"
    # the number written in our spec must agree with torchvision too
    assert spec.expected["params"].holds_for(meta["num_params"]), f"{name}: spec says {spec.expected['params'].describe()}"


def test_state_dict_keys_and_shapes_match_both_ways(tv_arch_name: str) -> None:
    name = tv_arch_name
    spec = cnn_models.get_spec(name)
    ours, theirs = build_on_meta(spec.build), build_on_meta(lambda: _tv(spec))
    assert state_dict_diff(ours, theirs) == []
    assert list(ours.state_dict()) == list(theirs.state_dict()), "same keys, same order"


@pytest.mark.parametrize("name", TV_NAMES[:1])
def test_torchvision_state_dict_loads_into_ours_and_back(name: str) -> None:
    spec = cnn_models.get_spec(name)
    ours, theirs = spec.build(), _tv(spec)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
