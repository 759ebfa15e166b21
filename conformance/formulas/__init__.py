"""Closed-form oracles: per layer type (``layers``) and per family (one module each).

``plan_for(family, config, input_size)`` replays a registered architecture's config through
its family's formula and returns a ``Plan`` (per-layer rows, totals, receptive field).
Nothing here instantiates a module.

A spec's ``family`` names its formula module: a bare name is a built-in family,
``conformance/formulas/<family>.py``; a dotted name is the absolute module path of a formula
that a third-party package ships (``family="my_pkg.formulas.lenet"``), so an architecture
registered through the ``cnn_conformance.architectures`` entry point is checked against its
own closed form by the same gate.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .layers import Layer, Plan, Tracer

__all__ = ["Layer", "Plan", "Tracer", "family_module", "formula_module", "params_for", "plan_for", "spec_plan"]


def formula_module(family: str) -> str:
    """The module that holds ``family``'s closed form (built-in, or a dotted third-party path)."""
    return family if "." in family else f"{__name__}.{family}"


def family_module(family: str) -> ModuleType:
    """The imported formula module of ``family``; ``LookupError`` when there is none."""
    import importlib

    name = formula_module(family)
    where = f"conformance/formulas/{family}.py" if name != family else f"module {family}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise  # the formula module exists but one of its own imports is missing
        raise LookupError(f"no closed-form formula for family {family!r} ({where} not found)") from None
    if not callable(getattr(module, "plan", None)):
        raise LookupError(f"no closed-form formula for family {family!r}: {where} has no plan(config, input_size)")
    return module


def plan_for(family: str, config: object, input_size: tuple[int, int, int]) -> Plan:
    """The closed-form plan of one architecture: ``plan(config, input_size)`` of its family.

    Each family module exposes ``plan(config, input_size) -> Plan`` and reads only the
    config (a spec's ``config`` mapping, with ``num_classes`` in it). ``LookupError`` when
    the module does not exist or has no ``plan``.
    """
    plan: Plan = family_module(family).plan(config, input_size)
    return plan


def spec_plan(spec: Any, input_size: tuple[int, int, int], **changes: Any) -> Plan:
    """The closed-form plan of a registered spec at ``input_size``: its family's formula fed
    the spec's config with the spec's ``num_classes`` and then ``changes`` (config keys, for a
    variant of the spec), ``plan_for``'s errors unchanged.

    The spatial size may differ from the spec's, the channel count may not: the formulas would
    follow any ``C``, but the spec's builder makes a ``spec.input_size[0]``-channel stem, so a
    plan for another ``C`` would describe a model that does not exist (``ValueError``)."""
    if tuple(input_size)[:1] != tuple(spec.input_size)[:1]:
        raise ValueError(f"{spec.name} takes {spec.input_size[0]}-channel input (its spec's input_size "
                         f"{tuple(spec.input_size)}); got input size {tuple(input_size)}")
    return plan_for(spec.family, {**spec.config, "num_classes": spec.num_classes, **changes}, input_size)


def params_for(family: str, config: object, input_size: tuple[int, int, int]) -> int:
    """The parameter count by closed form, without the per-layer plan where the family can.

    A family module may expose ``params(config, input_size) -> int``: the total as one sum
    over the config's stages (no layer rows, shapes or names), tested equal to its plan's
    total. Otherwise the plan's total is returned.
    """
    module = family_module(family)
    direct = getattr(module, "params", None)
    if callable(direct):
        return int(direct(config, input_size))
    return int(module.plan(config, input_size).params)
