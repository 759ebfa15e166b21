"""``cnn-conformance``: the command-line entry point (also ``python -m conformance``).

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args)``;
this file only wires them. A ``UsageError`` (or any ``ConformanceError``) becomes one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import ConformanceError

__all__ = ["main"]

# name -> (module, help)
COMMANDS = {
    "check": ("conformance.commands.check", "check architectures against independent oracles (the gate)"),
    "summary": ("conformance.commands.summary", "per-layer table in torchsummary's layout, computed on meta"),
    "flops": ("conformance.commands.flops", "MACs and FLOPs by layer type, with the oracles side by side"),
    "gradflow": ("conformance.gradflow.cli", "gradient flow at initialisation: measured vs theory, with a report"),
    "claims": ("conformance.commands.claims", "the tutorial's and papers' numbers, measured, with verdicts"),
    "models": ("conformance.commands.models", "list registered architectures with their parameter oracles"),
}


def _set_threads() -> int:
    """One torch thread, or CNN_CONFORMANCE_THREADS; returns the old count.

    The engine's work is many small ops (meta passes, 64x64 numerics, 8x8 gradient-flow
    nets): intra-op threads mostly wait on each other, and on a busy machine OpenMP's
    spinning made runs several times slower. Parallelism comes from processes instead
    (``check --all --jobs``).
    """
    import torch

    old = torch.get_num_threads()
    threads = os.environ.get("CNN_CONFORMANCE_THREADS")
    torch.set_num_threads(int(threads) if threads else 1)
    return old


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnn-conformance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    old_threads = _set_threads()
    try:
        return int(args._run(args))
    except ConformanceError as exc:
        print(f"cnn-conformance {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn-conformance: interrupted", file=sys.stderr)
        return 130
    finally:  # main() may run inside another process (tests, notebooks): leave it as found
        import torch

        torch.set_num_threads(old_threads)


if __name__ == "__main__":
    sys.exit(main())
