"""``cnn-conformance summary``: the per-layer table in torchsummary's layout, built on meta.

    cnn-conformance summary vgg16
    cnn-conformance summary --candidate my_model.py:build --input-size 3 64 64

Prints what ``torchsummary.summary(model, (C, H, W))`` (1.5.1) prints for the same model:
same rows, numbering, totals and MB lines, without allocating a weight. The pass runs in the
model's own mode (train mode for a freshly built model, as torchsummary's does) unless
``--eval`` is given. Exit codes: 0 printed, 2 usage or load error.
"""

from __future__ import annotations

import argparse
import sys

from . import add_target_arguments, build_target, resolve_target

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--batch-size", type=int, default=-1, metavar="N",
        help="batch size shown in the shapes and the input size (torchsummary's argument; default -1)",
    )
    parser.add_argument("--eval", action="store_true", help="run the pass in eval mode (default: the model's own mode)")


def run(args: argparse.Namespace) -> int:
    from ..summary import summarize

    target = resolve_target(args)
    model = build_target(target)
    text = summarize(model, target.input_size, batch_size=args.batch_size, train=False if args.eval else None).render()
    sys.stdout.write(text)
    return 0
