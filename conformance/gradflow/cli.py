"""``cnn-conformance gradflow``: run the gradient-flow grid and write the report.

    cnn-conformance gradflow --depths 8,16,32 --inits he_fan_in,naive --residual off,on \\
        --bn off,on --width 32 --seeds 5 --dtype float64 --device cpu --out DIR

The lead's ``conformance/cli.py`` registers this with ``add_arguments(parser)`` and
``run(args)``. Every option is read as a string and validated here, so bad input gives one
line on stderr and exit code 2 (no argparse usage block, no traceback). Exit code 0: every
setting agrees with theory; 1: at least one disagrees; 2: bad input.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .nets import INIT_SCHEMES, PADDINGS, RESIDUAL_MODES
from .setting import DTYPES, Setting

__all__ = ["DEFAULTS", "add_arguments", "main", "run"]

PROG = "cnn-conformance gradflow"

DEFAULTS = {
    "depths": "8,16",
    "inits": "he_fan_in,xavier,naive",
    "residual": "off,on",
    "bn": "off,on",
    "width": "32",
    "seeds": "5",
    "dtype": "float64",
    "device": "cpu",
    "padding": "circular",
    "batch": "16",
    "size": "8",
    "sweep_depths": "8,32,110",
    "sweep_width": "16",
    "out": "gradflow-report",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``gradflow`` (comma lists where a grid axis is meant)."""
    d = DEFAULTS
    parser.add_argument("--depths", default=d["depths"],
                        help=f"comma list of depths: layers (plain) or blocks (residual) [{d['depths']}]")
    parser.add_argument("--inits", default=d["inits"],
                        help=f"comma list from {','.join(INIT_SCHEMES)} [{d['inits']}]")
    parser.add_argument("--residual", default=d["residual"],
                        help=f"comma list from {','.join(RESIDUAL_MODES)} (scaled: (x+F)/sqrt2; "
                        f"zeroinit: last branch conv starts at 0) [{d['residual']}]")
    parser.add_argument("--bn", default=d["bn"], help=f"comma list from off,on [{d['bn']}]")
    parser.add_argument("--width", default=d["width"], help=f"channels C [{d['width']}]")
    parser.add_argument("--seeds", default=d["seeds"], help=f"nets per setting, at least 2 [{d['seeds']}]")
    parser.add_argument("--dtype", default=d["dtype"], help=f"{' or '.join(DTYPES)} [{d['dtype']}]")
    parser.add_argument("--device", default=d["device"], help=f"torch device [{d['device']}]")
    parser.add_argument("--padding", default=d["padding"],
                        help=f"comma list from {','.join(PADDINGS)} [{d['padding']}]")
    parser.add_argument("--batch", default=d["batch"], help=f"batch size N [{d['batch']}]")
    parser.add_argument("--size", default=d["size"], help=f"spatial size H = W [{d['size']}]")
    parser.add_argument("--sweep-depths", default=d["sweep_depths"],
                        help="depths of the first-layer-gradient sweep (plain / plain+BN / "
                        f"residual / residual+BN, He init); 'none' to skip [{d['sweep_depths']}]")
    parser.add_argument("--sweep-width", default=d["sweep_width"],
                        help=f"width of the depth sweep [{d['sweep_width']}]")
    parser.add_argument("--cifar", action=argparse.BooleanOptionalAction, default=True,
                        help="also probe cifar_plainN / cifar_resnetN (N = 20..110) [on]")
    parser.add_argument("--out", default=d["out"], help=f"output directory [{d['out']}]")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# --- validation -------------------------------------------------------------------------------


class UsageError(ValueError):
    pass


def _positive_int(option: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{option}: {text.strip()!r} is not a positive integer") from None
    if value <= 0:
        raise UsageError(f"{option}: {value} is not a positive integer")
    return value


def _seeds(text: str) -> int:
    """``--seeds``: at least 2, since the verdicts compare against a standard error over seeds,
    and one seed has none (every setting would disagree with theory)."""
    value = _positive_int("--seeds", text)
    if value < 2:
        raise UsageError(
            f"--seeds: {value} is too few; at least 2 nets per setting are needed for a standard error "
            "to compare the measurements with theory"
        )
    return value


def _int_list(option: str, text: str) -> list[int]:
    parts = [p for p in str(text).split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise UsageError(f"{option}: expected a comma list of positive integers, got {text!r}")
    return sorted(set(_positive_int(option, p) for p in parts))


def _choice_list(option: str, text: str, choices: tuple[str, ...]) -> list[str]:
    out = []
    for p in str(text).split(","):
        p = p.strip()
        if p not in choices:
            raise UsageError(f"{option}: unknown value {p!r}; expected one of {', '.join(choices)}")
        if p not in out:
            out.append(p)
    return out


def _device(text: str, dtype: str) -> str:
    import torch

    try:
        dev = torch.device(text)
        torch.empty(1, device=dev, dtype=getattr(torch, dtype))
    except Exception as exc:  # noqa: BLE001 - torch raises several types here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--device: {text!r} is not available ({reason})") from None
    return text


@dataclass(frozen=True)
class Options:
    depths: list[int]
    inits: list[str]
    residual: list[str]
    bn: list[bool]
    width: int
    seeds: int
    dtype: str
    device: str
    padding: list[str]
    batch: int
    size: int
    sweep_depths: list[int]
    sweep_width: int
    cifar: bool
    out: Path
    progress: bool


def parse_options(args: argparse.Namespace) -> Options:
    dtype = _choice_list("--dtype", args.dtype, DTYPES)
    if len(dtype) != 1:
        raise UsageError(f"--dtype: give one of {', '.join(DTYPES)}, got {args.dtype!r}")
    sweep = str(args.sweep_depths).strip()
    return Options(
        depths=_int_list("--depths", args.depths),
        inits=_choice_list("--inits", args.inits, INIT_SCHEMES),
        residual=_choice_list("--residual", args.residual, RESIDUAL_MODES),
        bn=[v == "on" for v in _choice_list("--bn", args.bn, ("off", "on"))],
        width=_positive_int("--width", str(args.width)),
        seeds=_seeds(str(args.seeds)),
        dtype=dtype[0],
        device=_device(str(args.device), dtype[0]),
        padding=_choice_list("--padding", args.padding, PADDINGS),
        batch=_positive_int("--batch", str(args.batch)),
        size=_positive_int("--size", str(args.size)),
        sweep_depths=[] if sweep.lower() in ("none", "") else _int_list("--sweep-depths", sweep),
        sweep_width=_positive_int("--sweep-width", str(args.sweep_width)),
        cifar=bool(args.cifar),
        out=Path(args.out),
        progress=not args.no_progress,
    )


def _grid(o: Options) -> list[Setting]:
    return [
        Setting(
            depth=depth, width=o.width, init=init, residual=residual, bn=bn, padding=padding,
            batch=o.batch, spatial=o.size, dtype=o.dtype,
        )
        for residual in o.residual
        for bn in o.bn
        for init in o.inits
        for padding in o.padding
        for depth in o.depths
    ]


def _command(o: Options) -> str:
    parts = [
        "cnn-conformance gradflow",
        "--depths " + ",".join(map(str, o.depths)),
        "--inits " + ",".join(o.inits),
        "--residual " + ",".join(o.residual),
        "--bn " + ",".join("on" if b else "off" for b in o.bn),
        f"--width {o.width} --seeds {o.seeds} --dtype {o.dtype} --device {o.device}",
        "--padding " + ",".join(o.padding),
        f"--batch {o.batch} --size {o.size}",
        "--sweep-depths " + (",".join(map(str, o.sweep_depths)) or "none"),
        f"--sweep-width {o.sweep_width}",
        "--cifar" if o.cifar else "--no-cifar",
        f"--out {shlex.quote(str(o.out))}",
    ]
    return " ".join(parts)


SWEEP_CONFIGS = (("off", False), ("off", True), ("on", False), ("on", True))
CIFAR_DEPTHS = (20, 56, 110)  # of He et al. 2016 Table 6's 20/32/44/56/110: the ends and middle


def run(args: argparse.Namespace) -> int:
    """Run the grid, write the outputs; 0 all agree, 1 some disagree, 2 bad input."""
    try:
        o = parse_options(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    import torch

    from .runner import first_layer_gradient_vs_depth, progress_bar, run_grid
    from .writeup import RunInfo, write_all

    if not os.environ.get("CNN_CONFORMANCE_THREADS"):
        # The nets are small (8x8 maps): intra-op threads only add contention. With 2
        # threads on a busy 2-core machine we saw 5-8 s per net instead of 0.2 s.
        torch.set_num_threads(1)
    try:
        o.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: error: --out: cannot create {str(o.out)!r} ({exc.strerror})", file=sys.stderr)
        return 2
    results = run_grid(_grid(o), seeds=o.seeds, device=o.device, progress=o.progress)
    info = RunInfo(
        command=_command(o),
        seeds=o.seeds, dtype=o.dtype, device=o.device, depth_sweep_width=o.sweep_width,
    )
    if o.sweep_depths:
        bar = progress_bar(
            total=len(SWEEP_CONFIGS), desc="depth sweep", unit="net type", enabled=o.progress
        )
        for residual, bn in SWEEP_CONFIGS:
            info.depth_sweep += first_layer_gradient_vs_depth(
                o.sweep_depths, residual=residual, bn=bn, width=o.sweep_width,
                seeds=min(o.seeds, 2), batch=8, device=o.device,
            )
            bar.update()
        bar.close()
    if o.cifar:
        try:
            from .models import cifar_depth_sweep

            if o.progress:
                print("gradflow: probing the CIFAR nets ...", file=sys.stderr)
            info.cifar = cifar_depth_sweep(CIFAR_DEPTHS, seeds=min(o.seeds, 2))
        except Exception as exc:  # noqa: BLE001 - the models are optional here
            print(f"{PROG}: warning: CIFAR nets skipped ({exc})", file=sys.stderr)
    info.wall_seconds = time.perf_counter() - start
    paths = write_all(results, info, o.out)
    agree = sum(r.verdict == "agrees" for r in results)
    disagree = [r for r in results if r.verdict == "disagrees"]
    print(f"gradflow: {agree}/{len(results)} settings agree with theory "
          f"({info.wall_seconds:.1f} s); report: {paths['report']}")
    for r in disagree:
        print(f"  disagrees: {r.setting.label}")
    return 1 if disagree else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m conformance.gradflow.cli``)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
