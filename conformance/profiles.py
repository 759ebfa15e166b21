"""Hypothesis settings profiles, chosen by ``CNN_CONFORMANCE_PROFILE`` (default ``dev``).

* ``ci``: derandomized, no example database, no deadline (torch's first forward is slow),
  few examples, ``print_blob=True`` so a failure prints the line that reproduces it;
* ``dev``: random, with the local database, a few more examples;
* ``thorough``: many examples, for a nightly run.

Choose one with the environment variable (``CNN_CONFORMANCE_PROFILE=ci pytest``), with the
pytest plugin's ``--cnn-profile ci``, or with hypothesis' own ``--hypothesis-profile ci``
(the profiles are registered when the plugin configures pytest). tox's envs set the
variable: ``tests`` keeps the caller's choice (default ``dev``), ``thorough`` forces
``thorough``, and ``.ci/run`` exports ``ci``.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_PROFILE", "PROFILES", "PROFILE_ENV", "load_profile", "register_profiles", "selected_profile"]

PROFILE_ENV = "CNN_CONFORMANCE_PROFILE"
PROFILES = ("ci", "dev", "thorough")
DEFAULT_PROFILE = "dev"


def _register() -> None:
    # hypothesis is imported here, not at the top: the pytest plugin reads the names above
    # in every run, and only a run that uses a profile pays for the import
    from hypothesis import HealthCheck, settings

    suppress = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci", derandomize=True, database=None, deadline=None, max_examples=10,
        print_blob=True, suppress_health_check=suppress,
    )
    settings.register_profile(
        "dev", deadline=None, max_examples=20, print_blob=True, suppress_health_check=suppress
    )
    settings.register_profile(
        "thorough", deadline=None, max_examples=200, print_blob=True, suppress_health_check=suppress
    )


def selected_profile(default: str = DEFAULT_PROFILE) -> str:
    """The profile named by ``CNN_CONFORMANCE_PROFILE`` (``default`` when unset); ValueError if unknown."""
    name = os.environ.get(PROFILE_ENV) or default
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def load_profile(name: str) -> str:
    """Register the profiles and load ``name``; ValueError naming the choices if unknown."""
    if name not in PROFILES:
        raise ValueError(f"hypothesis profile {name!r}: expected one of {', '.join(PROFILES)}")
    from hypothesis import settings

    _register()
    settings.load_profile(name)
    return name


def register_profiles() -> str:
    """Register the profiles and load the one ``CNN_CONFORMANCE_PROFILE`` names (default dev)."""
    _register()
    return load_profile(selected_profile())
