"""The cnn-conformance pytest plugin: one test per registered architecture, no list to edit.

Installed with the package (entry point group ``pytest11``, name ``cnn_conformance``), so any
project that has cnn-conformance installed can gate its architectures with a test such as::

    def test_gate(arch_name, conformance_gate):
        conformance_gate(arch_name)       # fails with the gate's report, naming the layers

Options (group "cnn-conformance")
---------------------------------
``--arch GLOB``
    run the architecture-parametrized tests only for names matching GLOB (``fnmatch``);
    repeat the option or separate globs with commas (``--arch 'resnet*,vgg16'``). A glob
    that matches no registered architecture is a usage error, never an empty run.
``--cnn-profile NAME``
    the hypothesis settings profile (``ci``, ``dev``, ``thorough``; see
    ``conformance/profiles.py``); overrides ``CNN_CONFORMANCE_PROFILE``.

Parametrized arguments (filled by ``pytest_generate_tests``)
----------------------------------------------------------
``arch_name``
    every registered architecture (``cnn_models.list_models()``: built-in ones and those of
    installed packages that declare the entry point group ``cnn_conformance.architectures``),
    in sorted order, each test id equal to the name: ``pytest -k resnet50`` selects one, and
    every xdist worker collects the same list.
``tv_arch_name``
    the same, limited to architectures whose spec names a torchvision counterpart.

``@pytest.mark.arch_filter(predicate)`` narrows either list to the specs for which
``predicate(spec)`` is true. Fixtures: ``arch_spec`` (the ``ArchSpec`` of ``arch_name``) and
``conformance_gate`` (run the full gate, fail with its report). ``assert_conformant(report)``
fails a test with any ``Report`` (for example one from ``check_candidate``).

A third-party entry point that fails to load makes every module that uses these arguments
fail to collect with the loader's error: a broken plugin never shrinks the list silently.

This module stays thin: pytest at the top, torch and the registry inside functions, so
installing the package costs nothing to projects that do not use the fixtures.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cnn_models import ArchSpec
    from conformance.gate_report import Report

__all__ = ["ARCH_ARGS", "assert_conformant", "selected_architectures"]

# parametrized argument -> which registered specs it ranges over
ARCH_ARGS: dict[str, Callable[[ArchSpec], bool]] = {
    "arch_name": lambda spec: True,
    "tv_arch_name": lambda spec: bool(spec.torchvision),
}


class ArchitecturePluginError(Exception):
    """A third-party architecture entry point failed to load."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnn-conformance", "cnn-conformance: architecture conformance gate")
    group.addoption(
        "--arch",
        action="append",
        default=None,
        metavar="GLOB",
        help="only architectures whose name matches GLOB (fnmatch); repeat or comma-separate",
    )
    group.addoption(
        "--cnn-profile",
        default=None,
        metavar="NAME",
        help="hypothesis settings profile: ci, dev or thorough (overrides CNN_CONFORMANCE_PROFILE)",
    )


def _globs(config: pytest.Config) -> list[str]:
    raw: Sequence[str] = config.getoption("arch") or ()
    return [g.strip() for item in raw for g in item.split(",") if g.strip()]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """``--cnn-profile`` before any conftest runs, so conftests that read the variable agree."""
    name = getattr(early_config.known_args_namespace, "cnn_profile", None)
    if name:
        from conformance.profiles import PROFILE_ENV, PROFILES

        if name not in PROFILES:
            raise pytest.UsageError(f"--cnn-profile {name!r}: expected one of {', '.join(PROFILES)}")
        os.environ[PROFILE_ENV] = name


@pytest.hookimpl(tryfirst=True)  # before hypothesis' own plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "arch_filter(predicate): limit arch_name / tv_arch_name to the specs for which predicate(spec) is true",
    )
    from conformance.profiles import PROFILE_ENV, PROFILES

    hypothesis_profile = config.getoption("hypothesis_profile", default=None)
    if config.getoption("cnn_profile") or os.environ.get(PROFILE_ENV) or hypothesis_profile in PROFILES:
        from conformance.profiles import load_profile, selected_profile

        try:
            load_profile(config.getoption("cnn_profile") or selected_profile())
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    globs = _globs(config)
    if globs:  # validate now: a typo must not turn into a run that checks nothing
        names = _registered()
        unmatched = [g for g in globs if not any(fnmatch.fnmatchcase(n, g) for n in names)]
        if unmatched:
            import difflib

            hints = list(dict.fromkeys(c for g in unmatched
                                       for c in difflib.get_close_matches(g, names, n=3, cutoff=0.6)))
            hint = f"; close matches: {', '.join(hints)}" if hints else ""
            raise pytest.UsageError(
                f"--arch {', '.join(map(repr, unmatched))} matches no registered architecture{hint} "
                f"({len(names)} registered; `cnn-conformance models` lists them)"
            )


def _registered() -> list[str]:
    import cnn_models

    return cnn_models.list_models()


def selected_architectures(config: pytest.Config, *predicates: Callable[[ArchSpec], bool]) -> list[str]:
    """Registered names (sorted) that match ``--arch`` and every one of ``predicates``.

    Raises ``ArchitecturePluginError`` listing every third-party entry point that failed.
    """
    import cnn_models

    names = cnn_models.list_models()
    errors = cnn_models.plugin_errors()
    if errors:
        raise ArchitecturePluginError(
            f"{len(errors)} third-party architecture entry point(s) failed to load, so their "
            "architectures cannot be checked:\n" + "\n".join(f"  {e}" for e in errors)
        )
    globs = _globs(config)
    if globs:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    if predicates:
        names = [n for n in names if all(p(cnn_models.get_spec(n)) for p in predicates)]
    return names


def _explicitly_parametrized(metafunc: pytest.Metafunc, arg: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        names = argnames.split(",") if isinstance(argnames, str) else list(argnames)
        if arg in (n.strip() for n in names):
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [a for a in ARCH_ARGS if a in metafunc.fixturenames and not _explicitly_parametrized(metafunc, a)]
    if not wanted:
        return
    filters = []
    for mark in metafunc.definition.iter_markers("arch_filter"):
        if len(mark.args) != 1 or not callable(mark.args[0]):
            pytest.fail(f"{metafunc.definition.nodeid}: arch_filter takes one predicate(spec) -> bool, "
                        f"got {mark.args!r}", pytrace=False)
        filters.append(mark.args[0])
    for arg in wanted:
        try:
            names = selected_architectures(metafunc.config, ARCH_ARGS[arg], *filters)
        except ArchitecturePluginError as exc:
            pytest.fail(f"cnn-conformance: {exc}", pytrace=False)
        if names:
            metafunc.parametrize(arg, names, ids=names)
        elif _globs(metafunc.config):
            reason = f"--arch {' '.join(_globs(metafunc.config))} selects no architecture for {arg}"
            metafunc.parametrize(arg, [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                                 ids=["no-architecture-selected"])
        else:
            pytest.fail(
                f"cnn-conformance: {metafunc.definition.nodeid}: no registered architecture fits {arg}"
                f"{' and its arch_filter' if filters else ''}",
                pytrace=False,
            )


@pytest.fixture
def arch_spec(arch_name: str) -> ArchSpec:
    """The ``ArchSpec`` of the architecture this test instance runs for.

    Requesting it parametrizes the test over ``arch_name``::

        def test_spec_has_a_paper(arch_spec):
            assert arch_spec.paper
    """
    import cnn_models

    return cnn_models.get_spec(arch_name)


def assert_conformant(report: Report) -> Report:
    """Fail the current test with ``report``'s table of failures unless it is conformant.

        from conformance.check import check_candidate
        assert_conformant(check_candidate(my_factory, "mine", spec=cnn_models.get_spec("resnet50")))
    """
    __tracebackhide__ = True
    if not report.passed:
        n = sum(not c.passed for c in report.checks)
        what = f"{n} failing check(s)" if n else "an error stopped the checks"
        pytest.fail(f"conformance gate: {report.candidate} is not conformant ({what})\n{report.format()}",
                    pytrace=False)
    return report


@pytest.fixture
def conformance_gate() -> Callable[..., Report]:
    """Run the full conformance gate on a registered architecture; fail the test if it fails.

        def test_gate(arch_name, conformance_gate):
            conformance_gate(arch_name)

    ``conformance_gate(name, numerics=True)`` calls ``conformance.check.check_builtin`` once
    and returns the ``Report`` when every check passes; otherwise the test fails with the
    report (each failure names the qualified module and shows expected vs got).
    ``numerics=False`` leaves out the numerical comparison with the reference.
    """

    def gate(name: str, *, numerics: bool = True) -> Report:
        __tracebackhide__ = True
        from conformance.check import check_builtin

        return assert_conformant(check_builtin(name, numerics=numerics))

    return gate


def pytest_report_header(config: pytest.Config) -> str | None:
    globs = _globs(config)
    return f"cnn-conformance: --arch {', '.join(globs)}" if globs else None
