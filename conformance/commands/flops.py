"""``cnn-conformance flops``: MACs and FLOPs by layer type, the oracles side by side.

    cnn-conformance flops resnet50
    cnn-conformance flops --candidate my_model.py:build --spec resnet50
    cnn-conformance flops --candidate pkg.mod:build --input-size 3 32 32

Oracles: the closed form of the spec's config, torch's FlopCounterMode on meta (eval mode),
torchvision's weights ``_ops`` (GMACs despite the GFLOPS label, at the weights' crop size) and
a paper value when the spec declares one. Convention: 1 MAC = 2 FLOPs; MACs of Conv2d and
Linear only, no bias. A --candidate without --spec is measured by FlopCounterMode alone.
Exit codes: 0 every comparison agrees, 1 one disagrees, 2 usage or load error.
"""

from __future__ import annotations

import argparse

from . import add_target_arguments, build_target, resolve_target

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser, with_spec=True)


def run(args: argparse.Namespace) -> int:
    from ..macs import flops_report

    target = resolve_target(args)
    model = build_target(target)
    report = flops_report(model, target.input_size, spec=target.spec, subject=target.label)
    print(report.table())
    return 0 if report.ok else 1
