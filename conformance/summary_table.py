"""Per-layer summaries in torchsummary's layout, computed on the ``meta`` device.

The printed table is byte-for-byte what ``torchsummary.summary(model, input_size)``
(torchsummary 1.5.1, sksq96/pytorch-summary) prints for the same model and input, but no
weight or activation is allocated: the model is built (or copied) on meta and one forward
pass at batch 2 records every hooked call. The rules it reproduces, as observed facts of
torchsummary 1.5.1's behaviour:

* which modules get a row: every module reached by ``model.apply`` except the root, any
  ``nn.Sequential`` (subclasses included, e.g. torchvision's ``Conv2dNormActivation``) and
  any ``nn.ModuleList``; a module reached along *k* parent paths is hooked *k* times, so
  each of its calls makes *k* rows. Rows follow the order in which calls finish (a block
  comes after its children) and a module called twice makes two rows;
* the label is the last dotted part of ``str(type(module))`` and a running number over *all*
  rows (``Conv2d-1``, ``BatchNorm2d-2``, ``ReLU-3``): the number is the row's position, not a
  per-class count;
* the shape is the output's size with dim 0 replaced by ``batch_size`` (default ``-1``);
  a tuple/list output shows one ``[-1, ...]`` per element, always with ``-1``;
* ``Param #`` counts only ``module.weight`` and ``module.bias`` (when they have a ``size``),
  not other parameters, and not children's; the row is *trainable* only if the module has a
  ``weight`` whose ``requires_grad`` is set (then weight and bias count as trainable);
  a bias without a weight counts as non-trainable;
* sizes in MB assume 4 bytes per number: input ``|prod(input_size) * batch_size|``; the
  forward/backward size is ``|2 * sum(prod(shape))|`` over rows, the products taken over the
  printed shapes *including* the ``-1`` batch entries (so a tuple output of two tensors adds
  a positive product while plain tensors add negative ones); params ``total_params``;
  the estimated total is params + forward/backward + input, in that order of addition;
  everything divided by ``1024 ** 2`` and printed with ``%0.2f``.

Where torchsummary itself crashes (an output that is neither a tensor nor a list/tuple of
tensors, a 0-d output, modules called without positional arguments, several inputs of
different ranks, a model with no row at all), this renderer still answers: non-tensor
outputs show as ``[]`` (an empty product, 1, in the sizes, as numpy's ``prod([])`` for an
empty tuple output), several input sizes multiply (as torchsummary's ``np.prod`` over them
does), and no row means zero totals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.modules.module import register_module_forward_hook

from .formulas.layers import Plan
from .layer_table import ForwardError, meta_inputs, meta_pass, run_forward

__all__ = ["Summary", "SummaryRow", "plan_text", "summarize", "summary_text"]

BYTES_PER_NUMBER = 4.0  # torchsummary assumes float32 whatever the dtype
MB = 1024.0**2
RULE = "-" * 64
DOUBLE_RULE = "=" * 64

# A printed output shape: one list of ints, or a list of them (tuple/list outputs).
Shape = list[int] | list[list[int]]


@dataclass(frozen=True)
class SummaryRow:
    label: str  # "Conv2d-1": class name and running row number
    name: str  # qualified module name (not printed; for error messages and tests)
    output_shape: Shape  # as printed, batch entry included
    params: int  # weight.numel() + bias.numel(), torchsummary's count
    trainable: bool | None  # weight.requires_grad; None when the module has no weight

    @property
    def size_product(self) -> int:
        """torchsummary's ``np.prod`` of the printed shape (batch entries included)."""
        shape = self.output_shape
        if shape and isinstance(shape[0], list):
            return math.prod(d for sub in shape for d in sub)
        return math.prod(shape)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Summary:
    rows: tuple[SummaryRow, ...]
    input_sizes: tuple[tuple[int, ...], ...]
    batch_size: int

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.params for r in self.rows if r.trainable)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def input_mb(self) -> float:
        numbers = math.prod(d for size in self.input_sizes for d in size)
        return abs(numbers * self.batch_size * BYTES_PER_NUMBER / MB)

    @property
    def forward_backward_mb(self) -> float:
        # x2: activations and their gradients
        return abs(2.0 * sum(r.size_product for r in self.rows) * BYTES_PER_NUMBER / MB)

    @property
    def params_mb(self) -> float:
        return abs(self.total_params * BYTES_PER_NUMBER / MB)

    @property
    def total_mb(self) -> float:
        return self.params_mb + self.forward_backward_mb + self.input_mb

    def lines(self) -> list[str]:
        out = [RULE, _columns("Layer (type)", "Output Shape", "Param #"), DOUBLE_RULE]
        out += [_columns(r.label, str(r.output_shape), f"{r.params:,}") for r in self.rows]
        out += [
            DOUBLE_RULE,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            RULE,
            f"Input size (MB): {self.input_mb:0.2f}",
            f"Forward/backward pass size (MB): {self.forward_backward_mb:0.2f}",
            f"Params size (MB): {self.params_mb:0.2f}",
            f"Estimated Total Size (MB): {self.total_mb:0.2f}",
            RULE,
        ]
        return out

    def render(self) -> str:
        """The table exactly as torchsummary prints it (each line ends with a newline)."""
        return "".join(line + "\n" for line in self.lines())

    __str__ = render


def _columns(label: str, shape: str, params: str) -> str:
    # label right-aligned in 20, two spaces, shape in 25, one space, count in 15
    return f"{label:>20}  {shape:>25} {params:>15}"


def class_label(module: nn.Module) -> str:
    """The class name as torchsummary derives it: last dotted part of ``str(type(m))``.

    For ``<class 'torchvision.models.resnet.BasicBlock'>`` that is ``BasicBlock``; it is the
    last part of the qualified name for any class defined in a named module.
    """
    return _class_label(type(module))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=1024)
def _class_label(cls: type) -> str:
    text = str(cls)
    tail = text[text.rfind(".") + 1 :]
    quote = tail.find("'")
    return tail if quote < 0 else tail[:quote]


def _printed_shape(output: object, batch_size: int) -> Shape:
    if isinstance(output, torch.Tensor):
        dims = list(output.shape)
        return [batch_size, *dims[1:]] if dims else []
    if isinstance(output, (tuple, list)):
        return [[-1, *o.shape[1:]] if isinstance(o, torch.Tensor) else [] for o in output]
    return []


def _weight_bias(module: nn.Module) -> tuple[int, bool | None]:
    count, trainable = 0, None
    weight = getattr(module, "weight", None)
    if hasattr(weight, "size"):
        count += math.prod(weight.size())  # type: ignore[union-attr]
        trainable = bool(getattr(weight, "requires_grad", False))
    bias = getattr(module, "bias", None)
    if hasattr(bias, "size"):
        count += math.prod(bias.size())  # type: ignore[union-attr]
    return count, trainable


def _is_hooked(module: nn.Module, root: nn.Module) -> bool:
    return module is not root and not isinstance(module, (nn.Sequential, nn.ModuleList))


def summarize(
    model: nn.Module | Callable[[], nn.Module],
    input_size: Sequence[int] | Sequence[Sequence[int]] = (3, 224, 224),
    *,
    batch_size: int = -1,
    train: bool | None = None,
) -> Summary:
    """torchsummary's table for ``model`` at ``input_size``, computed on meta.

    ``model`` is a module (one on meta is used as it is, its train/eval flags restored and
    no hook left behind; any other is copied to meta, the original untouched) or a
    zero-argument factory (built on meta). ``input_size`` is one size ``(C, H, W)`` or a
    list of sizes for a model with several inputs. ``batch_size`` is what the shapes and the
    input size show (torchsummary's argument: ``-1`` by default); the pass itself runs at
    batch 2, as torchsummary's does. ``train`` sets the mode of the pass; ``None`` keeps the model's own
    (torchsummary runs the model in whatever mode it is in: train mode for a fresh model).
    """
    with meta_pass(model, train) as module:
        return _summarize(module, input_size, batch_size)


def _summarize(module: nn.Module, input_size: Sequence[int] | Sequence[Sequence[int]], batch_size: int) -> Summary:
    """One pass with torchsummary's hooks: one forward hook per module and per parent path it
    is reached by (``Module.apply``), the root and containers left out. They are one global
    forward hook here, which counts those paths (registering a hook on each of GoogLeNet's 200
    modules and removing it costs about a tenth of its pass). The rows are the same, with one
    exception: torch runs global hooks before a module's own, so where the model carries a
    forward hook that replaces a module's output, the row shows the module's own output
    (torchsummary's hook, registered last, sees the replacement)."""
    seen: list[tuple[nn.Module, Shape]] = []  # (module, printed shape) per hook call; rows made after the pass
    paths: dict[int, int] = {}  # id(module) -> the hooks torchsummary registers on it

    def count(mod: nn.Module) -> None:
        if _is_hooked(mod, module):
            paths[id(mod)] = paths.get(id(mod), 0) + 1

    def hook(mod: nn.Module, _inp: object, out: object) -> None:
        n = paths.get(id(mod))
        if n:
            seen.extend([(mod, _printed_shape(out, batch_size))] * n)

    module.apply(count)
    inputs = meta_inputs(input_size, batch_size=2)
    handle = register_module_forward_hook(hook)
    try:
        run_forward(module, inputs)
    except ForwardError as exc:
        exc.rows = _rows(module, seen)
        raise
    finally:
        handle.remove()
    rows = _rows(module, seen)
    return Summary(tuple(rows), tuple(tuple(x.shape[1:]) for x in inputs), batch_size)


def _rows(root: nn.Module, seen: Sequence[tuple[nn.Module, Shape]]) -> list[SummaryRow]:
    names = {id(m): n for n, m in root.named_modules(remove_duplicate=False)}
    rows = []
    for i, (mod, shape) in enumerate(seen, 1):
        params, trainable = _weight_bias(mod)
        rows.append(SummaryRow(f"{class_label(mod)}-{i}", names.get(id(mod), "?"), shape, params, trainable))
    return rows


def summary_text(
    model: nn.Module | Callable[[], nn.Module],
    input_size: Sequence[int] | Sequence[Sequence[int]] = (3, 224, 224),
    *,
    batch_size: int = -1,
    train: bool | None = None,
) -> str:
    """``summarize(...).render()``: the text torchsummary would print."""
    return summarize(model, input_size, batch_size=batch_size, train=train).render()


PLAN_RULE = "-" * 101
PLAN_DOUBLE_RULE = "=" * 101


def plan_text(plan: Plan, title: str, input_size: Sequence[int], batch_size: int = -1) -> str:
    """A closed-form plan (``conformance.formulas.plan_for``) as a per-layer table.

    No module is built and no pass runs: every row comes from the architecture's config
    through the layer formulas, so this is the spec's claim about the model, the table the
    gate holds the built model to (``closed_form_layers``). Rows are the layers the family's
    plan traces, in config order (an activation applied as a function, such as GoogLeNet's
    ``F.relu``, has no row); shapes show ``batch_size`` first, as ``summarize`` does.
    """
    def row(name: str, kind: str, shape: str, params: str, macs: str) -> str:
        return f"{name:<34} {kind:<18} {shape:>20} {params:>11} {macs:>14}"

    out = [
        f"{title}: closed form from the spec's config at input {tuple(input_size)}, no module built",
        PLAN_RULE,
        row("Layer", "Type", "Output Shape", "Param #", "MACs"),
        PLAN_DOUBLE_RULE,
    ]
    out += [row(layer.name, layer.kind, str([batch_size, *layer.out_shape]), f"{layer.params:,}", f"{layer.macs:,}")
            for layer in plan.layers]
    parametric = sum(1 for layer in plan.layers if layer.params)
    out += [
        PLAN_DOUBLE_RULE,
        f"Total params: {plan.params:,}",
        f"Total MACs per sample: {plan.macs:,} (Conv2d and Linear multiply-adds, bias excluded)",
        f"Output shape: {[batch_size, *plan.out_shape]}",
        f"Receptive field: {plan.receptive_field} px along the deepest path, any global pool included "
        f"(jump {plan.jump})",
        f"Layers: {len(plan.layers)} rows, {parametric} with parameters",
        PLAN_RULE,
    ]
    return "".join(line + "\n" for line in out)
