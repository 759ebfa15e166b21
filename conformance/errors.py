"""Errors the engine raises on bad input; the CLI turns each into one line and exit code 2."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConformanceError", "UsageError"]


class ConformanceError(Exception):
    """Base class: a problem with what the user handed us (not a bug in the engine)."""


class UsageError(ConformanceError):
    """Bad command line or candidate: unknown name, missing file, factory that raises."""


class CheckpointError(ConformanceError):
    """A checkpoint that cannot be trusted or does not fit the model."""
