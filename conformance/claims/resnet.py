"""The tutorial's ResNet sections, less the gradient measurements (``gradients``): what the
residual module was proposed for and what its shortcut skips, the bottleneck, who proposed He
initialisation and BN, the variations, and the comments of the torchvision listing it prints.

Measured on torchvision's ResNets (the listing the tutorial reproduces, as it says) and
``cnn_models``' CIFAR ResNet, on meta unless a forward pass needs values (float64, CPU);
closed forms from ``conformance.formulas`` and He et al. 2016, Table 1; history from ``records``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

import cnn_models
from cnn_models import InitScheme
from cnn_models.cifar_resnet import cifar_resnet

from ..check import torchvision_weights_info
from ..formulas import spec_plan
from ..init_check import init_failures
from ..layer_table import build_on_meta
from ._measure import meta_params, torchvision_factory
from .claim import CONDITIONAL, TUTORIAL, Claim, ClaimError, Judgement, agree, exact, fmt
from .records import RECORDS, record
from .sections import BN, BOTTLENECK, HE_INIT, RESIDUAL, RESNET_VARIANTS
from .tables import TOTALS, printed

__all__ = ["CLAIMS", "DEPTHS"]

GROUP = "tutorial: ResNet"
# He et al. 2016, Table 1: blocks per stage of the ImageNet ResNets; weighted layers per block
DEPTHS = {"resnet18": ([2, 2, 2, 2], 2), "resnet34": ([3, 4, 6, 3], 2), "resnet50": ([3, 4, 6, 3], 3),
          "resnet101": ([3, 4, 23, 3], 3), "resnet152": ([3, 8, 36, 3], 3)}
CIFAR_DEEPEST = 1202  # He et al. 2016, Section 4.2: n = 200, 6n + 2 layers


def _weighted_layers(model: nn.Module) -> int:
    """Convs and fully connected layers off the shortcuts (the paper's depth: projections do not count)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) and "downsample" not in n and "shortcut" not in n
               for n, m in model.named_modules())


# --- the residual module --------------------------------------------------------------------------


def _deeper_judge(claimed: dict[str, str], measured: dict[str, float]) -> Judgement:
    got = {
        "plain": "lower" if measured["plain-34"] < measured["plain-18"] else "higher",
        "residual": "lower" if measured["ResNet-34"] < measured["ResNet-18"] else "higher",
    }
    ok = {k: got[k] == v for k, v in claimed.items()}
    if all(ok.values()):
        return Judgement(True)
    if not any(ok.values()):
        return Judgement(False, f"going from 18 to 34 layers the error gets {fmt(got)}", fmt(got))
    return Judgement(
        CONDITIONAL,
        f"with shortcuts 34 layers beat 18 (top-1 error {measured['ResNet-34']}% vs {measured['ResNet-18']}%); "
        f"without them 34 layers do worse ({measured['plain-34']}% vs {measured['plain-18']}%)",
        "for residual nets; deeper plain nets get worse (the degradation problem the residual module answers)",
    )


def _problem_judge(claimed: str, measured: str) -> Judgement:
    if claimed == measured:
        return Judgement(True)
    return Judgement(
        False,
        f"the ResNet paper addresses {measured}: deeper plain nets with BN reach a higher training error, "
        "and it argues that this is unlikely to be caused by vanishing gradients",
        f"proposed for the {measured} problem (He et al. 2016, Section 1, Fig. 1)",
    )


def _skipped() -> dict[str, Any]:
    """Convs on the residual branch of each block type and how the shortcut joins (float64, eval)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    gen = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    joins = set()
    for label, block, c in (("BasicBlock", BasicBlock(8, 8), 8), ("Bottleneck", Bottleneck(16, 4), 16)):
        block = block.double().eval()
        out[label] = sum(isinstance(m, nn.Conv2d) for m in block.modules())
        x = torch.rand(1, c, 5, 5, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            for p in block.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) if label == "BasicBlock" else \
                block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
            joins.add("addition" if torch.allclose(block(x), torch.relu(branch + x), rtol=0, atol=1e-12) else "other")
    closed = {"BasicBlock": 2, "Bottleneck": 3}  # He et al. 2016, Table 1: [3x3, 3x3] and [1x1, 3x3, 1x1]
    agree("convs per residual branch", {k: out[k] for k in closed}, closed)
    out["join"] = joins.pop() if len(joins) == 1 else "other"
    return out


def _skipped_judge(claimed: dict[str, Any], measured: dict[str, Any]) -> Judgement:
    if claimed == measured:
        return Judgement(True)
    return Judgement(
        False,
        f"the shortcut joins (by {measured['join']}) the output of the {measured['BasicBlock']}nd conv of a "
        f"BasicBlock and of the {measured['Bottleneck']}rd of a Bottleneck, not the next one",
        f"{measured['BasicBlock']} convs ahead (BasicBlock, ResNet-18/34) or {measured['Bottleneck']} "
        "(Bottleneck, ResNet-50/101/152); He et al. 2016, Section 3.2, saw no advantage in a one-layer branch",
    )


# --- the bottleneck --------------------------------------------------------------------------------------


def _bottleneck_params() -> dict[str, int]:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    def weights(factory: Any) -> int:
        return sum(m.weight.numel() for m in build_on_meta(factory).modules() if isinstance(m, nn.Conv2d))

    inst = {
        "Bottleneck 256→64→64→256": weights(lambda: Bottleneck(256, 64)),
        "BasicBlock 256→256→256": weights(lambda: BasicBlock(256, 256)),
        "BasicBlock 64→64→64 (He et al. Fig. 5, left)": weights(lambda: BasicBlock(64, 64)),
    }
    closed = [256 * 64 + 9 * 64 * 64 + 64 * 256, 2 * 9 * 256 * 256, 2 * 9 * 64 * 64]
    return agree("bottleneck vs basic block conv weights", inst, dict(zip(inst, closed, strict=True)))


def _bottleneck_judge(claimed: str, measured: dict[str, int]) -> Judgement:
    values = list(measured.values())
    got = "fewer" if all(values[0] < v for v in values[1:]) else "not fewer"
    if got == claimed:
        return Judgement(True)
    return Judgement(False, f"conv weights: {fmt(measured)}", got)


def _bottleneck_shape() -> dict[str, int]:
    from torchvision.models.resnet import Bottleneck

    model = build_on_meta(torchvision_factory("resnet50"))
    blocks: list[Any] = [m for m in model.modules() if isinstance(m, Bottleneck)]
    shapes = [(b.conv1.in_channels, b.conv2.out_channels, b.conv3.out_channels) for b in blocks]
    inst = {
        "blocks": len(shapes),
        "narrower in the middle": sum(mid < c_in for c_in, mid, _ in shapes),
        "leaving at the input width": sum(out == c_in for c_in, _, out in shapes),
    }
    # closed form: torchvision's widths (64, 128, 256, 512 x 4 out; [3, 4, 6, 3] blocks): the first block of
    # each stage takes the previous stage's width (64 from the stem), the others their own output width
    closed = {"blocks": 16, "narrower in the middle": 16 - 1, "leaving at the input width": 16 - 4}
    return agree("resnet50 bottleneck widths", inst, closed)


def _bottleneck_shape_judge(claimed: str, measured: dict[str, int]) -> Judgement:
    n = measured["blocks"]
    ok = measured["narrower in the middle"] == n and measured["leaving at the input width"] == n
    if (claimed == "every block") == ok:
        return Judgement(True)
    return Judgement(
        CONDITIONAL,
        f"of ResNet-50's {n} bottlenecks {measured['narrower in the middle']} narrow in the middle and "
        f"{measured['leaving at the input width']} leave at their input width; the first block of each stage "
        "widens (64→64→256, 256→128→512, ...)",
        f"for the {measured['leaving at the input width']} blocks without a projection shortcut",
    )


# --- He initialisation and BN ------------------------------------------------------------------------------


def _origin_judge(claimed: str, measured: str) -> Judgement:
    if claimed == measured:
        return Judgement(True)
    return Judgement(False, f"it was proposed in {measured}; the ResNet paper adopts it", measured)


def _prior_init_judge(claimed: float, measured: dict[str, float]) -> Judgement:
    if claimed in measured.values():
        return Judgement(True)
    return Judgement(
        False, f"the weights were drawn with a fixed small std: {fmt(measured)}",
        "from zero-mean Gaussians of a fixed small std such as 0.01 (AlexNet) or 0.1 (VGG)",
    )


def _kaiming_default() -> dict[str, float]:
    fan_in, fan_out = 128 * 9, 256 * 9
    w = torch.empty(256, 128, 3, 3, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nn.init.kaiming_normal_(w)
    std = float(w.std())
    gain = nn.init.calculate_gain("relu")
    agree("kaiming_normal_ default std: torch's gain / sqrt(fan_in) vs He's sqrt(2 / n)",
          round(gain / math.sqrt(fan_in), 12), round(math.sqrt(2 / fan_in), 12))
    return {"std / √(2/fan_in)": round(std / math.sqrt(2 / fan_in), 2),
            "std / √(2/fan_out)": round(std / math.sqrt(2 / fan_out), 2)}


def _kaiming_judge(claimed: str, measured: dict[str, float]) -> Judgement:
    if abs(measured[f"std / √(2/{claimed})"] - 1) <= 0.02:
        return Judgement(True)
    other = "fan_out" if claimed == "fan_in" else "fan_in"
    return Judgement(False, f"its std is {fmt(measured)}", f"std √(2/{other}) with the defaults")


def _he_law() -> dict[str, Any]:
    """Which He variant torchvision's ResNet18 draws its convs from, by a 6-SE variance test per conv."""
    import torchvision.models as tvm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tvm.resnet18()
    rejected = {}
    for mode in ("fan_in", "fan_out"):
        scheme = InitScheme(conv=f"kaiming_normal_{mode}", linear="torch_default", linear_bias="torch_default",
                            source="He et al. 2015")
        rejected[mode] = sorted({f.split(":")[0] for f in init_failures(model, scheme)})
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    # closed form: the two laws differ exactly where C_in != C_out (same kernel on both sides)
    differ = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels != m.out_channels]
    if rejected["fan_out"] and rejected["fan_in"]:
        raise ClaimError(f"torchvision resnet18 convs fit neither He law: fan_in rejected at {rejected['fan_in']}, "
                         f"fan_out at {rejected['fan_out']}")
    law = "fan_out" if not rejected["fan_out"] else "fan_in"
    agree("convs where the other law fails vs convs with C_in != C_out",
          rejected["fan_in" if law == "fan_out" else "fan_out"], differ)
    return {"law": law, "convs": len(convs), "convs with C_in ≠ C_out": len(differ)}


def _he_judge(claimed: str, measured: dict[str, Any]) -> Judgement:
    if claimed == measured["law"]:
        return Judgement(True)
    return Judgement(
        False,
        f"the listing calls kaiming_normal_(mode='fan_out'): std √(2/fan_out), He 2015 Eq. 14, n counting the "
        f"next layer's nodes; the two stds coincide only on the "
        f"{measured['convs'] - measured['convs with C_in ≠ C_out']} "
        f"of {measured['convs']} resnet18 convs with C_in = C_out (the 7x7 stem, 3→64: √(2/147) = "
        f"{math.sqrt(2 / 147):.3f} by fan_in, √(2/3136) = {math.sqrt(2 / 3136):.3f} by fan_out)",
        f"std √(2/{measured['law']}) (He et al. 2015, Eq. 14), or mode='fan_in' in the listing",
    )


# --- variations and the listing ---------------------------------------------------------------------------


def _depths() -> dict[str, int]:
    out = {}
    for name, (blocks, per_block) in DEPTHS.items():
        inst = _weighted_layers(build_on_meta(torchvision_factory(name)))
        out[name] = agree(f"{name} weighted layers", inst, 1 + per_block * sum(blocks) + 1)
    return out


def _deepest() -> dict[str, int]:
    cifar = _weighted_layers(build_on_meta(lambda: cifar_resnet(depth=CIFAR_DEEPEST)))
    return {
        "ImageNet (Table 1; torchvision's resnet152)": _depths()["resnet152"],
        "CIFAR-10 (Section 4.2; 6n + 2, n = 200)": agree("CIFAR ResNet n=200 weighted layers", cifar, CIFAR_DEEPEST),
    }


def _deepest_judge(claimed: int, measured: dict[str, int]) -> Judgement:
    imagenet, cifar = measured.values()
    if max(imagenet, cifar) == claimed:
        return Judgement(True)
    if imagenet == claimed:
        return Judgement(
            CONDITIONAL,
            f"the ImageNet models go up to {imagenet} layers; the same paper also trains a {cifar}-layer net on "
            "CIFAR-10 (Section 4.2)",
            f"for the ImageNet architectures (Table 1); the paper's deepest net has {cifar} layers (CIFAR-10)",
        )
    return Judgement(False, f"deepest: {fmt(measured)}", fmt(measured))


def _published_params() -> dict[str, int]:
    out = {}
    for name in ("resnet18", "resnet50"):
        published = int(torchvision_weights_info(name)["num_params"])
        out[name] = agree(f"{name}: torchvision's published num_params vs its model", published,
                          meta_params(torchvision_factory(name)))
    return out


def _strided() -> list[str]:
    model = build_on_meta(torchvision_factory("resnet50"))
    inst = sorted({n.split(".", 2)[2] for n, m in model.named_modules()
                   if isinstance(m, nn.Conv2d) and m.stride != (1, 1) and n.startswith("layer")})
    # closed form: a conv whose output is smaller than its input (a downsample reads the block's input)
    closed: set[str] = set()
    block_in: dict[str, tuple[int, ...]] = {}
    prev: tuple[int, ...] = (3, 224, 224)
    for r in spec_plan(cnn_models.get_spec("resnet50"), (3, 224, 224)).layers:
        if r.name.startswith("layer"):
            block = r.name.rsplit(".", 1)[0].split(".downsample")[0]
            block = ".".join(block.split(".")[:2])
            source = block_in.setdefault(block, prev) if ".downsample." in r.name else prev
            block_in.setdefault(block, prev)
            if r.kind == "Conv2d" and r.out_shape[1] < source[1]:
                closed.add(r.name.split(".", 2)[2])
        prev = r.out_shape
    return agree("resnet50 strided convs", inst, sorted(closed))


def _zero_init() -> dict[str, Any]:
    """torchvision resnet18(zero_init_residual=True): which blocks return exactly their input (eval, float64)."""
    import torchvision.models as tvm

    from ..gradflow import zero_init_identity

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tvm.resnet18(zero_init_residual=True).double().eval()
    blocks = [n for n, m in model.named_modules() if type(m).__name__ == "BasicBlock"]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    same = zero_init_identity(model, x, blocks=blocks)
    inst = sorted(n for n, ok in same.items() if ok)
    closed = sorted(n for n in blocks if model.get_submodule(n).downsample is None)  # relu(0 + x) = x for x >= 0
    agree("blocks that start as the identity vs blocks without a projection", inst, closed)
    return {"blocks": len(blocks), "identity at init": len(inst)}


def _zero_init_judge(claimed: str, measured: dict[str, Any]) -> Judgement:
    every = measured["identity at init"] == measured["blocks"]
    if (claimed == "every block") == every:
        return Judgement(True)
    return Judgement(
        CONDITIONAL,
        f"{measured['identity at init']} of ResNet-18's {measured['blocks']} blocks return exactly their input; the "
        "first block of layer2-4 returns relu(downsample(x)), its projection shortcut being no identity",
        "for the blocks without a projection shortcut",
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "deeper-more-accurate", GROUP, TUTORIAL,
        "Deeper networks were found to be more accurate (top-1 error lower at 34 layers than at 18, plain and "
        "residual nets alike).",
        {"plain": "lower", "residual": "lower"}, lambda: record("resnet-table2-top1"), _deeper_judge,
        section=RESIDUAL, evidence=RECORDS["resnet-table2-top1"].citation,
    ),
    Claim(
        "residual-proposed-for-vanishing", GROUP, TUTORIAL,
        "The residual module was proposed against the vanishing of gradients in backpropagation through very deep "
        "networks.",
        "vanishing gradients", lambda: record("resnet-problem"), _problem_judge, section=RESIDUAL,
        evidence=RECORDS["resnet-problem"].citation,
    ),
    Claim(
        "shortcut-skips-one-conv", GROUP, TUTORIAL,
        "The input of a conv layer is branched off and joined to the output of the conv layer one layer ahead.",
        {"BasicBlock": 1, "Bottleneck": 1, "join": "addition"}, _skipped, _skipped_judge, section=RESIDUAL,
    ),
    Claim(
        "bottleneck-fewer-params", GROUP, TUTORIAL,
        "Adding 1x1 convs to the residual module gives a module with fewer parameters (conv weights of a "
        "bottleneck against basic blocks of the same width and of He et al.'s Fig. 5 pairing).",
        "fewer", _bottleneck_params, _bottleneck_judge, section=BOTTLENECK,
    ),
    Claim(
        "bottleneck-shape", GROUP, TUTORIAL,
        "A bottleneck narrows its channels in the middle and leaves at its original width (measured on every "
        "block of ResNet-50).",
        "every block", _bottleneck_shape, _bottleneck_shape_judge, section=BOTTLENECK,
    ),
    Claim(
        "he-init-proposed-in-resnet", GROUP, TUTORIAL,
        "The best initial weights for ReLU networks (He initialisation) were proposed in the ResNet paper.",
        "He et al. 2016 (the ResNet paper, arXiv:1512.03385)", lambda: record("he-init-origin"), _origin_judge,
        section=HE_INIT, evidence=RECORDS["he-init-origin"].citation,
    ),
    Claim(
        "weights-used-to-be-n01", GROUP, TUTORIAL,
        "Initial weights were drawn at random from a normal distribution with mean 0 and standard deviation 1.",
        1.0, lambda: record("init-before-he"), _prior_init_judge, section=HE_INIT,
        evidence=RECORDS["init-before-he"].citation,
    ),
    Claim(
        "kaiming-normal-default", GROUP, TUTORIAL,
        "PyTorch's nn.init.kaiming_normal_ draws He's N(0, √(2/n)), n the nodes the previous layer passes in "
        "(fan_in).",
        "fan_in", _kaiming_default, _kaiming_judge, section=HE_INIT,
    ),
    Claim(
        "tutorial-resnet-he-init", GROUP, TUTORIAL,
        "Its ResNet listing (commented as setting He's initial values) draws conv weights as its text describes: "
        "std √(2/n) with n the previous layer's nodes (fan_in).",
        "fan_in", _he_law, _he_judge, section=HE_INIT, basis="implied",
    ),
    Claim(
        "bn-proposed-in-resnet", GROUP, TUTORIAL,
        "Batch Normalization was also proposed in the ResNet paper.",
        "He et al. 2016 (the ResNet paper, arXiv:1512.03385)", lambda: record("bn-origin"), _origin_judge,
        section=BN, evidence=RECORDS["bn-origin"].citation,
    ),
    Claim(
        "resnet-up-to-152-layers", GROUP, TUTORIAL,
        "ResNet architectures were proposed up to 152 layers deep.",
        152, _deepest, _deepest_judge, section=RESNET_VARIANTS,
    ),
    Claim(
        "resnet-variants", GROUP, TUTORIAL,
        "Its variations are ResNet18, ResNet34, ResNet50, ResNet101 and ResNet152 (weighted layers of each).",
        {name: int(name[6:]) for name in DEPTHS}, _depths, exact(), section=RESNET_VARIANTS,
    ),
    Claim(
        "resnet-listing-is-torchvision", GROUP, TUTORIAL,
        "Its ResNet script is torchvision's implementation: its printed totals are torchvision's published "
        "parameter counts.",
        {name: printed(name).totals[TOTALS[0]] for name in ("resnet18", "resnet50")}, _published_params, exact(),
        section=RESNET_VARIANTS,
    ),
    Claim(
        "listing-bottleneck-stride", GROUP, TUTORIAL,
        "In the listing's Bottleneck, conv2 (3x3) and the downsample carry the stride (its comment).",
        ["conv2", "downsample.0"], _strided, exact(), section=RESNET_VARIANTS,
    ),
    Claim(
        "listing-zero-init-identity", GROUP, TUTORIAL,
        "With zero_init_residual, the last BN of each residual branch starts at zero and every residual block "
        "behaves like an identity (the listing's comment).",
        "every block", _zero_init, _zero_init_judge, section=RESNET_VARIANTS,
    ),
)
