"""CLI subcommands, one module each: ``add_arguments(parser)`` and ``run(args) -> int``.

``conformance/cli.py`` wires them. This package holds what several subcommands share:
selecting the model to look at (a registered NAME or ``--candidate MODULE_OR_FILE.py:FACTORY``)
and the input size (``--input-size C H W``, default the spec's or 3 224 224). Problems with
what the user gave raise ``UsageError``, which the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from ..errors import UsageError

__all__ = ["DEFAULT_INPUT_SIZE", "ModelChoice", "add_target_arguments", "build_target", "resolve_target"]

DEFAULT_INPUT_SIZE = (3, 224, 224)


@dataclass(frozen=True)
class ModelChoice:
    """What a subcommand looks at: a label, a zero-argument factory, its spec (if any), input."""

    label: str
    factory: Callable[[], nn.Module]
    spec: Any | None  # cnn_models.ArchSpec
    input_size: tuple[int, int, int]


def add_target_arguments(parser: argparse.ArgumentParser, *, with_spec: bool = False) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="a registered architecture (cnn-conformance models lists them)")
    parser.add_argument("--candidate", metavar="MODULE_OR_FILE.py:FACTORY",
                        help="a zero-argument factory returning an nn.Module")
    if with_spec:
        parser.add_argument("--spec", metavar="NAME", help="with --candidate: the registered spec whose oracles apply")
    parser.add_argument(
        "--input-size", nargs=3, type=int, metavar=("C", "H", "W"),
        help=f"input size per sample (default: the spec's, else {' '.join(map(str, DEFAULT_INPUT_SIZE))})",
    )


def _spec(name: str, option: str) -> Any:
    import cnn_models

    try:
        return cnn_models.get_spec(name)
    except KeyError as exc:
        prefix = f"{option}: " if option else ""
        raise UsageError(f"{prefix}{exc}") from None


def resolve_target(args: argparse.Namespace) -> ModelChoice:
    """The model named on the command line, as a factory; ``UsageError`` on anything wrong."""
    name, candidate = args.name, args.candidate
    spec_name = getattr(args, "spec", None)
    if bool(name) == bool(candidate):
        raise UsageError("give either a registered NAME or --candidate MODULE_OR_FILE.py:FACTORY (exactly one)")
    if candidate:
        from ..loading import load_factory

        factory = load_factory(candidate)
        spec = _spec(spec_name, "--spec") if spec_name else None
        label = candidate
    else:
        if spec_name:
            raise UsageError("--spec applies to --candidate; a registered NAME uses its own spec")
        spec = _spec(name, "")
        factory, label = spec.build, name
    size = tuple(args.input_size) if args.input_size else (
        tuple(spec.input_size) if spec is not None else DEFAULT_INPUT_SIZE)
    if len(size) != 3 or any(d <= 0 for d in size):
        raise UsageError(f"--input-size: expected three positive integers C H W, got {' '.join(map(str, size))}")
    return ModelChoice(label, factory, spec, size)


def build_target(target: ModelChoice) -> nn.Module:
    """Build the target's model on meta; a factory that raises or returns a non-module is a
    ``UsageError`` naming it."""
    from ..loading import build_candidate_on_meta

    try:
        return build_candidate_on_meta(target.factory, target.label)
    except UsageError as exc:  # keep it to one line, whatever the factory's message
        raise UsageError(_one_line(str(exc))) from exc.__cause__
    except Exception as exc:  # building on meta failed outside the factory call
        raise UsageError(f"{target.label}: building on the meta device raised "
                         f"{type(exc).__name__}: {_one_line(str(exc))}") from exc


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
