"""Closed-form oracles: per layer type (``layers``) and per family (one module each).

``plan_for(spec, input_size)`` replays a registered architecture's config through its
family's formula and returns a ``Plan`` (per-layer rows, totals, receptive field). Nothing
here instantiates a module.
"""

from __future__ import annotations

from .layers import Layer, Plan, Tracer

__all__ = ["Layer", "Plan", "Tracer"]


def plan_for(family: str, config: object, input_size: tuple[int, int, int]) -> Plan:
    """The closed-form plan of one architecture: ``conformance.formulas.<family>.plan``.

    Each family module exposes ``plan(config, input_size) -> Plan`` and reads only the
    config (a spec's ``config`` mapping, with ``num_classes`` in it).
    """
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.{family}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{family}":
            raise
        raise LookupError(f"no closed-form formula for family {family!r} (conformance/formulas/{family}.py)") from None
    return module.plan(config, input_size)


__all__ += ["plan_for"]
