"""The floor under every meta-device path: building the model on ``meta`` and nothing else.

``summarize(factory)`` and ``count_flops(factory)`` both start with ``build_on_meta(factory)``
and then run one pass, so the build alone bounds what either can reach: even if the pass cost
nothing, they could be at most ``peer time / build time`` times faster than a peer. Measured
as its own tool, in its own worker, on the same models, so a missed target can say whether
a faster pass could still meet it.
"""

from __future__ import annotations

import time
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
