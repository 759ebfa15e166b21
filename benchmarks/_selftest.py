"""A comparison module with no dependencies, to test the harness itself (tests/test_benchmarks_smoke.py).

Its one "tool", ``alloc``, imports nothing heavy; its tasks allocate and touch a given number
of MiB (so the measured added peak is known in advance), raise, or sleep past a timeout.
"""

from __future__ import annotations

import time
from typing import Any

TOOLS = ("alloc",)


def prepare(tool: str) -> None:
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")


def _alloc(mib: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    block = bytearray(mib * 2**20)  # zero-filled: every page touched
    n = len(block)
    del block
    return {"total_s": time.perf_counter() - t0, "bytes": n}


def _fail() -> dict[str, Any]:
    raise RuntimeError("this task fails on purpose")


def _sleep(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"total_s": seconds}


TASKS = {"alloc": _alloc, "fail": _fail, "sleep": _sleep}
