"""``gradflow --train``: reproducible runs, the paper's comparisons judged with the seeds' spread.

Oracles: bit-for-bit equality of two CPU runs under one seed (and inequality under another);
the paired-difference verdict worked out by hand (mean, sd, Student t 97.5% quantile for
2 degrees of freedom, 4.303, from the standard table); the teacher task's class balance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.gradflow.training import TrainConfig, TrainRun, ordering, teacher_task, train_one

TINY = TrainConfig(steps=3, batch=8, size=8, examples=16)


def test_a_run_repeats_bit_for_bit_under_its_seed() -> None:
    data = teacher_task(TINY)
    a = train_one("cifar_plain20", 0, TINY, data)
    b = train_one("cifar_plain20", 0, TINY, data)
    c = train_one("cifar_plain20", 1, TINY, data)
    assert a.losses.shape == (3,) and a.grad_norms.shape == (3, 20)  # 19 convs + fc
    assert np.array_equal(a.losses, b.losses) and np.array_equal(a.grad_norms, b.grad_norms)
    assert not np.array_equal(a.losses, c.losses)
    assert np.all(np.isfinite(a.losses)) and np.all(a.grad_norms > 0)


def test_the_teacher_task_is_fixed_and_balanced() -> None:
    cfg = TrainConfig(examples=1000)
    x, y = teacher_task(cfg)
    x2, y2 = teacher_task(cfg)
    assert x.shape == (1000, 3, 8, 8) and bool((y == y2).all()) and bool((x == x2).all())
    counts = np.bincount(y.numpy(), minlength=10)
    assert counts.min() >= 50 and counts.max() <= 150, counts  # standardised logits: ~100 per class


def _runs(model: str, finals: list[float]) -> list[TrainRun]:
    return [TrainRun(model, s, ["conv1"], np.full(10, f), np.ones((10, 1))) for s, f in enumerate(finals)]


@pytest.mark.parametrize(
    "plain56,resnet56,plain_verdict,resnet_verdict",
    [
        ([2.3, 2.35, 2.4], [1.1, 0.9, 1.05], "holds", "holds"),  # +0.3, +0.35, +0.4 ; +0.1, -0.1, +0.05
        ([2.0, 2.1, 1.95], [1.5, 1.6, 1.55], "not resolved", "reversed"),  # 0, +0.1, -0.05 ; +0.5, +0.6, +0.55
        ([1.7, 1.8, 1.75], [1.0, 1.0, 1.0], "reversed", "holds"),  # -0.3, -0.2, -0.25
    ],
)
def test_the_comparisons_are_paired_and_judged_with_a_t_band(
    plain56: list[float], resnet56: list[float], plain_verdict: str, resnet_verdict: str
) -> None:
    runs = (_runs("cifar_plain20", [2.0, 2.0, 2.0]) + _runs("cifar_plain56", plain56)
            + _runs("cifar_resnet20", [1.0, 1.0, 1.0]) + _runs("cifar_resnet56", resnet56))
    order = ordering(runs, 0.2)
    plain, res = order.comparisons
    assert (plain.deeper, plain.shallower, plain.expected) == ("cifar_plain56", "cifar_plain20", "above")
    assert (res.deeper, res.shallower, res.expected) == ("cifar_resnet56", "cifar_resnet20", "at or below")
    diffs = np.array(plain56) - 2.0
    assert plain.difference == pytest.approx(diffs.mean())
    assert plain.band == pytest.approx(4.303 * diffs.std(ddof=1) / math.sqrt(3), rel=1e-3)
    assert (plain.verdict, res.verdict) == (plain_verdict, resnet_verdict)
