"""The full conformance gate for every registered architecture, one test each.

The architectures come from the pytest plugin's ``arch_name`` (conformance/pytest_plugin.py):
every name in ``cnn_models.list_models()``, built-in or registered by an installed package
through the ``cnn_conformance.architectures`` entry point, so a newly registered
architecture is gated here without touching any test file. Select one with
``pytest tests/test_conformance_gate.py -k NAME`` or ``--arch GLOB``.

Oracles: those of ``conformance.check.check_builtin`` (the spec's expected numbers with their
sources, torchvision's weights meta read live, the closed form of the spec's config,
torchvision's model with randomized weights, the declared init scheme). One gate call per
architecture (about 5 minutes of CPU for all 38 built-ins on one thread).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import cnn_models
from conformance.gate_report import Report
from conformance.layer_table import build_on_meta

# This is also where two of the reference-implementation guarantees are tested, once per
# architecture, without building the models a second time:
# * a fresh model follows the init scheme its spec declares (check "init", statistical bounds
#   of conformance/init_check.py, exact constants);
# * with torchvision's weights randomized (parameters and BN buffers) and loaded into ours,
#   eval and train outputs, input and parameter gradients and BN running statistics match
#   (checks "eval_output" ... "bn_running_stats", conformance/compare.py, float64).
NUMERICS = ("eval_output", "train_output", "input_grad", "param_grads", "bn_running_stats", "finite_grads")


def _has_batch_norm(spec: cnn_models.ArchSpec) -> bool:
    """From torchvision's model (the reference), built on meta: not from the model under test."""
    import torchvision

    ref = build_on_meta(lambda: torchvision.models.get_model(spec.torchvision, num_classes=spec.num_classes,
                                                             **spec.torchvision_kwargs))
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in ref.modules())


def test_architecture_passes_the_gate(arch_name: str, conformance_gate: Callable[..., Report]) -> None:
    report = conformance_gate(arch_name)
    assert report.checks, f"{arch_name}: the gate ran no check"
    ran = {c.name: c.status for c in report.checks}
    spec = cnn_models.get_spec(arch_name)
    expected = dict.fromkeys(("params", "output_shape", "closed_form_layers", "macs", "init", "finite_grads"), "pass")
    if spec.torchvision:
        expected |= dict.fromkeys(("state_dict", "alignment", *NUMERICS), "pass")
        if not _has_batch_norm(spec):  # said as n/a, with the reason, when there is nothing to compare
            expected["bn_running_stats"] = "n/a"
    else:
        expected["numerics"] = "n/a"  # no reference model to compare outputs with
    assert {name: ran.get(name) for name in sorted(expected)} == dict(sorted(expected.items()))
    if spec.zero_init_residual_bns:
        # zero_init_residual=True (Goyal et al. 2017, torchvision's flag): the gate builds the
        # model with it, and its init check found those BN gammas exactly 0, all else as declared
        init = next(c for c in report.checks if c.name == "init")
        assert "zero_init_residual:" in init.evidence, f"{arch_name}: the zero-init check did not run: {init.evidence}"
        if "layers" in spec.config:  # a ResNet-style config: one zeroed BN per residual block
            blocks = sum(spec.config["layers"])
            assert f"zero_init_residual: {blocks} BN gammas exactly 0" in init.evidence, init.evidence
