"""Suite-wide setup: hypothesis profile, one torch thread per xdist worker."""

from __future__ import annotations

import os

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


def pytest_report_header(config: pytest.Config) -> str:
    return f"cnn-conformance: hypothesis profile {PROFILE!r}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
