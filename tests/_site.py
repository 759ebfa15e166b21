"""Test helper: install packages into throwaway site directories, never into this venv.

``pip_install_example(target)`` runs ``pip install --target`` on a copy of
examples/cnn_conformance_example (offline: no index, no build isolation, so setuptools from
the test environment builds it), which writes the package and a ``*.dist-info`` whose
``entry_points.txt`` pip generated from the example's ``pyproject.toml``: the real thing a
contributor's ``pip install`` produces. ``add_distribution`` writes a minimal dist-info by
hand (for plugins that are meant to be broken). A subprocess with the directory on
``PYTHONPATH`` (``env_with``) sees the distributions through ``importlib.metadata``; the
test process's own registry stays untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["EXAMPLE", "PYTHON", "ROOT", "add_distribution", "env_with", "pip_install_example"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cnn_conformance_example"
PYTHON = sys.executable


def pip_install_example(target: Path) -> Path:
    """``pip install --target target examples/cnn_conformance_example``, built from a copy."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "example"  # setuptools writes build/ and *.egg-info beside the source
        shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
        cmd = [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--target", str(target), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return target


def add_distribution(site: Path, name: str, entry_points: Mapping[str, Mapping[str, str]],
                     version: str = "0.1.0") -> Path:
    """Write ``<name>-<version>.dist-info`` with METADATA and ``entry_points.txt`` into ``site``."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in eps.items()]
        lines.append("")
    (dist / "entry_points.txt").write_text("\n".join(lines))
    return dist


def env_with(*sites: Path) -> dict[str, str]:
    """Environment for a subprocess that sees ``sites`` (one torch thread, no xdist leftovers)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, sites), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", CNN_CONFORMANCE_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID", "PYTEST_ADDOPTS"):
        env.pop(var, None)
    return env
