"""``cnn-conformance summary``: the per-layer table in torchsummary's layout, built on meta.

    cnn-conformance summary vgg16
    cnn-conformance summary --candidate my_model.py:build --input-size 3 64 64
    cnn-conformance summary mobilenet_v2 --closed-form

Prints what ``torchsummary.summary(model, (C, H, W))`` (1.5.1) prints for the same model:
same rows, numbering, totals and MB lines, without allocating a weight. The pass runs in the
model's own mode (train mode for a freshly built model, as torchsummary's does) unless
``--eval`` is given. ``--closed-form`` prints instead the table a registered architecture's
config implies through the layer formulas (names, types, shapes, parameters, MACs, receptive
field), without building anything: the table the gate holds the built model to. Exit codes:
0 printed, 2 usage or load error.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from . import ModelChoice, add_target_arguments, build_target, resolve_target

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "--batch-size", type=int, default=-1, metavar="N",
        help="batch size shown in the shapes and the input size (torchsummary's argument; default -1)",
    )
    parser.add_argument("--eval", action="store_true", help="run the pass in eval mode (default: the model's own mode)")
    parser.add_argument(
        "--closed-form", action="store_true",
        help="print the per-layer table a registered architecture's config implies (no model built)",
    )


def run(args: argparse.Namespace) -> int:
    from ..summary_table import summarize

    if args.closed_form and args.candidate:
        raise UsageError("--closed-form: the table comes from a registered architecture's config; give its NAME, "
                         "not --candidate (the gate holds a candidate to that table: cnn-conformance check)")
    if args.closed_form and args.eval:
        raise UsageError("--eval sets the mode of the meta pass; --closed-form runs no pass")
    target = resolve_target(args)
    if args.closed_form:
        sys.stdout.write(_closed_form(target, args.batch_size))
        return 0
    model = build_target(target)
    text = summarize(model, target.input_size, batch_size=args.batch_size, train=False if args.eval else None).render()
    sys.stdout.write(text)
    return 0


def _closed_form(target: ModelChoice, batch_size: int) -> str:
    from ..formulas import spec_plan
    from ..summary_table import plan_text

    spec = target.spec
    assert spec is not None  # a registered NAME always has its spec
    try:
        plan = spec_plan(spec, target.input_size)
    except LookupError as exc:
        raise UsageError(f"--closed-form: {spec.name}: {exc}") from None
    except ValueError as exc:  # e.g. an input too small for the config's strides
        raise UsageError(f"--closed-form: {spec.name} at input {target.input_size}: {exc}") from None
    return plan_text(plan, spec.name, target.input_size, batch_size)
