"""Hypothesis profiles: what ``ci``, ``dev`` and ``thorough`` promise, and who chooses them.

Oracle: conformance/profiles.py's documented settings (``ci``: derandomized, no example
database, ``deadline=None``, bounded examples, ``print_blob``; ``dev`` and ``thorough`` with more
examples). The profile a pytest run actually loads, chosen by ``CNN_CONFORMANCE_PROFILE``, is
tested from the outside in tests/test_plugin.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from conformance.profiles import (
    PROFILE_ENV,
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
    assert (settings.get_profile("ci").max_examples < settings.get_profile("dev").max_examples
            < settings.get_profile("thorough").max_examples)


def test_environment_variable_chooses_and_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                                     restore_profile: None) -> None:
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


