"""One tool's worker process: import once, then run each measurement in a fresh fork.

    python -m benchmarks._worker MODULE TOOL

The parent (``benchmarks._proc.Worker``) starts one worker per (comparison, tool). The worker
imports ``MODULE`` (a ``benchmarks`` comparison module, light) and calls its
``prepare(TOOL)``, which imports what the tool needs (torch, cnn_models, the tool's package);
that import phase is timed and reported once, in the first line, and is excluded from every
measurement that follows. Then it reads one JSON job per line on stdin and, for each,
forks: the forked child runs ``MODULE.TASKS[job["fn"]](**job["args"])`` with stdout and stderr
sent elsewhere, and sends the task's result back through a pipe. So every measurement starts
from the same state (imports done, no model built, no kernel run yet: a *cold* call, as a
user's first call in a fresh process) and its memory is its own. Before the task runs, the
child takes its own copy of the pages it shares with the worker (``own_pages``), so the first
call pays no copy-on-write faults that a fresh process would not pay (field ``pages``):

* ``rss_start_mb``: the child's resident set when it started, read by the child itself (a
  fork shares the parent's pages, and the kernel counts in the child only those it maps);
* ``added_mb``: the child's peak resident set during the call (VmHWM, reset at the start
  through ``/proc/self/clear_refs``) minus ``rss_start_mb``: the peak memory the measurement
  added on top of the imported process. It includes the model (a CPU build holds every
  weight; a meta build none), the activations, the tool's own bookkeeping, and library code
  and modules paged in or imported lazily by the call;
* ``maxrss_mb``: the child's ``ru_maxrss`` from ``os.wait4`` (for the record);
* with ``"warm": true`` in the job, the task runs again in the same child, lazy imports done
  (fields ``warm_*_s``, ``warm_added_mb``, ``warm_calls``): after a ``gc.collect()``, as many
  calls as fit in ``WARM_BUDGET_S`` (at least one, at most ``WARM_MAX_CALLS``), and each time
  field is their median; ``warm_added_mb`` is the peak of the first one, so every tool's memory
  describes one call. A full collection walks the whole heap and leaves the CPU caches
  cold: one call right after it measured 40-60 us for a closed-form count that takes 3 us
  once its code and data are cached again, so a single call would describe the collection,
  not the code. A call of ``WARM_BUDGET_S`` or more runs once.

The worker never runs a torch kernel itself (so no thread pool exists when it forks, and
OMP_NUM_THREADS=1 is set by the parent): forking a process whose OpenMP pool is running can
deadlock the child. Each job carries a timeout; a child that exceeds it is killed by SIGALRM
and reported as timed out.

Protocol (stdout, one line each, prefixed with ``@bench ``): first
``{"ready": true, "import_s": ..., "rss_mb": ..., "maxrss_mb": ...}``, then one result per job:
``{"ok": true, ...task fields..., "maxrss_mb", "rss_start_mb", "added_mb"}`` or
``{"ok": false, "error": "..."}``. An empty line or EOF on stdin ends the worker.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

from benchmarks._stats import median

PREFIX = "@bench "


def rss_now_mb() -> float | None:
    """This process's current resident set in MiB (/proc on Linux, psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - psutil missing or unsupported: no number
        return None


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def peak_mb() -> float | None:
    """This process's peak resident set since start or the last ``reset_peak`` (VmHWM)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``/proc/self/clear_refs``, value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


_MADV_POPULATE_WRITE = 23  # Linux 5.14+


def own_pages() -> str:
    """Give this forked child its own copy of every page it shares with its parent.

    After ``fork`` the child shares the parent's pages copy-on-write, and the first write to
    each (a Python refcount is a write) costs a page fault and a 4 KiB copy. A process that
    did the imports itself has no such debt; the forked child does, and would pay it inside
    the first measured call: a closed-form count (CIFAR ResNet-20) measured 340 us cold and 90 us warm in
    a fork, 57 us and 7 us in-process. So before measuring, every present page of every
    private writable mapping is pre-faulted for writing (``madvise(MADV_POPULATE_WRITE)`` on
    the runs of present pages that ``/proc/self/pagemap`` lists; untouched reservations are
    left alone). Returns a line for the record: MB copied, or why nothing was.
    """
    if not sys.platform.startswith("linux"):
        return "not Linux: pages left shared"
    try:
        import ctypes

        import numpy as np

        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/maps") as fh:
            regions = [line.split() for line in fh]
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    except (OSError, ImportError, AttributeError) as exc:
        return f"pages left shared ({type(exc).__name__}: {exc})"
    copied = failed = 0
    try:
        for fields in regions:
            perms = fields[1]
            if (not (perms.startswith("rw") and perms[3] == "p")
                    or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]"))):
                continue
            start, end = (int(a, 16) for a in fields[0].split("-"))
            n = (end - start) // page
            entries = np.frombuffer(os.pread(fd, n * 8, start // page * 8), dtype=np.uint64)
            present = ((entries >> np.uint64(63)) & np.uint64(1)).astype(np.int8)
            edges = np.flatnonzero(np.diff(np.concatenate(([0], present, [0]))))
            for lo, hi in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
                if libc.madvise(start + lo * page, (hi - lo) * page, _MADV_POPULATE_WRITE) == 0:
                    copied += (hi - lo) * page
                else:
                    failed += 1
    finally:
        os.close(fd)
    return f"{copied / 2**20:.0f} MB own" + (f", {failed} ranges refused" if failed else "")


WARM_BUDGET_S = 0.2  # warm calls: as many as fit in this (at least one) ...
WARM_MAX_CALLS = 5  # ... and at most this many


def _cold_and_warm(task: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` once (cold), and again (warm) when the job asks; memory of each apart.

    ``added_mb`` is the peak RSS during the call minus the RSS just before it. The warm calls
    run in the same process after the cold one (lazy imports done, caches filled), each on a
    freshly built model, as a gate or a test suite calls a tool for one model after another:
    up to ``WARM_MAX_CALLS`` of them within ``WARM_BUDGET_S``; their fields are prefixed
    ``warm_`` and hold the median over the calls (``warm_calls`` says how many); the memory is
    the first warm call's, so it does not grow with the number of calls a fast tool gets.
    """
    args = job.get("args", {})
    can_reset = reset_peak()
    start = rss_now_mb()
    result = dict(task(**args))
    result["rss_start_mb"] = start
    hwm = peak_mb() if can_reset else None
    result["added_mb"] = max(0.0, hwm - start) if hwm is not None and start is not None else None
    if job.get("warm"):
        import gc

        gc.collect()
        can_reset = reset_peak()
        before = rss_now_mb()
        warms: list[dict[str, Any]] = []
        spent = 0.0
        hwm = None
        while len(warms) < WARM_MAX_CALLS and (not warms or spent < WARM_BUDGET_S):
            t0 = time.perf_counter()
            warms.append(dict(task(**args)))
            spent += time.perf_counter() - t0
            if len(warms) == 1 and can_reset:
                hwm = peak_mb()
        for key in warms[0]:
            if key.endswith("_s"):
                result[f"warm_{key}"] = median(w.get(key) for w in warms)
        result["warm_calls"] = len(warms)
        result["warm_added_mb"] = max(0.0, hwm - before) if hwm is not None and before is not None else None
    return result


def _emit(out: Any, payload: dict[str, Any]) -> None:
    out.write(PREFIX + json.dumps(payload) + "\n")
    out.flush()


def _run_forked(module: Any, job: dict[str, Any], out: Any) -> dict[str, Any]:
    timeout = int(job.get("timeout", 600))
    read_fd, write_fd = os.pipe()
    err_log = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the measured child
        code = 0
        try:
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(err_log.fileno(), 2)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # default action: terminate
            signal.alarm(timeout)
            try:
                pages = own_pages()
                payload = {"ok": True, **_cold_and_warm(module.TASKS[job["fn"]], job), "pages": pages}
            except BaseException:  # noqa: BLE001 - report anything the task raised
                payload = {"ok": False, "error": traceback.format_exc(limit=8)}
            data = json.dumps(payload).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:  # noqa: BLE001 - never return into the parent's loop
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    err_log.seek(0)
    err_tail = err_log.read()[-3000:].decode("utf-8", "replace")
    err_log.close()
    scale = 1 if sys.platform == "darwin" else 1024
    peak = usage.ru_maxrss * scale / 2**20
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = f"timed out after {timeout} s" if sig == signal.SIGALRM else f"killed by signal {sig}"
        return {"ok": False, "error": f"{why}\n{err_tail}", "maxrss_mb": peak}
    try:
        payload = json.loads(b"".join(chunks).decode())
    except ValueError:
        return {"ok": False, "error": f"no result (exit status {os.WEXITSTATUS(status)})\n{err_tail}",
                "maxrss_mb": peak}
    payload["maxrss_mb"] = peak
    if payload.get("ok") and payload.get("added_mb") is None and payload.get("rss_start_mb") is not None:
        payload["added_mb"] = max(0.0, peak - payload["rss_start_mb"])  # no VmHWM: whole-child peak
    if not payload.get("ok"):
        payload["error"] = f"{payload.get('error', '')}\n{err_tail}".strip()
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m benchmarks._worker MODULE TOOL", file=sys.stderr)
        return 2
    out = sys.stdout
    start = time.perf_counter()
    try:
        module = importlib.import_module(argv[0])
        module.prepare(argv[1])
    except BaseException:  # noqa: BLE001 - the parent reports it
        _emit(out, {"ready": False, "error": traceback.format_exc(limit=8)})
        return 1
    _emit(out, {
        "ready": True,
        "import_s": time.perf_counter() - start,
        "rss_mb": rss_now_mb(),
        "maxrss_mb": maxrss_mb(),
    })
    for line in sys.stdin:
        line = line.strip()
        if not line:
            break
        _emit(out, _run_forked(module, json.loads(line), out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
