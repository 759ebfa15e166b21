"""Splitting the suite across CI runners with pytest-split: the groups partition it.

Each runner runs ``pytest --splits N --group i`` with the same ``.test_durations`` file
(written by ``pytest --store-durations``) and the same ``--randomly-seed``. These tests run
pytest-split from the outside (pytester, in a subprocess) on a small project and check that
the groups are disjoint and cover every test, that the durations file is what balances them,
and that a test missing from the file (a new one) still lands in exactly one group.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_slow():
    pass

@pytest.mark.parametrize("i", range(5))
def test_fast(i):
    pass

def test_new_since_the_durations_were_stored():
    pass
"""
ALL = {"test_mod.py::test_slow", "test_mod.py::test_new_since_the_durations_were_stored"} | {
    f"test_mod.py::test_fast[{i}]" for i in range(5)
}
DURATIONS = {"test_mod.py::test_slow": 10.0, **{f"test_mod.py::test_fast[{i}]": 1.0 for i in range(5)}}


def _group(pytester: pytest.Pytester, splits: int, group: int, *extra: str) -> set[str]:
    # the same --randomly-seed on every runner: pytest-randomly reorders before pytest-split
    # cuts, so runners must agree on the order (see CONTRIBUTING.md, "Beyond one machine").
    # hypothesis' plugin is off: these tests use none, and its end-of-run summary imports all
    # of hypothesis (about 1.3 s of each subprocess)
    result = pytester.runpytest_subprocess(
        "--splits", str(splits), "--group", str(group), "--collect-only", "-q", "-p", "randomly",
        "--randomly-seed", "4321", "-p", "no:hypothesispytest", *extra,
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return {line.strip() for line in result.outlines if line.startswith("test_mod.py::")}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_mod=TESTS)
    (pytester.path / ".test_durations").write_text(json.dumps(DURATIONS))
    return pytester


@pytest.mark.parametrize("algorithm", ["duration_based_chunks", "least_duration"])
def test_two_groups_partition_the_suite_by_recorded_durations(project: pytest.Pytester, algorithm: str) -> None:
    one = _group(project, 2, 1, "--splitting-algorithm", algorithm)
    two = _group(project, 2, 2, "--splitting-algorithm", algorithm)
    assert one.isdisjoint(two), f"run on both runners: {sorted(one & two)}"
    assert one | two == ALL, f"run on no runner: {sorted(ALL - one - two)}"
    # the 10 s test outweighs the five 1 s ones together: none of them shares its group (split
    # by count, 4 and 3 tests, some would); the unrecorded test counts as the mean duration
    slow = one if "test_mod.py::test_slow" in one else two
    assert not any("test_fast" in t for t in slow), sorted(slow)


def test_three_groups_without_a_durations_file_still_partition(project: pytest.Pytester) -> None:
    (project.path / ".test_durations").unlink()
    groups = [_group(project, 3, i) for i in (1, 2, 3)]
    assert sum(len(g) for g in groups) == len(ALL) and set().union(*groups) == ALL
    assert all(groups), "an empty group"
