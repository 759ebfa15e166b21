"""This package's CI: the cnn-conformance gate for every selected architecture.

The ``arch_name`` argument comes from cnn-conformance's pytest plugin: one test per registered
architecture, ours included through the entry point. Run ``pytest --arch lenet5`` to gate only
this package's architecture.
"""

from __future__ import annotations

from collections.abc import Callable


def test_architecture_passes_the_gate(arch_name: str, conformance_gate: Callable[..., object]) -> None:
    conformance_gate(arch_name)
