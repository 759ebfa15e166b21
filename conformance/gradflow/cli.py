"""``cnn-conformance gradflow``: gradient flow at init (experiment grid, any model) and in training.

    cnn-conformance gradflow --depths 8,16,32 --inits he_fan_in,naive --residual off,on \\
        --bn off,on --width 32 --seeds 5 --dtype float64 --device cpu --out DIR
    cnn-conformance gradflow --model resnet18,cifar_resnet56 --inits own,naive --no-shortcuts
    cnn-conformance gradflow --candidate my_net.py:build --input-size 3 32 32
    cnn-conformance gradflow --train [--model cifar_plain20,cifar_plain56] --steps 120 --lr 0.05

Three modes. Without ``--model``, ``--candidate`` or ``--train``: the experiment grid of
``runner`` against ``theory`` (exit 0: every setting agrees; 1: one disagrees). With
``--model`` / ``--candidate``: per-layer profiles of those models at init and their variants
(``model_profile``; exit 0). With ``--train``: the degradation experiment of ``training``
(exit 0; the ordering is reported, not asserted). ``conformance/cli.py`` registers this with
``add_arguments(parser)`` and ``run(args)``. Every option is read as a string and validated
here, so bad input gives one line on stderr and exit code 2 (no argparse usage block, no
traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConformanceError
from .model_profile import OWN_INIT
from .nets import INIT_SCHEMES, PADDINGS, RESIDUAL_MODES
from .setting import DTYPES, Setting
from .training import DEFAULT_MODELS

__all__ = ["DEFAULTS", "add_arguments", "main", "model_input_size", "run"]

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
    "steps": "200",
    "lr": "0.025",
    "examples": "1024",
    "sweep_depths": "8,32,110",
    "sweep_width": "16",
    "out": "gradflow-report",
}


# where a mode's default differs from the grid's
MODEL_DEFAULTS = {"inits": OWN_INIT, "seeds": "3", "batch": "8"}
TRAIN_DEFAULTS = {"seeds": "3", "batch": "32", "dtype": "float32"}
MODEL_SIZE = 64  # --model: the spec's input size, at most this many pixels a side (adaptive pools allow it)
CANDIDATE_SIZE = (3, 32, 32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``gradflow`` (comma lists where a grid axis is meant)."""
    d = DEFAULTS
    parser.add_argument("--model", metavar="NAME[,NAME]",
                        help="registered architectures to profile at init (with --train: the CIFAR nets to train; "
                        f"default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--candidate", metavar="MODULE_OR_FILE.py:FACTORY",
                        help="profile a zero-argument factory returning an nn.Module")
    parser.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"),
                        help=f"--model / --candidate input per sample [the spec's, at most {MODEL_SIZE} px a side; "
                        f"a candidate: {' '.join(map(str, CANDIDATE_SIZE))}]")
    parser.add_argument("--zero-init-residual", action="store_true",
                        help="--model: also measure each model built with zero_init_residual=True")
    parser.add_argument("--no-shortcuts", action="store_true",
                        help="--model: also measure each model's plain twin (cifar_resnetN <-> cifar_plainN)")
    parser.add_argument("--train", action="store_true",
                        help="train plain vs residual CIFAR nets (He et al. 2016, Fig. 1 and 6) on an offline task")
    parser.add_argument("--steps", default=d["steps"], help=f"--train: SGD steps [{d['steps']}]")
    parser.add_argument("--lr", default=d["lr"], help=f"--train: learning rate (constant) [{d['lr']}]")
    parser.add_argument("--examples", default=d["examples"], help=f"--train: training-set size [{d['examples']}]")
    parser.add_argument("--depths", default=d["depths"],
                        help=f"comma list of depths: layers (plain) or blocks (residual) [{d['depths']}]")
    parser.add_argument("--inits", default=None,
                        help=f"comma list from {','.join(INIT_SCHEMES)} [{d['inits']}]; with --model also "
                        f"{OWN_INIT!r}, the model's own [{OWN_INIT}]")
    parser.add_argument("--residual", default=d["residual"],
                        help=f"comma list from {','.join(RESIDUAL_MODES)} (scaled: (x+F)/sqrt2; "
                        f"zeroinit: last branch conv starts at 0) [{d['residual']}]")
    parser.add_argument("--bn", default=d["bn"], help=f"comma list from off,on [{d['bn']}]")
    parser.add_argument("--width", default=d["width"], help=f"channels C [{d['width']}]")
    parser.add_argument("--seeds", default=None,
                        help=f"nets per setting / model, at least 2 [{d['seeds']}; --model, --train: 3]")
    parser.add_argument("--dtype", default=None,
                        help=f"{' or '.join(DTYPES)} [{d['dtype']}; --train: float32]")
    parser.add_argument("--device", default=d["device"], help=f"torch device [{d['device']}]")
    parser.add_argument("--padding", default=d["padding"],
                        help=f"comma list from {','.join(PADDINGS)} [{d['padding']}]")
    parser.add_argument("--batch", default=None,
                        help=f"batch size N [{d['batch']}; --model: 8; --train: 32]")
    parser.add_argument("--size", default=d["size"], help=f"spatial size H = W (grid and --train) [{d['size']}]")
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


def _given(args: argparse.Namespace, name: str, mode: dict[str, str] | None = None) -> str:
    """The option as given, else the mode's default, else the grid's."""
    value = getattr(args, name, None)
    if value is not None:
        return str(value)
    return (mode or {}).get(name, DEFAULTS[name])


def _dtype(args: argparse.Namespace, mode: dict[str, str] | None = None) -> str:
    text = _given(args, "dtype", mode)
    dtype = _choice_list("--dtype", text, DTYPES)
    if len(dtype) != 1:
        raise UsageError(f"--dtype: give one of {', '.join(DTYPES)}, got {text!r}")
    return dtype[0]


def parse_options(args: argparse.Namespace) -> Options:
    dtype = _dtype(args)
    sweep = str(args.sweep_depths).strip()
    return Options(
        depths=_int_list("--depths", args.depths),
        inits=_choice_list("--inits", _given(args, "inits"), INIT_SCHEMES),
        residual=_choice_list("--residual", args.residual, RESIDUAL_MODES),
        bn=[v == "on" for v in _choice_list("--bn", args.bn, ("off", "on"))],
        width=_positive_int("--width", str(args.width)),
        seeds=_seeds(_given(args, "seeds")),
        dtype=dtype,
        device=_device(str(args.device), dtype),
        padding=_choice_list("--padding", args.padding, PADDINGS),
        batch=_positive_int("--batch", _given(args, "batch")),
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


def _error(exc: Exception) -> int:
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return 2


def _one_threaded() -> None:
    import torch

    if not os.environ.get("CNN_CONFORMANCE_THREADS"):
        # The nets are small (8x8 maps): intra-op threads only add contention. With 2
        # threads on a busy 2-core machine we saw 5-8 s per net instead of 0.2 s.
        torch.set_num_threads(1)


def _mkdir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {str(out)!r} ({exc.strerror})") from None


def _names(text: str | None) -> list[str]:
    if text is None:
        return []
    names = [n.strip() for n in str(text).split(",")]
    if not names or any(not n for n in names):
        raise UsageError(f"--model: expected a comma list of registered architectures, got {text!r}")
    return list(dict.fromkeys(names))


def _grid_only(args: argparse.Namespace, mode: str) -> None:
    """Options of the other modes, refused where they would be ignored."""
    if mode != "model":
        for flag, value, where in (("--zero-init-residual", args.zero_init_residual, "--model"),
                                   ("--no-shortcuts", args.no_shortcuts, "--model"),
                                   ("--input-size", args.input_size, "--model / --candidate")):
            if value:
                raise UsageError(f"{flag} applies to {where} (the init-time profiles)")


def run(args: argparse.Namespace) -> int:
    """Run the selected mode, write the outputs; 2 on bad input (one line on stderr)."""
    train, model = bool(args.train), bool(args.model or args.candidate)
    try:
        if train and args.candidate:
            raise UsageError("--train trains registered CIFAR nets (--model cifar_plainN,cifar_resnetN), "
                             "not a candidate")
        _grid_only(args, "model" if model and not train else ("train" if train else "grid"))
        if train:
            return _run_train(args)
        if model:
            return _run_models(args)
    except (UsageError, ConformanceError) as exc:
        return _error(exc)
    return _run_grid(args)


def _input_size(args: argparse.Namespace, name: str | None) -> tuple[int, int, int]:
    if args.input_size:
        dims = tuple(_positive_int("--input-size", str(v)) for v in args.input_size)
        return dims[0], dims[1], dims[2]
    return model_input_size(name)


def model_input_size(name: str | None) -> tuple[int, int, int]:
    """The default input of ``--model NAME``: the spec's, capped at ``MODEL_SIZE`` px a side when
    the model runs there (a meta-device pass says), else the spec's; a candidate (``None``):
    ``CANDIDATE_SIZE``."""
    if name is None:
        return CANDIDATE_SIZE
    import cnn_models

    from ..layer_table import layer_table

    spec = cnn_models.get_spec(name)
    c, h, w = spec.input_size
    small = (c, min(h, MODEL_SIZE), min(w, MODEL_SIZE))
    if small == (c, h, w):
        return small
    try:
        layer_table(spec.build, small, train=True)  # on meta: shapes only
    except ConformanceError:
        return (c, h, w)  # e.g. Inception v3, whose aux head (train mode) needs about its own 299 px
    return small


def _run_models(args: argparse.Namespace) -> int:
    from .model_profile import measure_variant, variants
    from .model_writeup import ModelRunInfo, write_model_outputs
    from .runner import progress_bar

    start = time.perf_counter()
    mode = MODEL_DEFAULTS
    seeds = _seeds(_given(args, "seeds", mode))
    batch = _positive_int("--batch", _given(args, "batch", mode))
    dtype = _dtype(args, mode)
    device = _device(str(args.device), dtype)
    inits = [p.strip() for p in _given(args, "inits", mode).split(",")]
    for init in inits:
        if init != OWN_INIT and init not in INIT_SCHEMES:
            raise UsageError(f"--inits: unknown value {init!r}; expected one of {OWN_INIT}, {', '.join(INIT_SCHEMES)}")
    names = _names(args.model)
    candidate = None
    if args.candidate:
        from ..loading import load_factory

        candidate = (str(args.candidate), load_factory(str(args.candidate)))
    todo = variants(models=names, candidate=candidate, inits=list(dict.fromkeys(inits)),
                    zero_init_residual=args.zero_init_residual, no_shortcuts=args.no_shortcuts)
    sizes = {v.base: _input_size(args, None if (candidate and v.base == candidate[0]) else v.base) for v in todo}
    out = Path(args.out)
    _mkdir(out)
    _one_threaded()
    bar = progress_bar(total=len(todo) * seeds, desc="gradflow --model", unit="net", enabled=not args.no_progress)
    profiles = []
    try:
        for v in todo:
            bar.set_postfix_str(v.label, refresh=False)
            profiles.append(measure_variant(v, seeds=seeds, input_size=sizes[v.base], batch=batch, dtype=dtype,
                                            device=device, on_seed=bar.update))
    finally:
        bar.close()
    command = " ".join(shlex.quote(a) for a in ["cnn-conformance", "gradflow", *_argv(args)])
    info = ModelRunInfo(command=command, device=device, wall_seconds=time.perf_counter() - start)
    paths = write_model_outputs(profiles, info, out)
    for p in profiles:
        ratio = p.first_to_last_conv_grad()[0]
        print(f"gradflow: {p.variant.label}: {len(p.layers)} layers, first/last conv gradient (RMS) "
              f"x{math.exp(ratio):.3g} ({p.seconds:.1f} s)" if math.isfinite(ratio) and abs(ratio) < 700
              else f"gradflow: {p.variant.label}: {len(p.layers)} layers, not finite in {p.dtype}")
    print(f"gradflow: {len(profiles)} model(s) profiled ({info.wall_seconds:.1f} s); report: {paths['report']}")
    return 0


def _positive_float(option: str, text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise UsageError(f"{option}: {str(text).strip()!r} is not a positive number") from None
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{option}: {value} is not a positive number")
    return value


def _run_train(args: argparse.Namespace) -> int:
    from .train_writeup import TrainRunInfo, write_train_outputs
    from .training import TrainConfig, check_trainable, ordering, train_all

    start = time.perf_counter()
    mode = TRAIN_DEFAULTS
    names = _names(args.model) or list(DEFAULT_MODELS)
    for name in names:
        check_trainable(name)
    seeds = _seeds(_given(args, "seeds", mode))
    dtype = _dtype(args, mode)
    cfg = TrainConfig(
        steps=_positive_int("--steps", str(args.steps)), lr=_positive_float("--lr", str(args.lr)),
        batch=_positive_int("--batch", _given(args, "batch", mode)), size=_positive_int("--size", str(args.size)),
        examples=_positive_int("--examples", str(args.examples)), dtype=dtype, device=_device(str(args.device), dtype),
    )
    if cfg.size < 4:
        raise UsageError(f"--size: {cfg.size} is too small for the CIFAR nets' two stride-2 stages (at least 4)")
    if cfg.batch > cfg.examples:
        raise UsageError(f"--batch: {cfg.batch} is larger than the training set (--examples {cfg.examples})")
    out = Path(args.out)
    _mkdir(out)
    _one_threaded()
    runs = train_all(names, seeds=seeds, cfg=cfg, progress=not args.no_progress)
    command = " ".join(shlex.quote(a) for a in ["cnn-conformance", "gradflow", *_argv(args)])
    info = TrainRunInfo(command=command, wall_seconds=time.perf_counter() - start)
    order = ordering(runs, cfg.final_fraction)
    paths = write_train_outputs(runs, order, cfg, info, out)
    for name, (mean, sd, _) in order.final.items():
        print(f"gradflow --train: {name}: final loss {mean:.3f} ± {sd:.3f} (sd over {seeds} seeds)")
    for c in order.comparisons:
        print(f"gradflow --train: {c.deeper} - {c.shallower}: {c.difference:+.3f} ± {c.band:.3f} "
              f"(paper: {c.expected}) -> {c.verdict}")
    print(f"gradflow --train: {len(runs)} runs ({info.wall_seconds:.1f} s); report: {paths['report']}")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options that were given (for the report's command line)."""
    out: list[str] = []
    flags = {"train": "--train", "zero_init_residual": "--zero-init-residual", "no_shortcuts": "--no-shortcuts"}
    for key, flag in flags.items():
        if getattr(args, key, False):
            out.append(flag)
    for key in ("model", "candidate", "inits", "seeds", "batch", "dtype", "steps", "lr", "examples", "size"):
        value = getattr(args, key, None)
        if value is not None and (key not in DEFAULTS or str(value) != DEFAULTS[key] or key in ("model",)):
            out += [f"--{key}", str(value)]
    if getattr(args, "input_size", None):
        out += ["--input-size", *map(str, args.input_size)]
    if str(args.device) != DEFAULTS["device"]:
        out += ["--device", str(args.device)]
    out += ["--out", str(args.out)]
    return out


def _run_grid(args: argparse.Namespace) -> int:
    """Run the grid, write the outputs; 0 all agree, 1 some disagree, 2 bad input."""
    try:
        o = parse_options(args)
    except UsageError as exc:
        return _error(exc)
    start = time.perf_counter()

    from .runner import first_layer_gradient_vs_depth, progress_bar, run_grid
    from .writeup import RunInfo, write_all

    _one_threaded()
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
