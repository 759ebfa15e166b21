"""The heap settings that worker processes start with: ``pytest -n auto``'s xdist workers
(set by tests/conftest.py) and ``cnn-conformance check --all``'s check processes.

Above a threshold that starts at 128 KiB and rises to at most 32 MiB, glibc gives each
allocation its own mmap and unmaps it on free, so each gate of a VGG (1.1 GB of float64
weights, then gradients and temporaries of the same size) touches about a million fresh
pages: 1.5-2.5 s of a 6-8 s gate is the kernel handing out zeroed pages (getrusage:
ru_minflt, ru_stime). With ``SETTINGS``, large blocks come from the heap and stay there when
freed, so the next gate reuses them: a repeated VGG16 gate went from 1.0-1.5 million minor
faults to under 15,000 and from 6.2 to 4.6-5.1 s, and the heavy gates' system time halved
under -n 2; ``check --all`` in two processes went from 70-77 s to 53-62 s (system time 30-37
to 12 s). The price: a worker keeps its high-water mark (about 3 GB after a VGG gate) until
it exits, so it is only done with ``MIN_GIB_PER_WORKER`` of RAM per worker process.

glibc reads these variables when a process starts, so they are set in the environment that
the workers are started with; the workers and every process they start inherit them. A
serial run is left alone. Values already in the environment win; ``CNN_CONFORMANCE_HEAP=default``
turns this off.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, MutableMapping

SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 30), "MALLOC_TRIM_THRESHOLD_": str(32 << 30)}
MIN_GIB_PER_WORKER = 6.0


def ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def decide(workers: int, environ: MutableMapping[str, str], ram: float | None, platform: str = sys.platform) -> str:
    """Put ``SETTINGS`` into ``environ`` (where missing) when it is safe; say what was done."""
    if not workers:
        return "glibc defaults (serial run)"
    if not platform.startswith("linux"):
        return "allocator defaults (not Linux)"
    if environ.get("CNN_CONFORMANCE_HEAP", "keep") == "default":
        return "glibc defaults (CNN_CONFORMANCE_HEAP=default)"
    if ram is None or ram / workers < MIN_GIB_PER_WORKER:
        per = "unknown RAM" if ram is None else f"{ram / workers:.1f} GiB of RAM per worker"
        return f"glibc defaults ({per}; kept in the heap from {MIN_GIB_PER_WORKER:g} GiB)"
    for key, value in SETTINGS.items():
        environ.setdefault(key, value)
    return ", ".join(f"{k}={environ[k]}" for k in SETTINGS)


@contextlib.contextmanager
def worker_environment(workers: int) -> Iterator[str]:
    """This process's environment with ``decide``'s setting for ``workers`` processes, while
    they are started (each copies the environment when it starts); put back as it was on
    exit. Yields what ``decide`` said."""
    env = dict(os.environ)
    said = decide(workers, env, ram_gib())
    added = {k: v for k, v in env.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield said
    finally:
        for key in added:
            os.environ.pop(key, None)
