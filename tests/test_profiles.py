"""Hypothesis profiles: what ``ci``, ``dev`` and ``thorough`` promise, and who chooses them.

Oracles: the issue's contract (``ci``: derandomized, no example database, ``deadline=None``,
bounded examples, ``print_blob``), tox.ini (``tests`` keeps the caller's
``CNN_CONFORMANCE_PROFILE``, default ``dev``; ``thorough`` forces ``thorough``) and .ci/run
(exports ``ci``). The profile a run loads is tested from the outside in tests/test_plugin.py.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from conformance.profiles import (
    PROFILE_ENV,
    PROFILES,
    load_profile,
    register_profiles,
    selected_profile,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_profile() -> Iterator[None]:
    """Leave hypothesis' current profile as this test found it."""
    before = settings.get_current_profile_name()
    yield
    settings.load_profile(before)


def test_ci_profile_is_reproducible_and_bounded(restore_profile: None) -> None:
    register_profiles()
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    assert ci.deadline is None
    assert ci.print_blob is True
    assert 0 < ci.max_examples <= 20
    for name in ("dev", "thorough"):
        other = settings.get_profile(name)
        assert other.deadline is None and other.print_blob is True, name  # torch's first call is slow
    assert settings.get_profile("ci").max_examples < settings.get_profile("dev").max_examples < settings.get_profile("thorough").max_examples


def test_environment_variable_chooses_and_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch, restore_profile: None) -> None:
    monkeypatch.setenv(PROFILE_ENV, "thorough")
    assert selected_profile() == "thorough"
    monkeypatch.delenv(PROFILE_ENV)
    assert selected_profile() == "dev"
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(ValueError, match=r"^CNN_CONFORMANCE_PROFILE='fast': expected one of ci, dev, thorough$"):
        selected_profile()
    with pytest.raises(ValueError, match=r"^hypothesis profile 'nightly': expected one of ci, dev, thorough$"):
        load_profile("nightly")
    monkeypatch.delenv(PROFILE_ENV)
    load_profile("ci")
    assert settings.default.derandomize is True


def test_tox_and_ci_choose_the_profiles() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")

    def set_env(section: str) -> dict[str, str]:
        lines = [x.strip() for x in tox[section].get("set_env", "").splitlines() if "=" in x]
        return {k.strip(): v.strip() for k, _, v in (x.partition("=") for x in lines)}

    assert set_env("testenv")[PROFILE_ENV] == "{env:CNN_CONFORMANCE_PROFILE:dev}"  # the caller's, else dev
    assert "{[testenv]set_env}" in tox["testenv:thorough"]["set_env"]
    assert set_env("testenv:thorough")[PROFILE_ENV] == "thorough"
    assert re.search(r"^export CNN_CONFORMANCE_PROFILE=ci\b", (ROOT / ".ci" / "run").read_text(), re.M)
    assert set(PROFILES) == {"ci", "dev", "thorough"}
