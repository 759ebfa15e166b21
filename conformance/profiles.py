"""Hypothesis settings profiles, chosen by ``CNN_CONFORMANCE_PROFILE`` (default ``dev``).

* ``ci``: derandomized, no example database, no deadline (torch's first forward is slow),
  few examples, ``print_blob=True`` so a failure prints the line that reproduces it;
* ``dev``: random, with the local database, a few more examples;
* ``thorough``: many examples, for a nightly run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "CNN_CONFORMANCE_PROFILE"
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]


def register_profiles() -> str:
    settings.register_profile(
        "ci", derandomize=True, database=None, deadline=None, max_examples=10,
        print_blob=True, suppress_health_check=_SUPPRESS,
    )
    settings.register_profile(
        "dev", deadline=None, max_examples=20, print_blob=True, suppress_health_check=_SUPPRESS
    )
    settings.register_profile(
        "thorough", deadline=None, max_examples=200, print_blob=True, suppress_health_check=_SUPPRESS
    )
    name = os.environ.get(PROFILE_ENV, "dev")
    if name not in ("ci", "dev", "thorough"):
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of ci, dev, thorough")
    settings.load_profile(name)
    return name
