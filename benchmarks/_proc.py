"""Processes: per-tool workers, timed commands with peak memory, and the machine's description.

* ``Worker``: the parent's handle on ``python -m benchmarks._worker MODULE TOOL`` (see that
  module): start it, send jobs, read results. One per (comparison, tool), so a tool's imports
  and memory never mix with another's.
* ``run_command``: run a command line (``cnn-conformance check ...``, ``pytest -n auto``) to
  the end and return its wall time, its exit code, its peak RSS (``os.wait4``'s
  ``ru_maxrss``: the largest of the process and the children it waited for), and each
  descendant's peak RSS (xdist workers): found with psutil every ``sample_s`` seconds and
  read from /proc/PID/status ``VmHWM`` (a true peak, not a sample) where it exists.
* ``machine``: date, CPU count and model, RAM, Python, torch and package versions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ._worker import PREFIX

REPO = Path(__file__).resolve().parent.parent


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every measured process: one torch thread, no GPU, no plots shown."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
    })
    paths = [str(REPO), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


class WorkerError(RuntimeError):
    pass


class Worker:
    """A running ``benchmarks._worker``; ``run(fn, **args)`` measures one job in a fresh fork."""

    def __init__(self, module: str, tool: str, *, start_timeout: float = 300.0) -> None:
        self.module, self.tool = module, tool
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._worker", module, tool],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=str(REPO), env=child_env(), bufsize=1,
        )
        ready = self._read(start_timeout)
        if not ready.get("ready"):
            self.close()
            raise WorkerError(f"{module} {tool}: the worker did not start:\n{ready.get('error', '')}")
        #: seconds from spawning the interpreter to the end of the tool's imports
        self.startup_s = time.perf_counter() - started
        self.import_s: float = ready["import_s"]  # the imports alone (prepare(tool))
        self.import_rss_mb: float | None = ready["rss_mb"]
        self.import_maxrss_mb: float = ready["maxrss_mb"]

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"{self.module} {self.tool}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise WorkerError(f"{self.module} {self.tool}: the worker exited\n{err[-3000:]}")
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])

    def run(self, fn: str, args: dict[str, Any] | None = None, *, timeout: int = 600,
            warm: bool = False) -> dict[str, Any]:
        """Measure ``TASKS[fn](**args)`` in a fresh fork (and a second, warm call if asked)."""
        assert self.proc.stdin is not None
        job = {"fn": fn, "args": args or {}, "timeout": timeout, "warm": warm}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout + 60)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    wall_s: float
    maxrss_mb: float  # ru_maxrss of the process and its waited-for children: the largest one
    tree_peak_mb: dict[str, float] = field(default_factory=dict)  # "role pid argv" -> peak RSS (VmHWM, sampled)
    output_tail: str = ""

    @property
    def max_descendant_mb(self) -> float | None:
        """The largest sampled peak among the process's descendants (xdist workers)."""
        kids = [v for k, v in self.tree_peak_mb.items() if not k.startswith("root ")]
        return max(kids) if kids else None


def _hwm_mb(pid: int) -> float | None:
    """A process's peak RSS so far (``VmHWM`` in /proc/PID/status), or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_command(argv: list[str], *, timeout: float = 3600, sample_s: float = 0.5,
                env: dict[str, str] | None = None, cwd: Path | None = None) -> CommandResult:
    """Run ``argv`` to completion; wall time, exit code, peak RSS (own and per descendant)."""
    out = tempfile.TemporaryFile(mode="w+")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=str(cwd or REPO), env=env or child_env())
    peaks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            try:
                procs = [("root", root), *[("child", c) for c in root.children(recursive=True)]]
            except psutil.Error:
                break
            for role, p in procs:
                try:
                    rss = _hwm_mb(p.pid) or p.memory_info().rss / 2**20
                    key = f"{role} {p.pid} {' '.join(p.cmdline()[1:4])[:80]}"
                except psutil.Error:
                    continue
                peaks[key] = max(peaks.get(key, 0.0), rss)
            stop.wait(sample_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    deadline = time.monotonic() + timeout
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join(timeout=5)
    out.seek(0)
    tail = out.read()[-8000:]
    out.close()
    scale = 1 if sys.platform == "darwin" else 1024
    return CommandResult(list(argv), proc.returncode, wall, usage.ru_maxrss * scale / 2**20 if usage else 0.0,
                         peaks, tail)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


PACKAGES = ("torch", "torchvision", "torchsummary", "torchinfo", "fvcore", "ptflops", "thop",
            "psutil", "pytest", "pytest-xdist", "hypothesis")


def cpu_steal_s() -> float | None:
    """Seconds since boot that this machine's virtual CPUs were ready to run but the
    hypervisor ran something else, all CPUs together (the ``steal`` column of /proc/stat);
    ``None`` where there is no such file. A section that ran while this grew fast ran on a
    slower machine than its neighbours in the report."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError, IndexError):
        return None


def machine() -> dict[str, Any]:
    """Where and when the numbers were taken."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load,
        "packages": {p: _version(p) for p in PACKAGES},
        "env": {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
    }
