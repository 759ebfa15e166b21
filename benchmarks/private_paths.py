"""What each fast path on torch's private names buys over its public twin.

    python -m benchmarks.private_paths [--models resnet50,mobilenet_v2,...] [--reps N]

``conformance/torch_private.py`` keeps a private path only where it buys at least 1.5x on
some row here. Rows, per model, each ours (private paths on) vs the public twin
(``torch_private.public_only()``):

* ``flops warm``: ``count_flops`` on a model already built on meta, median of ``--reps``
  (each warm row alternates ours and the twin repetition by repetition);
* ``flops cold``: the first ``count_flops`` of a fresh process (torch imported, nothing else),
  where the twin's first dispatch under FlopCounterMode imports torch._dynamo;
* ``table warm``: ``layer_table``, which runs under no dispatch mode; the twin cannot ask
  whether one is watching, so it runs every convolution and linear through torch's meta
  kernels there too;
* ``formulas``: ``count_flops`` warm again, every other private path on, with each counted
  op's FLOP formula fed its shapes directly (``_shape_formula``) vs through torch's
  ``shape_wrapper`` and its pytree walk.

One torch thread. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "vgg16", "googlenet", "mobilenet_v3_large")
TARGET = 1.5
_OUT_OF_DISPATCH = "answered ops out of dispatch (counted_by_flop_counter, hidden_empty, innermost_counter)"
PATHS = {  # row -> the private path it measures
    "flops warm": _OUT_OF_DISPATCH, "flops cold": _OUT_OF_DISPATCH, "table warm": _OUT_OF_DISPATCH,
    "formulas": "formulas fed shapes (_shape_formula)",
}

_COLD = """
import sys, time, torch
torch.set_num_threads(1)
import cnn_models
from conformance.macs import count_flops
from conformance.torch_private import public_only
spec = cnn_models.get_spec(sys.argv[1])
ctx = public_only() if sys.argv[2] == "public" else __import__("contextlib").nullcontext()
with ctx:
    start = time.perf_counter()
    count_flops(spec.build, spec.input_size)
print(time.perf_counter() - start)
"""


def _paired(fn: Callable[[], object], twin: Callable[[], contextlib.AbstractContextManager[object]],
            reps: int) -> tuple[float, float]:
    """Median seconds of ``fn`` as it is and of ``fn`` inside ``twin()``, the two alternating
    repetition by repetition (after one untimed call each), so that a host slowing down or
    speeding up during the measurement weighs on both sides alike."""
    fn()
    with twin():
        fn()
    ours: list[float] = []
    other: list[float] = []
    for _ in range(reps):
        for times, ctx in ((ours, contextlib.nullcontext), (other, twin)):
            with ctx():
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(other)


def _cold(name: str, path: str) -> float:
    out = subprocess.run([sys.executable, "-c", _COLD, name, path], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(name: str, reps: int) -> list[tuple[str, float, float]]:
    """(row, ours s, public twin s) for one architecture."""
    import cnn_models
    from conformance.layer_table import build_on_meta, layer_table
    from conformance.macs import count_flops
    from conformance.torch_private import public_only

    spec = cnn_models.get_spec(name)
    model = build_on_meta(spec.build)
    size = spec.input_size
    rows = []
    for what, fn in (("flops warm", lambda: count_flops(model, size)),
                     ("table warm", lambda: layer_table(model, size))):
        rows.append((what, *_paired(fn, public_only, reps)))
    rows.insert(1, ("flops cold", _cold(name, "ours"), _cold(name, "public")))
    rows.append(("formulas", *_paired(lambda: count_flops(model, size), _through_shape_wrapper, reps)))
    return rows


@contextlib.contextmanager
def _through_shape_wrapper() -> Iterator[None]:
    """Every counted op's formula called through torch's shape_wrapper, as its _count_flops does."""
    from conformance import torch_private

    direct = torch_private._shape_formula
    torch_private._shape_formula = lambda *args: None
    try:
        yield
    finally:
        torch_private._shape_formula = direct


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.private_paths", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated architecture names")
    parser.add_argument("--reps", type=int, default=7, help="repetitions of each warm measurement (median)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print(f"{'model':20s} {'row':11s} {'ours ms':>9s} {'public ms':>10s} {'speedup':>8s}")
    best: dict[str, float] = {}
    for name in args.models.split(","):
        for what, ours, public in measure(name.strip(), args.reps):
            ratio = public / ours if ours > 0 else float("inf")
            best[PATHS[what]] = max(best.get(PATHS[what], 0.0), ratio)
            print(f"{name:20s} {what:11s} {ours * 1e3:9.1f} {public * 1e3:10.1f} {ratio:7.2f}x", flush=True)
    for path, ratio in best.items():
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"{path}: largest speedup {ratio:.2f}x, {verdict} the {TARGET}x a private path must buy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
