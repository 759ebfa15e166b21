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

# glibc gives every allocation above 32 MB its own mmap and unmaps it on free, so each gate
# of a VGG (1.1 GB of float64 weights, then gradients and temporaries of the same size)
# touches about a million fresh pages: 1.5-2.5 s of a 6-8 s gate is the kernel handing out
# zeroed pages (getrusage: ru_minflt, ru_stime). With these two settings large blocks come
# from the heap and stay there when freed, so the next gate reuses them: a repeated VGG16
# gate went from about 1.0-1.5 million minor faults to under 15,000, and from 6.2 to 4.6-5.1 s,
# with no higher peak RSS (3.7 GB). glibc reads them when a process starts, so they are set
# here, in the pytest process that xdist starts its workers from (before it starts them), and
# the workers inherit them; a serial run is not affected. Values already in the environment
# win; CNN_CONFORMANCE_HEAP=default leaves glibc's defaults everywhere.
HEAP_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 30), "MALLOC_TRIM_THRESHOLD_": str(32 << 30)}
if sys.platform.startswith("linux") and os.environ.get("CNN_CONFORMANCE_HEAP", "keep") != "default":
    for key, value in HEAP_SETTINGS.items():
        os.environ.setdefault(key, value)


def pytest_report_header(config: pytest.Config) -> str:
    heap = ", ".join(f"{k}={os.environ[k]}" for k in HEAP_SETTINGS if k in os.environ) or "glibc defaults"
    return (f"cnn-conformance: hypothesis profile {PROFILE!r}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); xdist workers' heap: {heap}")
