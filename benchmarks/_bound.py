"""The floor under every meta-device path: building the model on ``meta`` and nothing else.

``summarize(factory)`` and ``count_flops(factory)`` both start with ``build_on_meta(factory)``
and then run one pass, so the build alone bounds what either can reach: even if the pass cost
nothing, they could be at most ``peer time / build time`` times faster than a peer. Measured
as its own tool, in its own worker, on the same models, so a missed target can say whether
a faster pass could still meet it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

BOUND = "bound: meta build alone"


def prepare() -> None:
    import conformance.layer_table  # noqa: F401


def meta_build_alone(model: str) -> dict[str, Any]:
    import cnn_models
    from conformance.layer_table import build_on_meta

    spec = cnn_models.get_spec(model)
    t0 = time.perf_counter()
    module = build_on_meta(spec.build)
    t1 = time.perf_counter()
    return {"build_s": t1 - t0, "op_s": t1 - t0, "total_s": t1 - t0,
            "modules": sum(1 for _ in module.modules())}  # the size of what was built, in the raw JSON


def timed_build_call(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` (a meta path given a factory: ``summarize(spec.build, ...)``), and the time its
    own ``build_on_meta`` took inside it: the exact work of the user's call, its build timed by
    wrapping ``conformance.layer_table.build_on_meta`` for the duration of the call."""
    import conformance.layer_table as layer_table

    real = layer_table.build_on_meta
    spent: list[float] = []

    def build_on_meta(factory: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return real(factory)
        finally:
            spent.append(time.perf_counter() - t0)

    layer_table.build_on_meta = build_on_meta  # type: ignore[assignment]
    try:
        result = call()
    finally:
        layer_table.build_on_meta = real
    if len(spent) != 1:
        raise RuntimeError(f"expected the call to build its model on meta once, it built {len(spent)} times")
    return result, spent[0]
