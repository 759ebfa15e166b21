"""The tutorial's GoogLeNet / Inception sections: history, the Inception module and its two
worked examples (192 input channels, 96 output channels; 24 filters per branch, 16 after the
1x1 reductions; bias not counted), its Inception class, and Global Average Pooling.

Measured on modules (the paper's naive and reduced modules as ``exhibits.InceptionModule``,
the tutorial's class as ``exhibits.TutorialInception``, ``cnn_models``' GoogLeNet of the paper
and torchvision's) and by closed forms (``conformance.formulas``); history from ``records``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

import cnn_models

from ..formulas.layers import Tracer
from ..layer_table import build_on_meta, meta_inputs
from ._measure import meta_out_shape, meta_params, receptive_field_by_gradient, torchvision_factory
from .claim import TUTORIAL, Claim, Judgement, agree, exact, fmt
from .exhibits import InceptionModule, TutorialInception, tutorial_inception_plan
from .records import RECORDS, record
from .sections import GAP, GOOGLENET, INCEPTION_MODULE
from .vggnet import conv_stack_params

__all__ = ["CLAIMS", "GREATLY", "EXAMPLE_ARGS"]

GROUP = "tutorial: GoogLeNet / Inception"
GREATLY = 0.5  # "greatly fewer": at most half
IN_CHANNELS, OUT_CHANNELS, WIDTH, REDUCE = 192, 96, 24, 16  # the tutorial's two examples
# The tutorial's five-argument constructor fed its own pattern-(b) example: 1x1 branch, 3x3 and
# "5x5" convs and pool projection all 24 wide; the reductions it cannot set apart follow ch1x1.
EXAMPLE_ARGS: tuple[int, int, int, int, int] = (IN_CHANNELS, WIDTH, WIDTH, WIDTH, WIDTH)


# --- history --------------------------------------------------------------------------------------


def _winner() -> int:
    return int(record("ilsvrc2014-classification")["GoogLeNet"])


# --- the Inception module ---------------------------------------------------------------------------


def _paper_googlenet() -> nn.Module:
    return cnn_models.get_spec("googlenet_paper").build()


def _stacked() -> dict[str, int]:
    out = {}
    for label, factory in (("GoogLeNet of the paper (cnn_models)", _paper_googlenet),
                           ("torchvision's GoogLeNet",
                            torchvision_factory("googlenet", aux_logits=False, init_weights=True))):
        model = build_on_meta(factory)
        inst = sum(type(m).__name__ == "Inception" for m in model.modules())
        out[label] = agree(f"{label}: Inception modules", inst, len(cnn_models.googlenet.INCEPTION_WIDTHS))
    return out


def _stacked_judge(claimed: int, measured: dict[str, int]) -> Judgement:
    if all(n >= claimed for n in measured.values()):
        return Judgement(True)
    return Judgement(False, f"Inception modules: {fmt(measured)}", fmt(measured))


def _parallel_concat() -> dict[str, Any]:
    """inception (3a) of the paper's GoogLeNet (float64, CPU, 8x8 input): its branches' kernels and
    whether its output is their concatenation along the channels."""
    widths = cnn_models.googlenet.INCEPTION_WIDTHS["inception3a"]
    module = cnn_models.googlenet.Inception(IN_CHANNELS, *widths, branch3_kernel=5, batch_norm=False).double().eval()
    kernels = sorted({m.kernel_size[0] for m in module.modules() if isinstance(m, nn.Conv2d)})
    x = torch.randn(1, IN_CHANNELS, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        branches = [module.branch1(x), module.branch2(x), module.branch3(x), module.branch4(x)]
        out = module(x)
    concat = bool(torch.equal(out, torch.cat(branches, 1)))
    channels = agree("inception (3a) output channels", int(out.shape[1]), widths[0] + widths[2] + widths[4] + widths[5])
    return {"conv kernel sizes": kernels, "output = branches concatenated": concat, "output channels": channels}


def _naive_params() -> int:
    inst = meta_params(lambda: InceptionModule(IN_CHANNELS, WIDTH))
    closed = sum(conv_stack_params([IN_CHANNELS, WIDTH], k) for k in (1, 3, 5))
    return int(agree("naive Inception module weights", inst, closed))


def _reduced_plan() -> Tracer:
    t = Tracer((IN_CHANNELS, 28, 28))
    branches = []
    for kernel in (1, 3, 5):
        b = t.fork()
        if kernel > 1:
            b.conv("reduce", REDUCE, 1, bias=False)
        branches.append(b.conv("conv", WIDTH, kernel, padding=kernel // 2, bias=False))
    branches.append(t.fork().maxpool("pool", 3, 1, 1).conv("proj", WIDTH, 1, bias=False))
    return t.join_concat(branches)


def _reduced_params() -> int:
    inst = meta_params(lambda: InceptionModule(IN_CHANNELS, WIDTH, REDUCE))
    return int(agree("reduced Inception module weights", inst, _reduced_plan().plan.params))


def _channels(reduce: int | None) -> int:
    inst = meta_out_shape(lambda: InceptionModule(IN_CHANNELS, WIDTH, reduce), (IN_CHANNELS, 28, 28))[0]
    closed = 4 * WIDTH if reduce is not None else 3 * WIDTH + IN_CHANNELS  # the pool branch passes its input through
    return int(agree(f"Inception module (reduce={reduce}) output channels", inst, closed))


def _naive_channels_judge(claimed: int, measured: int) -> Judgement:
    if claimed == measured:
        return Judgement(True)
    return Judgement(
        False,
        f"the module outputs {fmt(measured)} channels: 3·{WIDTH} from its convs and the {IN_CHANNELS} its max-pool "
        f"branch passes through (Szegedy et al. 2015, Fig. 2(a)); without a pool branch it would output {3 * WIDTH}",
        f"{fmt(measured)} channels; {claimed} needs a fourth {WIDTH}-filter branch, the 1x1 after the pool that "
        "module (b) adds",
    )


def _ratio(smaller: Callable[[], int], larger: Callable[[], int]) -> float:
    return round(smaller() / larger(), 3)


def _fewer(claimed: float, measured: float) -> Judgement:
    if measured <= claimed:
        return Judgement(True)
    return Judgement(False, f"the ratio is {measured:g}, above {claimed:g}", f"a ratio of {measured:g}")


def _one_by_one_first() -> dict[str, list[int]]:
    model: Any = build_on_meta(_paper_googlenet)
    inst: dict[str, list[int]] = {}
    for branch in ("branch2", "branch3"):
        kernels = {tuple(m.kernel_size[0] for m in model.get_submodule(f"{n}.{branch}").modules()
                         if isinstance(m, nn.Conv2d)) for n in cnn_models.googlenet.INCEPTION_WIDTHS}
        if len(kernels) != 1:
            raise ValueError(f"the paper's GoogLeNet: {branch} differs across modules: {sorted(kernels)}")
        inst[branch] = list(kernels.pop())
    return agree("the paper's GoogLeNet: kernels of branches 2 and 3", inst, {"branch2": [1, 3], "branch3": [1, 5]})


# --- the tutorial's Inception class ------------------------------------------------------------------


def _class_vs_example() -> dict[str, Any]:
    """The class built with its example's widths: reductions, branch-3 kernel and conv weights."""
    model: Any = build_on_meta(lambda: TutorialInception(*EXAMPLE_ARGS))
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    plan = tutorial_inception_plan(EXAMPLE_ARGS)
    closed = sum(r.params - r.out_shape[0] for r in plan.layers if r.kind == "Conv2d")  # weights: params less biases
    reductions = [model.branch2[0].out_channels, model.branch3[0].out_channels]
    # what would build it: separate reduction widths and a 5x5 conv (the paper's module, cnn_models)
    paper = cnn_models.googlenet.Inception(IN_CHANNELS, WIDTH, REDUCE, WIDTH, REDUCE, WIDTH, WIDTH,
                                           branch3_kernel=5, batch_norm=False)
    paper_weights = sum(m.weight.numel() for m in paper.modules() if isinstance(m, nn.Conv2d))
    return {
        f"Inception{EXAMPLE_ARGS}: reductions": reductions,
        "branch-3 kernel": int(model.branch3[2].kernel_size[0]),
        "weights": agree("tutorial Inception weights", weights, closed),
        "the paper's module with reductions 16 and a 5x5 conv: weights": agree(
            "paper module weights", paper_weights, _reduced_plan().plan.params),
    }


def _class_judge(claimed: dict[str, Any], measured: dict[str, Any]) -> Judgement:
    got = {k: measured[k] for k in claimed}
    if got == claimed:
        return Judgement(True)
    paper = measured["the paper's module with reductions 16 and a 5x5 conv: weights"]
    return Judgement(
        False,
        f"its five arguments tie both reductions to ch1x1, so with the example's 24-filter 1x1 branch they are "
        f"{fmt(got[f'Inception{EXAMPLE_ARGS}: reductions'])}, not {REDUCE}, and its third branch is "
        f"{got['branch-3 kernel']}x{got['branch-3 kernel']}: {fmt(got['weights'])} weights, not 28,416",
        f"separate reduction widths and a 5x5 conv in branch 3, as in Inception(in, ch1x1, ch3x3red, ch3x3, "
        f"ch5x5red, ch5x5, pool_proj) (torchvision's signature): Inception(192, 24, 16, 24, 16, 24, 24) has "
        f"{fmt(paper)} weights",
    )


def _branch3_kernel() -> int:
    """Receptive field of the class's third branch (1x1 then k x k: k), by gradient and by the Tracer."""
    model: Any = build_on_meta(lambda: TutorialInception(*EXAMPLE_ARGS))
    kernel = int(model.branch3[2].kernel_size[0])
    small = (4, 2, 2, 2, 2)  # the receptive field does not depend on the widths
    inst = receptive_field_by_gradient(TutorialInception(*small).branch3, channels=4)
    t = Tracer((4, 21, 21))
    t.conv("0", 2, 1).conv("1", 2, kernel, padding=kernel // 2)
    agree("tutorial Inception branch-3 kernel vs its receptive field", kernel, inst)
    return int(agree("tutorial Inception branch-3 receptive field", inst, t.plan.receptive_field))


def _concat_shape() -> list[int]:
    inst = list(meta_out_shape(lambda: TutorialInception(*EXAMPLE_ARGS), (IN_CHANNELS, 28, 28)))
    return agree("tutorial Inception output shape", inst, list(tutorial_inception_plan(EXAMPLE_ARGS).out_shape))


# --- Global Average Pooling -----------------------------------------------------------------------------


def _googlenets() -> dict[str, Callable[[], nn.Module]]:
    return {
        "GoogLeNet of the paper (cnn_models)": _paper_googlenet,
        "torchvision's GoogLeNet": torchvision_factory("googlenet", aux_logits=False, init_weights=True),
    }


@functools.cache
def _head(label: str) -> dict[str, Any]:
    """The map entering the classifier's pool, the pool's output and the FC's input width (on meta)."""
    model: Any = build_on_meta(_googlenets()[label]).eval()
    seen: dict[str, list[int]] = {}

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["in"], seen["out"] = list(inputs[0].shape[1:]), list(out.shape[1:])

    handle = model.avgpool.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(*meta_inputs((3, 224, 224), batch_size=1))
    finally:
        handle.remove()
    return {"pooled map": seen["in"], "pool output": seen["out"], "fc inputs": int(model.fc.in_features)}


def _gap_adopted() -> dict[str, list[int]]:
    inst = {label: _head(label)["pool output"][1:] for label in _googlenets()}
    # Szegedy et al. 2015, Table 1: "avg pool 7x7/1" on the 7x7x1024 maps gives 1x1x1024
    return agree("GoogLeNet pooled map size", inst, dict.fromkeys(_googlenets(), [1, 1]))


def _gap_fc() -> dict[str, dict[str, int]]:
    out = {}
    for label in _googlenets():
        head = _head(label)
        c, h, w = head["pooled map"]
        out[label] = {"fc inputs": agree(f"{label}: fc inputs = channels", head["fc inputs"], c),
                      "with Flatten": c * h * w}
    return out


def _gap_fc_judge(claimed: str, measured: dict[str, dict[str, int]]) -> Judgement:
    per = "map" if all(m["fc inputs"] < m["with Flatten"] for m in measured.values()) else "pixel"
    if per == claimed:
        return Judgement(True)
    return Judgement(False, f"the FC receives one value per {per}: {fmt(measured)}", f"one value per {per}")


def _gap_op() -> dict[str, bool]:
    x = torch.randn(2, 5, 7, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gap = nn.AdaptiveAvgPool2d((1, 1))(x).flatten(1)
    means = torch.stack([torch.stack([x[n, c].sum() / x[n, c].numel() for c in range(5)]) for n in range(2)])
    rows = torch.stack([torch.cat([x[n, c, i] for c in range(5) for i in range(7)]) for n in range(2)])
    return {
        "AdaptiveAvgPool2d((1, 1)): each map averaged to 1x1": bool(torch.allclose(gap, means, rtol=0, atol=1e-12)),
        "Flatten: every pixel, map by map, row by row": bool(torch.equal(nn.Flatten()(x), rows)),
    }


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "googlenet-ilsvrc2014-winner", GROUP, TUTORIAL,
        "GoogLeNet won ILSVRC 2014.",
        1, _winner, exact(), section=GOOGLENET, evidence=RECORDS["ilsvrc2014-classification"].citation,
    ),
    Claim(
        "googlenet-name", GROUP, TUTORIAL,
        "GoogLeNet is named in homage to LeNet.",
        "LeNet", lambda: record("googlenet-name"), exact(), section=GOOGLENET,
        evidence=RECORDS["googlenet-name"].citation,
    ),
    Claim(
        "googlenet-is-inception-v1", GROUP, TUTORIAL,
        "GoogLeNet is also called Inception: it is what is called Inception v1.",
        {"architecture": "Inception", "GoogLeNet": "Inception-v1"}, lambda: record("googlenet-names"), exact(),
        section=GOOGLENET, evidence=RECORDS["googlenet-names"].citation,
    ),
    Claim(
        "googlenet-stacks-modules", GROUP, TUTORIAL,
        "GoogLeNet stacks Inception modules, one on another (at least two).",
        2, _stacked, _stacked_judge, section=INCEPTION_MODULE,
    ),
    Claim(
        "inception-parallel-concat", GROUP, TUTORIAL,
        "Inside an Inception module the input passes through conv layers of different filter sizes side by side, "
        "and their outputs are concatenated (measured on inception (3a) of the paper's GoogLeNet).",
        {"conv kernel sizes": [1, 3, 5], "output = branches concatenated": True, "output channels": 256},
        _parallel_concat, exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "plain-5x5-params", GROUP, TUTORIAL,
        "A plain 5x5 conv from 192 to 96 channels has 5·5·192·96 = 460,800 parameters (bias excluded).",
        460_800, lambda: conv_stack_params([IN_CHANNELS, OUT_CHANNELS], 5), exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "naive-inception-params", GROUP, TUTORIAL,
        "The naive module (a) on 192 channels, with 1x1, 3x3 and 5x5 convs of 24 filters each, has "
        "(1·1 + 3·3 + 5·5)·192·24 = 161,280 parameters (bias excluded).",
        161_280, _naive_params, exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "naive-inception-output-96", GROUP, TUTORIAL,
        "That naive module outputs the 96 channels the example sets as its output.",
        OUT_CHANNELS, lambda: _channels(None), _naive_channels_judge, section=INCEPTION_MODULE,
    ),
    Claim(
        "naive-vs-plain-5x5", GROUP, TUTORIAL,
        "The Inception module (a) cuts the parameters greatly against the plain 5x5 conv: 161,280 against 460,800 "
        f"('greatly': to at most {GREATLY:g} of them).",
        GREATLY, lambda: _ratio(_naive_params, lambda: conv_stack_params([IN_CHANNELS, OUT_CHANNELS], 5)), _fewer,
        section=INCEPTION_MODULE,
    ),
    Claim(
        "reduced-inception-1x1-first", GROUP, TUTORIAL,
        "Pattern (b) puts a 1x1 conv before the 3x3 and the 5x5 convs (measured on the paper's GoogLeNet).",
        {"branch2": [1, 3], "branch3": [1, 5]}, _one_by_one_first, exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "reduced-inception-params", GROUP, TUTORIAL,
        "Pattern (b) on 192 channels, with 1x1 reductions to 16 before the 3x3 and 5x5 convs and 24 filters per "
        "branch, has 28,416 parameters (bias excluded).",
        28_416, _reduced_params, exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "reduced-inception-output-96", GROUP, TUTORIAL,
        "Pattern (b) so built outputs the 96 channels the example sets.",
        OUT_CHANNELS, lambda: _channels(REDUCE), exact(), section=INCEPTION_MODULE,
    ),
    Claim(
        "reduced-vs-naive", GROUP, TUTORIAL,
        "Reducing the channels with 1x1 convs first cuts the parameters greatly: 28,416 against (a)'s 161,280 "
        f"('greatly': to at most {GREATLY:g} of them).",
        GREATLY, lambda: _ratio(_reduced_params, _naive_params), _fewer, section=INCEPTION_MODULE,
    ),
    Claim(
        "tutorial-inception-builds-example", GROUP, TUTORIAL,
        "Its Inception class implements pattern (b) as its arithmetic sets it up: with the example's widths "
        "(1x1, 3x3, 5x5 and pool branches of 24 on 192 channels) it reduces to 16 before the 3x3 and 5x5 convs "
        "and has 28,416 conv weights.",
        {f"Inception{EXAMPLE_ARGS}: reductions": [REDUCE, REDUCE], "branch-3 kernel": 5, "weights": 28_416},
        _class_vs_example, _class_judge, section=INCEPTION_MODULE, basis="implied",
    ),
    Claim(
        "tutorial-inception-5x5", GROUP, TUTORIAL,
        "Its Inception class's third branch is a 1x1 conv then a 5x5 conv (its comment and the argument ch5x5).",
        5, _branch3_kernel,
        exact("the branch's second conv has kernel_size=3 (receptive field {measured})",
              correction="kernel_size=5, padding=2 in the branch's second conv"),
        section=INCEPTION_MODULE,
    ),
    Claim(
        "tutorial-inception-concat", GROUP, TUTORIAL,
        "Its Inception class outputs ch1x1 + ch3x3 + ch5x5 + pool_proj channels at the input's height and width "
        "(torch.cat along the channels): 96 x 28 x 28 for the example's widths on a 28x28 map.",
        [4 * WIDTH, 28, 28], _concat_shape, exact(), section=INCEPTION_MODULE, basis="implied",
    ),
    Claim(
        "googlenet-gap", GROUP, TUTORIAL,
        "GoogLeNet adopted Global Average Pooling: its last maps are averaged down to 1x1.",
        dict.fromkeys(_googlenets(), [1, 1]), _gap_adopted, exact(), section=GAP,
    ),
    Claim(
        "gap-replaces-flatten", GROUP, TUTORIAL,
        "GAP takes Flatten's place between the feature maps and the fully connected layer: the FC layer "
        "receives one value per map.",
        "map", _gap_fc, _gap_fc_judge, section=GAP,
    ),
    Claim(
        "gap-vs-flatten-op", GROUP, TUTORIAL,
        "Flatten lines up every pixel of the maps in order; GAP averages each map to 1x1 and lines those up; "
        "PyTorch's nn.AdaptiveAvgPool2d((1, 1)) is GAP.",
        {"AdaptiveAvgPool2d((1, 1)): each map averaged to 1x1": True,
         "Flatten: every pixel, map by map, row by row": True},
        _gap_op, exact(), section=GAP,
    ),
)
