"""What every comparison shares: options, interleaved repetitions over per-tool workers, medians.

``measure(module, tools, jobs, reps)`` starts one ``Worker`` per tool (its imports timed
once, apart), then repeats ``reps`` times: for each job (a model), for each tool, one
measurement in a fresh fork. Tools take turns on the same model within a repetition, so a
burst of load on the shared machine falls on all of them, and the ratio of medians holds
better than the absolute times.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._proc import Worker, WorkerError
from ._stats import median

__all__ = ["Job", "Options", "Tally", "measure"]


@dataclass(frozen=True)
class Options:
    reps: int = 3
    quick: bool = False
    gate: bool = False  # cnn-conformance check per architecture and --all (minutes)
    suite: bool = False  # the test suite under pytest -n auto and serially (minutes)
    timeout: int = 900  # per measurement, seconds
    verbose: bool = True

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Job:
    key: str  # the row's subject, e.g. "vgg16"
    fn: str  # TASKS key in the comparison module; "{tool}" is replaced by the tool's name
    args: dict[str, Any] = field(default_factory=dict)
    warm: bool = False  # also time later calls in the same process (fields warm_*; _worker._cold_and_warm)


@dataclass
class Tally:
    """Every repetition of every (tool, job), and each tool's import cost."""

    runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reps(self, tool: str, key: str) -> list[dict[str, Any]]:
        return self.runs.get((tool, key), [])

    def ok(self, tool: str, key: str) -> list[dict[str, Any]]:
        return [r for r in self.reps(tool, key) if r.get("ok")]

    def error(self, tool: str, key: str) -> str | None:
        """What went wrong in any repetition (a median over the good ones alone would hide it)."""
        reps = self.reps(tool, key)
        bad = [r for r in reps if not r.get("ok")]
        if not bad:
            return None
        last = str(bad[0].get("error", "failed")).strip().splitlines()[-1][:200]
        return last if len(bad) == len(reps) else f"failed in {len(bad)} of {len(reps)} repetitions: {last}"

    def problem(self, tool: str, key: str) -> str | None:
        """Why ``tool`` has no full set of results for ``key``, or ``None`` when every repetition ran.

        A target that compares with this tool is then not measured: a peer that is missing or
        failed must not drop out of "the fastest peer" and leave a slower one to beat."""
        if "error" in self.imports.get(tool, {}):
            return f"unavailable ({self.imports[tool]['error']})"
        if not self.reps(tool, key):
            return "not run"
        return self.error(tool, key)

    def med(self, tool: str, key: str, field_name: str) -> float | None:
        return median(r.get(field_name) for r in self.ok(tool, key))

    def least(self, tool: str, key: str, field_name: str) -> float | None:
        vals = [float(v) for r in self.ok(tool, key) if (v := r.get(field_name)) is not None]
        return min(vals) if vals else None

    def by_rep(self, tool: str, key: str, field_name: str) -> dict[int, float]:
        """``{repetition: value}`` over the good runs (tools take turns within a repetition)."""
        return {int(r["rep"]): float(r[field_name]) for r in self.ok(tool, key)
                if r.get(field_name) is not None and r.get("rep") is not None}

    def first(self, tool: str, key: str, field_name: str) -> Any:
        """A field that does not change between repetitions (a count), from the first good run."""
        good = self.ok(tool, key)
        return good[0].get(field_name) if good else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        """A tally back from ``as_json()`` (a section's raw data in ``latest.json``)."""
        if not isinstance(data.get("runs"), list):
            raise ValueError("no repetitions in this data (expected a 'runs' list, as Tally.as_json() writes)")
        tally = cls(imports=dict(data.get("imports", {})))
        for entry in data["runs"]:
            tally.runs[(entry["tool"], entry["job"])] = list(entry["reps"])
        return tally

    def as_json(self) -> dict[str, Any]:
        return {
            "imports": self.imports,
            "runs": [{"tool": t, "job": k, "reps": v} for (t, k), v in self.runs.items()],
        }


def measure(
    module: str,
    tools: Sequence[str],
    jobs: Sequence[Job] | Callable[[str], Sequence[Job]],
    opts: Options,
    *,
    reps: int | None = None,
) -> Tally:
    """Run every job with every tool, ``reps`` times, interleaved; see the module docstring.

    ``jobs`` is one list for all tools (each job's ``fn`` is then formatted with the tool:
    ``fn.format(tool=...)``), or a function of the tool returning its jobs (same keys).
    """
    n = opts.reps if reps is None else reps
    tally = Tally()
    workers: dict[str, Worker] = {}
    try:
        for tool in tools:
            opts.log(f"{module}: starting the {tool} worker")
            try:
                w = Worker(module, tool)
            except WorkerError as exc:
                opts.log(f"{module}: {tool} unavailable: {exc}")
                tally.imports[tool] = {"error": str(exc).strip().splitlines()[-1][:300]}
                continue
            workers[tool] = w
            tally.imports[tool] = {
                "startup_s": w.startup_s, "import_s": w.import_s,
                "import_rss_mb": w.import_rss_mb, "import_maxrss_mb": w.import_maxrss_mb,
            }
        per_tool = {t: {j.key: j for j in (jobs(t) if callable(jobs) else jobs)} for t in workers}
        keys = list(dict.fromkeys(k for t in per_tool for k in per_tool[t]))
        for rep in range(n):
            for key in keys:
                for tool in list(workers):
                    job = per_tool[tool].get(key)
                    if job is None:
                        continue
                    w = workers[tool]
                    fn = job.fn.format(tool=tool)
                    try:
                        res = w.run(fn, job.args, timeout=opts.timeout, warm=job.warm)
                    except WorkerError as exc:
                        res = {"ok": False, "error": str(exc)}
                        w.close()
                        workers[tool] = Worker(module, tool)  # a fresh worker after a crash
                    res["rep"] = rep
                    tally.runs.setdefault((tool, job.key), []).append(res)
                    status = "ok" if res.get("ok") else f"FAILED: {str(res.get('error', '')).strip().splitlines()[-1:]}"
                    opts.log(f"{module}: rep {rep + 1}/{n} {tool} {job.key}: {status}"
                             + (f" ({res.get('op_s', 0):.3f} s)" if res.get("ok") and "op_s" in res else ""))
    finally:
        for w in workers.values():
            w.close()
    return tally
