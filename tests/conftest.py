"""Suite-wide setup: hypothesis profile, one torch thread per xdist worker, and the heap
settings the xdist workers start with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conformance import heap
from conformance.profiles import register_profiles

PROFILE = register_profiles()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under -n auto every worker gets one thread so workers do not fight over the cores; the
    # variable also reaches the CLI's main() when a test calls it in-process.
    os.environ.setdefault("CNN_CONFORMANCE_THREADS", "1")
if os.environ.get("CNN_CONFORMANCE_THREADS"):
    torch.set_num_threads(int(os.environ["CNN_CONFORMANCE_THREADS"]))

# set in the controller before xdist starts its workers (pytest_configure runs before the
# session starts them), so the workers inherit it: see conformance/heap.py
HEAP = "glibc defaults"


def pytest_configure(config: pytest.Config) -> None:
    global HEAP
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: it started with what the controller set
        return
    numprocesses = getattr(config.option, "numprocesses", None)  # "auto" is a number by now
    HEAP = heap.decide(numprocesses if isinstance(numprocesses, int) else 0, os.environ, heap.ram_gib())


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/cnn_conformance_example pip-installed into a throwaway directory (tests/_site.py),
    once per session (per xdist worker); the subprocesses of test_plugin.py and
    test_third_party.py see it on their PYTHONPATH, this process never imports it."""
    from _site import pip_install_example

    return pip_install_example(tmp_path_factory.mktemp("example-site"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # pyproject's addopts deselect them; under xdist the summary line does not count
    # deselected tests, so say what was left out
    if not os.environ.get("PYTEST_XDIST_WORKER") and "not integration" in (config.option.markexpr or ""):
        terminalreporter.write_line(
            "tests marked integration (they start fresh interpreters importing torch) are left out by default: "
            "pytest -n auto -m integration runs them, -m '' runs everything")


def pytest_report_header(config: pytest.Config) -> str:
    return (f"cnn-conformance: hypothesis profile {PROFILE!r}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); heap of the xdist workers: {HEAP}")
