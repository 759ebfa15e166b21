"""Suite-wide setup: hypothesis profile, one torch thread per xdist worker."""

from __future__ import annotations

import os

import pytest
import torch

from conformance.profiles import register_profiles

PROFILE = register_profiles()

if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("CNN_CONFORMANCE_THREADS"):
    # Under -n auto every worker gets one thread so workers do not fight over the cores.
    torch.set_num_threads(int(os.environ.get("CNN_CONFORMANCE_THREADS", "1")))


def pytest_report_header(config: pytest.Config) -> str:
    return f"cnn-conformance: hypothesis profile {PROFILE!r}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
