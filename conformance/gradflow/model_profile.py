"""Per-layer gradient flow of any model at initialisation, over seeds, with its variants.

For a registered architecture (``cnn_models``) or a candidate factory: build the model with
its own init (or with every conv and linear weight re-drawn from one of ``nets.INIT_SCHEMES``)
under a fixed seed, in train mode, feed x ~ N(0, 1) of shape (batch, C, H, W), backward the
probe loss sum_i <g_i, out_i> (g_i ~ N(0, 1), one per output tensor: the backward pass then
starts from gradients of second moment 1, whatever the forward scale), and record for every
Conv2d and Linear call (``probes.Probe``):

* log E[y^2], the activation (the layer's output, before any BN or ReLU);
* log E[(dL/dy)^2], the gradient with respect to it;
* log E[(dL/dW)^2], the gradient of the layer's weight.

Where the laws reach (``reach``: conv-BN-ReLU and conv-ReLU links, convs on the input), the
prediction of each seed is recorded beside its measurement.

Variants, measured side by side: the init swapped (He et al. 2015 vs the others of
``nets.INIT_SCHEMES``), torchvision's ``zero_init_residual`` (Goyal et al. 2017, section 5.1)
where the builder offers it, and the plain twin where the family has one: He et al. 2016
section 4.2 trains ``cifar_resnetN`` against ``cifar_plainN``, the same layers without the
shortcuts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import UsageError
from .nets import INIT_SCHEMES, init_weight_
from .probes import LayerStats, Probe, log_mean_square
from .reach import SitePrediction, SiteTracer, predict_sites
from .runner import SEED_BASE
from .theory import lsq_slope

__all__ = [
    "OWN_INIT",
    "LayerProfile",
    "ModelProfile",
    "Variant",
    "measure_variant",
    "output_tensors",
    "plain_twin",
    "variants",
]

OWN_INIT = "own"  # the model's own initialisation (its builder's)


@dataclass(frozen=True)
class Variant:
    """One model to measure: where it comes from and what was changed."""

    label: str  # unique within a run, e.g. "resnet18 [init naive]"
    base: str  # the registered name or candidate it varies
    change: str  # "" (as built), "init naive", "zero_init_residual", "shortcuts removed", ...
    factory: Callable[[], nn.Module] = field(compare=False, repr=False)
    init: str = OWN_INIT
    reference: str | None = None  # the variant this one is compared with in the sentence


def _registered(name: str) -> Any:
    import cnn_models

    try:
        return cnn_models.get_spec(name)
    except KeyError as exc:
        raise UsageError(f"--model: {exc}") from None


def plain_twin(name: str) -> str | None:
    """The registered architecture with the same config but shortcuts toggled (``config['plain']``):
    ``cifar_resnet56`` <-> ``cifar_plain56``; ``None`` when the family has none."""
    import cnn_models

    spec = _registered(name)
    cfg = spec.config
    if "plain" not in cfg:
        return None
    for other in cnn_models.list_models():
        o = cnn_models.get_spec(other)
        if o.family != spec.family or "plain" not in o.config:
            continue
        if bool(o.config["plain"]) != bool(cfg["plain"]) and all(
            o.config.get(k) == v for k, v in cfg.items() if k not in ("plain", "shortcut")
        ):
            return other
    return None


def _takes(builder: Callable[..., Any], kwarg: str) -> bool:
    try:
        return kwarg in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


def variants(
    *,
    models: Sequence[str] = (),
    candidate: tuple[str, Callable[[], nn.Module]] | None = None,
    inits: Sequence[str] = (OWN_INIT,),
    zero_init_residual: bool = False,
    no_shortcuts: bool = False,
) -> list[Variant]:
    """The variants of a run: per model, one per init, then ``zero_init_residual`` and the
    plain twin when asked, for the models that have them. ``UsageError`` (one line) when no
    model has an asked-for variant, or a name is unknown."""
    for init in inits:
        if init != OWN_INIT and init not in INIT_SCHEMES:
            raise UsageError(f"--inits: unknown value {init!r}; "
                             f"expected {OWN_INIT} or one of {', '.join(INIT_SCHEMES)}")
    bases: list[tuple[str, Callable[[], nn.Module], Any]] = []
    if candidate is not None:
        if zero_init_residual or no_shortcuts:
            raise UsageError(
                "--zero-init-residual and --no-shortcuts build variants of a registered architecture "
                "(--model NAME); a --candidate factory takes no arguments"
            )
        bases.append((candidate[0], candidate[1], None))
    for name in models:
        spec = _registered(name)
        bases.append((name, spec.build, spec))
    if zero_init_residual and not any(spec is not None and _takes(spec.builder, "zero_init_residual")
                                      for _, _, spec in bases):
        raise UsageError(
            f"--zero-init-residual: no builder among {', '.join(b[0] for b in bases)} has a zero_init_residual option "
            "(torchvision-style ResNets have it: resnet18 ... wide_resnet101_2)"
        )
    if no_shortcuts and not any(spec is not None and plain_twin(label) for label, _, spec in bases):
        raise UsageError(
            f"--no-shortcuts: none of {', '.join(b[0] for b in bases)} has a plain twin in the registry "
            "(cifar_resnetN <-> cifar_plainN have one)"
        )
    out: list[Variant] = []
    for label, factory, spec in bases:
        own = None
        for init in inits:
            change = "" if init == OWN_INIT else f"init {init}"
            v = Variant(
                label=label if not change else f"{label} [{change}]", base=label, change=change,
                factory=factory, init=init, reference=None if own is None else own,
            )
            own = own or v.label
            out.append(v)
        if zero_init_residual and spec is not None and _takes(spec.builder, "zero_init_residual"):
            out.append(Variant(
                label=f"{label} [zero_init_residual]", base=label, change="zero_init_residual",
                factory=_partial(spec.build, zero_init_residual=True), reference=label,
            ))
        twin = plain_twin(label) if no_shortcuts and spec is not None else None
        if twin is not None:
            removed = not bool(spec.config["plain"])
            out.append(Variant(
                label=f"{twin} ({label} with shortcuts {'removed' if removed else 'added'})", base=label,
                change="shortcuts removed" if removed else "shortcuts added",
                factory=_registered(twin).build, reference=label,
            ))
    labels = [v.label for v in out]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise UsageError(f"the same model is asked for twice: {', '.join(twice)}")
    return out


def _partial(fn: Callable[..., nn.Module], **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return fn(**kwargs)

    return build


# --- one seed ---------------------------------------------------------------------------------


def output_tensors(out: Any) -> list[torch.Tensor]:
    """The tensors a forward pass returned: itself, or those in a tuple / list / dict (one level,
    e.g. Inception v3's ``InceptionOutputs(logits, aux_logits)`` in train mode)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


@dataclass
class SeedProfile:
    seed: int
    records: list[LayerStats]  # Conv2d and Linear calls, forward order
    kinds: list[str]  # "Conv2d" | "Linear" per record
    weight_grad: list[float]  # log E[(dL/dW)^2] per record (nan: no gradient)
    predictions: dict[str, SitePrediction]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def build_seeded(variant: Variant, seed: int, *, dtype: torch.dtype, device: str) -> nn.Module:
    """The variant's model for ``seed`` (global RNG untouched), in train mode."""
    from ..loading import build_candidate

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED_BASE + seed)
        model = build_candidate(variant.factory, variant.base)
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise UsageError(f"{variant.base}: the model has no Conv2d layer; gradflow profiles conv nets")
    model = model.to(device=device, dtype=dtype).train()
    if variant.init != OWN_INIT:
        gen = torch.Generator().manual_seed(SEED_BASE + seed)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init_weight_(m.weight, variant.init, gen)
    return model


def measure_seed(
    variant: Variant, seed: int, *, input_size: tuple[int, ...], batch: int, dtype: torch.dtype, device: str
) -> SeedProfile:
    """Build, probe and backward one seeded net of ``variant``."""
    from ..layer_table import run_forward

    model = build_seeded(variant, seed, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(SEED_BASE + seed)
    x = torch.randn((batch, *input_size), generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    with Probe(model) as probe, SiteTracer(model, x) as tracer:
        try:
            out = run_forward(model, [x])
        except Exception as exc:  # ForwardError: one line naming the module that raised
            raise UsageError(f"{variant.base}: {_one_line(str(exc))}") from exc
        outs = output_tensors(out)
        if not outs:
            raise UsageError(f"{variant.base}: the forward pass returned {type(out).__name__}, no tensor")
        sites = tracer.sites(outs)
        loss = sum((torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t) * t).sum() for t in outs)
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        records = list(probe.records)
    named = dict(model.named_modules())
    wgrad = []
    for r in records:
        grad = getattr(named[r.name].weight, "grad", None)
        wgrad.append(log_mean_square(grad) if grad is not None else math.nan)
    return SeedProfile(
        seed=seed, records=records, kinds=[kinds[r.name] for r in records], weight_grad=wgrad,
        predictions=predict_sites(sites, records),
    )


# --- over seeds -------------------------------------------------------------------------------


@dataclass
class LayerProfile:
    """One Conv2d / Linear call over seeds (arrays of length ``seeds``; natural logs)."""

    key: str
    kind: str
    shape: tuple[int, ...]
    act: np.ndarray  # log E[y^2]
    grad: np.ndarray  # log E[(dL/dy)^2]
    wgrad: np.ndarray  # log E[(dL/dW)^2]
    pred_act: np.ndarray  # nan where not reached
    pred_grad: np.ndarray
    anchor: bool  # pred_grad is the measurement here (a chain's last conv)
    law: str

    @staticmethod
    def _ms(a: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation over seeds: nan where a seed overflowed (nan or +inf), -inf
        where a seed's tensor is exactly zero (log 0: a zero-initialised branch, P10)."""
        if np.any(np.isnan(a)) or np.any(a == math.inf):
            return math.nan, math.nan
        if np.any(a == -math.inf):
            return -math.inf, math.nan
        return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0

    def mean_sd(self, what: str) -> tuple[float, float]:
        return self._ms(getattr(self, what))

    @property
    def reached_forward(self) -> bool:
        return bool(np.all(np.isfinite(self.pred_act)))

    @property
    def reached_backward(self) -> bool:
        return bool(np.all(np.isfinite(self.pred_grad))) and not self.anchor


@dataclass
class ModelProfile:
    variant: Variant
    input_size: tuple[int, ...]
    batch: int
    dtype: str
    seeds: int
    layers: list[LayerProfile]
    seconds: float = math.nan

    @property
    def convs(self) -> list[LayerProfile]:
        return [p for p in self.layers if p.kind == "Conv2d"]

    @property
    def finite(self) -> bool:
        """No overflow (nan or +inf) anywhere; exact zeros (-inf in log) are measurements."""
        return all(
            not (np.any(np.isnan(a)) or np.any(a == math.inf)) for p in self.layers for a in (p.act, p.grad)
        )

    @property
    def zero_grad_layers(self) -> list[str]:
        """Layers whose gradient with respect to the output is exactly zero in some seed."""
        return [p.key for p in self.layers if np.any(p.grad == -math.inf)]

    @property
    def _nonzero_convs(self) -> list[LayerProfile]:
        return [p for p in self.convs if np.all(np.isfinite(p.grad))]

    def first_to_last_conv_grad(self) -> tuple[float, float]:
        """log RMS(dL/dy) at the first conv over the last conv (both with a finite, non-zero
        gradient in every seed): mean and sd over seeds."""
        c = self._nonzero_convs
        if len(c) < 2:
            return math.nan, math.nan
        return LayerProfile._ms(0.5 * (c[0].grad - c[-1].grad))

    def predicted_first_to_last_conv_grad(self) -> float:
        """The same ratio by the laws, when one chain reaches from the last conv to the first."""
        c = self._nonzero_convs
        if len(c) < 2 or not (c[0].reached_backward and c[-1].anchor):
            return math.nan
        return float(np.mean(0.5 * (c[0].pred_grad - c[-1].grad)))

    def slope(self, what: str) -> float:
        """Least-squares slope of the mean log against the layer index (conv and linear)."""
        y = np.array([p.mean_sd(what)[0] for p in self.layers])
        y = y[np.isfinite(y)] if what != "act" else y  # exact zeros leave the gradient fits
        return lsq_slope(y) if len(y) > 1 and np.all(np.isfinite(y)) else math.nan

    def deviation(self, what: str) -> tuple[int, float, float]:
        """(layers reached, median and max |measured - predicted| of the mean logs)."""
        errs = []
        for p in self.layers:
            if what == "act" and p.reached_forward:
                errs.append(p.mean_sd("act")[0] - float(np.mean(p.pred_act)))
            elif what == "grad" and p.reached_backward:
                errs.append(p.mean_sd("grad")[0] - float(np.mean(p.pred_grad)))
        e = np.abs(np.array([x for x in errs if math.isfinite(x)]))
        if not len(e):
            return 0, math.nan, math.nan
        return len(e), float(np.median(e)), float(e.max())


def measure_variant(
    variant: Variant,
    *,
    seeds: int,
    input_size: tuple[int, ...],
    batch: int = 8,
    dtype: str = "float64",
    device: str = "cpu",
    on_seed: Callable[[], None] | None = None,
) -> ModelProfile:
    """Profile ``variant`` over ``seeds`` nets (``UsageError`` if it cannot be built or run)."""
    import time

    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    start = time.perf_counter()
    runs = []
    for seed in range(seeds):
        runs.append(measure_seed(variant, seed, input_size=input_size, batch=batch, dtype=torch_dtype, device=device))
        if on_seed is not None:
            on_seed()
    keys = [r.key for r in runs[0].records]
    for run in runs[1:]:
        if [r.key for r in run.records] != keys:
            raise UsageError(f"{variant.base}: the layers called differ between seeds; gradflow needs one architecture")
    layers = []
    for i, key in enumerate(keys):
        recs = [run.records[i] for run in runs]
        preds = [run.predictions.get(key) for run in runs]
        nan = np.full(len(runs), math.nan)
        layers.append(LayerProfile(
            key=key, kind=runs[0].kinds[i], shape=recs[0].shape,
            act=np.array([r.act_log_second_moment for r in recs]),
            grad=np.array([r.grad_log_second_moment if r.grad_seen else math.nan for r in recs]),
            wgrad=np.array([run.weight_grad[i] for run in runs]),
            pred_act=np.array([p.forward for p in preds]) if all(preds) else nan,  # type: ignore[union-attr]
            pred_grad=np.array([p.backward for p in preds]) if all(preds) else nan,  # type: ignore[union-attr]
            anchor=bool(preds[0] is not None and preds[0].anchor),
            law=preds[0].law if preds[0] is not None else "linear layer: outside the laws' reach",
        ))
    return ModelProfile(
        variant=variant, input_size=tuple(input_size), batch=batch, dtype=dtype, seeds=seeds, layers=layers,
        seconds=time.perf_counter() - start,
    )
