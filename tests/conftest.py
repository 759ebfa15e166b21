"""Suite-wide setup: hypothesis profile, one torch thread per xdist worker, and the heap
settings the xdist workers start with."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from conformance.profiles import register_profiles

PROFILE = register_profiles()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under -n auto every worker gets one thread so workers do not fight over the cores; the
    # variable also reaches the CLI's main() when a test calls it in-process.
    os.environ.setdefault("CNN_CONFORMANCE_THREADS", "1")
if os.environ.get("CNN_CONFORMANCE_THREADS"):
    torch.set_num_threads(int(os.environ["CNN_CONFORMANCE_THREADS"]))

# Above a threshold that starts at 128 KiB and rises to at most 32 MiB, glibc gives each
# allocation its own mmap and unmaps it on free, so each gate of a VGG (1.1 GB of float64
# weights, then gradients and temporaries of the same size) touches about a million fresh
# pages: 1.5-2.5 s of a 6-8 s gate is the kernel handing out zeroed pages (getrusage:
# ru_minflt, ru_stime). With the two settings below, large blocks come from the heap and stay
# there when freed, so the next gate reuses them: a repeated VGG16 gate went from 1.0-1.5
# million minor faults to under 15,000 and from 6.2 to 4.6-5.1 s, and the heavy gates' system
# time halved under -n 2. The price: a worker keeps its high-water mark (3.7-4.0 GB after a
# VGG gate) until it exits, so it is only done when the machine has HEAP_MIN_GIB_PER_WORKER
# of RAM per xdist worker. glibc reads these variables when a process starts: they are set in
# the controller before xdist starts its workers (pytest_configure runs before the session
# starts them), so the workers and every process the tests start inherit them; a serial run
# (-n 0) is left alone. Values already in the environment win; CNN_CONFORMANCE_HEAP=default
# turns this off.
HEAP_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 30), "MALLOC_TRIM_THRESHOLD_": str(32 << 30)}
HEAP_MIN_GIB_PER_WORKER = 6.0


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _heap_decision(workers: int) -> str:
    """Set the heap variables for the xdist workers when it is safe; say what was done."""
    if not workers:
        return "glibc defaults (serial run)"
    if not sys.platform.startswith("linux"):
        return "allocator defaults (not Linux)"
    if os.environ.get("CNN_CONFORMANCE_HEAP", "keep") == "default":
        return "glibc defaults (CNN_CONFORMANCE_HEAP=default)"
    ram = _ram_gib()
    if ram is None or ram / workers < HEAP_MIN_GIB_PER_WORKER:
        per = "unknown RAM" if ram is None else f"{ram / workers:.1f} GiB of RAM per worker"
        return f"glibc defaults ({per}; kept in the heap from {HEAP_MIN_GIB_PER_WORKER:g} GiB)"
    for key, value in HEAP_SETTINGS.items():
        os.environ.setdefault(key, value)
    return ", ".join(f"{k}={os.environ[k]}" for k in HEAP_SETTINGS)


HEAP = "glibc defaults"


def pytest_configure(config: pytest.Config) -> None:
    global HEAP
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: it started with what the controller set
        return
    numprocesses = getattr(config.option, "numprocesses", None)  # "auto" is a number by now
    HEAP = _heap_decision(numprocesses if isinstance(numprocesses, int) else 0)


def pytest_report_header(config: pytest.Config) -> str:
    return (f"cnn-conformance: hypothesis profile {PROFILE!r}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); heap of the xdist workers: {HEAP}")
