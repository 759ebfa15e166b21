"""The degradation experiment in miniature: plain vs residual CIFAR nets through their first steps.

He et al. 2016 (CVPR), Fig. 1 and Fig. 6 (left, middle): trained on CIFAR-10 with SGD
(momentum 0.9, weight decay 1e-4, batch 128, lr 0.1, BN after every conv, the init of He et
al. 2015), the 56-layer plain net has a *higher training error* than the 20-layer one
(degradation: an optimisation problem, not overfitting), while ResNet-56 trains to a lower
error than ResNet-20. The question here: does that ordering already show in the first few
hundred steps, on a task that runs offline in a minute?

The task (``teacher_task``): inputs x ~ N(0, 1) of shape (3, S, S); labels the argmax of a
fixed random teacher (conv 3->32, ReLU, conv 32->32, ReLU, 2x2 average pool, linear 128->10,
He init, zero biases), whose logits are standardised per class over the set so that the ten
classes are about equally frequent. A net that learns nothing stays at the chance loss
ln 10 = 2.303; the teacher itself, a two-conv net, fits the labels exactly, so the task is
well within the students' reach. The students are ``cnn_models``' ``cifar_plainN`` and
``cifar_resnetN`` as registered (10 classes, their own init); they accept any S >= 4
(global average pooling).

Training (``train_one``): SGD with momentum 0.9 and weight decay 1e-4 on every parameter
(He et al. 2016, section 4.2), constant learning rate, BN in train mode, cross-entropy loss
of each minibatch; the set is visited in a new seeded order every epoch. Recorded per step:
the minibatch loss before the update, and the gradient norm ||dL/dW|| of every conv and
linear weight (cross-entropy only; weight decay is added by the optimiser after).

Reproducible: the model is built with ``torch.manual_seed(SEED_BASE + seed)`` inside
``torch.random.fork_rng`` and the data order comes from its own seeded generator, so a run
on the CPU repeats bit for bit (the same losses) under the same seed and thread count. For a
given seed every model sees the same minibatches (a paired comparison).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from .runner import SEED_BASE, t975

__all__ = [
    "CIFAR_FAMILY",
    "DEFAULT_MODELS",
    "Ordering",
    "TrainConfig",
    "TrainRun",
    "check_trainable",
    "ordering",
    "teacher_task",
    "train_all",
    "train_one",
]

CIFAR_FAMILY = "cifar_resnet"  # cnn_models' family of cifar_resnetN and cifar_plainN
DEFAULT_MODELS = ("cifar_plain20", "cifar_plain56", "cifar_resnet20", "cifar_resnet56")
CHANCE_LOSS = math.log(10.0)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    lr: float = 0.025
    momentum: float = 0.9  # He et al. 2016, section 4.2
    weight_decay: float = 1e-4  # He et al. 2016, section 4.2
    batch: int = 32
    size: int = 8  # input S x S
    examples: int = 1024  # the training set
    final_fraction: float = 0.2  # "final loss": mean minibatch loss over the last 20% of steps
    teacher_seed: int = 7
    dtype: str = "float32"
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_trainable(name: str) -> None:
    """``UsageError`` unless ``name`` is a registered CIFAR net (cifar_resnetN / cifar_plainN)."""
    import cnn_models

    try:
        spec = cnn_models.get_spec(name)
    except KeyError as exc:
        raise UsageError(f"--model: {exc}") from None
    if spec.family != CIFAR_FAMILY:
        raise UsageError(
            f"--train: {name} is not in the CIFAR family of He et al. 2016 (family {spec.family!r}); "
            "--train runs the degradation experiment on cifar_plainN / cifar_resnetN"
        )


class Teacher(nn.Module):
    """The fixed random labeller of ``teacher_task`` (see the module docstring)."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4, 10)
        with torch.no_grad():
            for m in (self.conv1, self.conv2, self.fc):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))  # (N, 32, S, S)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 2), 1))  # (N, 10)


def teacher_task(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed training set: x of shape (examples, 3, S, S) in float32 and labels (examples,)."""
    gen = torch.Generator().manual_seed(cfg.teacher_seed)
    x = torch.randn(cfg.examples, 3, cfg.size, cfg.size, generator=gen)
    teacher = Teacher(gen)
    with torch.no_grad():
        z = teacher(x)
        z = (z - z.mean(0)) / z.std(0)  # per-class standardisation: balanced classes
    return x, z.argmax(1)


@dataclass
class TrainRun:
    model: str
    seed: int
    layers: list[str]  # conv / linear weights, forward-definition order
    losses: np.ndarray  # (steps,)
    grad_norms: np.ndarray  # (steps, layers)
    seconds: float = math.nan

    def final_loss(self, fraction: float) -> float:
        k = max(1, int(round(len(self.losses) * fraction)))
        return float(self.losses[-k:].mean())


def _weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, m.weight) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def train_one(
    name: str,
    seed: int,
    cfg: TrainConfig,
    data: tuple[torch.Tensor, torch.Tensor],
    on_step: Callable[[], None] | None = None,
) -> TrainRun:
    """Train ``name`` from its seeded init for ``cfg.steps`` steps; losses and grad norms per step."""
    import cnn_models

    start = time.perf_counter()
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED_BASE + seed)
        model = cnn_models.get_model(name)
    model = model.to(device=cfg.device, dtype=dtype).train()
    x_all, y_all = data[0].to(device=cfg.device, dtype=dtype), data[1].to(cfg.device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    weights = _weights(model)
    losses = torch.empty(cfg.steps, dtype=torch.float64, device=cfg.device)
    norms = torch.empty(cfg.steps, len(weights), dtype=torch.float64, device=cfg.device)
    order = torch.Generator().manual_seed(SEED_BASE + 1000 + seed)  # the data order: same for every model
    n = x_all.shape[0]
    perm, pos = torch.randperm(n, generator=order), 0
    for step in range(cfg.steps):
        if pos + cfg.batch > n:  # a new epoch, in a new order
            perm, pos = torch.randperm(n, generator=order), 0
        idx = perm[pos : pos + cfg.batch].to(cfg.device)
        pos += cfg.batch
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            losses[step] = loss.detach()
            norms[step] = torch.stack([torch.linalg.vector_norm(w.grad) for _, w in weights]).to(torch.float64)
        opt.step()
        if on_step is not None:
            on_step()
    return TrainRun(
        model=name, seed=seed, layers=[n for n, _ in weights], losses=losses.cpu().numpy(),
        grad_norms=norms.cpu().numpy(), seconds=time.perf_counter() - start,
    )


def train_all(
    models: Sequence[str],
    *,
    seeds: int,
    cfg: TrainConfig,
    progress: bool = True,
) -> list[TrainRun]:
    """Every model x seed, with a progress bar (one tick per step)."""
    from .runner import progress_bar

    for name in models:
        check_trainable(name)
    data = teacher_task(cfg)
    bar = progress_bar(total=len(models) * seeds * cfg.steps, desc="gradflow --train", unit="step", enabled=progress)
    runs = []
    try:
        for name in models:
            for seed in range(seeds):
                bar.set_postfix_str(f"{name} seed {seed}", refresh=False)
                runs.append(train_one(name, seed, cfg, data, on_step=bar.update))
    finally:
        bar.close()
    return runs


@dataclass
class Comparison:
    deeper: str
    shallower: str
    expected: str  # "above" (degradation, plain nets) | "at or below" (residual nets)
    difference: float  # mean over seeds of final(deeper) - final(shallower), paired by seed
    sd: float
    seeds: int
    verdict: str  # "holds" | "reversed" | "not resolved"
    per_seed: list[float] = field(default_factory=list)

    @property
    def band(self) -> float:
        """t * SE of the paired difference (95%)."""
        if self.seeds < 2 or not math.isfinite(self.sd):
            return math.nan
        return t975(self.seeds - 1) * self.sd / math.sqrt(self.seeds)


@dataclass
class Ordering:
    final: dict[str, tuple[float, float, list[float]]]  # model -> (mean, sd, per seed) of the final loss
    comparisons: list[Comparison]


def _compare(by: dict[str, dict[int, float]], deeper: str, shallower: str, expected: str) -> Comparison | None:
    if deeper not in by or shallower not in by:
        return None
    seeds = sorted(set(by[deeper]) & set(by[shallower]))
    diffs = np.array([by[deeper][s] - by[shallower][s] for s in seeds])
    mean = float(diffs.mean()) if len(diffs) else math.nan
    sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else math.nan
    c = Comparison(deeper, shallower, expected, mean, sd, len(diffs), "not resolved", [float(d) for d in diffs])
    band = c.band
    if math.isfinite(band):
        if expected == "above":
            c.verdict = "holds" if mean > band else ("reversed" if mean < -band else "not resolved")
        else:  # at or below: holds unless the deeper net is clearly above
            c.verdict = "reversed" if mean > band else "holds"
    return c


def ordering(runs: Sequence[TrainRun], fraction: float) -> Ordering:
    """Final losses per model and the paper's two comparisons (paired by seed, 95% t band)."""
    by: dict[str, dict[int, float]] = {}
    for r in runs:
        by.setdefault(r.model, {})[r.seed] = r.final_loss(fraction)
    final = {}
    for m, per in by.items():
        v = np.array([per[s] for s in sorted(per)])
        final[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, [float(x) for x in v])
    comps = []
    names = sorted(by)
    for kind, expected in (("plain", "above"), ("resnet", "at or below")):
        nets = sorted((n for n in names if n.startswith(f"cifar_{kind}")), key=lambda n: int(n.rsplit(kind, 1)[1]))
        for shallow, deep in zip(nets, nets[1:], strict=False):
            c = _compare(by, deep, shallow, expected)
            if c is not None:
                comps.append(c)
    return Ordering(final=final, comparisons=comps)
