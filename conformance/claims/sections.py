"""The tutorial's sections, in its order, and the statements the catalogue does not judge.

Every section of the tutorial with text of its own is listed (a heading followed directly by
a sub-heading has none: "ResNet (2015)"). Every section has at least one claim in the
catalogue or an entry in ``NOT_JUDGED``, a statement left unjudged with the reason; the tests
hold both lists to that.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BOTTLENECK",
    "BN",
    "CLOSING",
    "DEPTHWISE",
    "GAP",
    "GOOGLENET",
    "HE_INIT",
    "INCEPTION_MODULE",
    "INTRODUCTION",
    "MOBILENET",
    "MOBILENET_COMPARISON",
    "NOT_JUDGED",
    "POINTWISE",
    "RESIDUAL",
    "RESNET_VARIANTS",
    "SECTIONS",
    "SEPARABLE",
    "VGG",
    "Unjudged",
]

INTRODUCTION = "Introduction (the representative models)"
VGG = "VGGNet (2014)"
GOOGLENET = "GoogLeNet / Inception (2014)"
INCEPTION_MODULE = "GoogLeNet: Inception module"
GAP = "GoogLeNet: Global Average Pooling (GAP)"
RESIDUAL = "ResNet (2015): Residual module"
BOTTLENECK = "ResNet: Bottleneck module"
HE_INIT = "ResNet: He initialisation"
BN = "ResNet: Batch Normalization"
RESNET_VARIANTS = "ResNet: variations (its listing and tables)"
MOBILENET = "MobileNet (2017)"
SEPARABLE = "MobileNet: Depthwise Separable Convolution"
DEPTHWISE = "MobileNet: Depthwise Convolution"
POINTWISE = "MobileNet: Pointwise Convolution"
MOBILENET_COMPARISON = "MobileNet: parameters against a standard convolution (its code and table)"
CLOSING = "Closing remarks"

SECTIONS: tuple[str, ...] = (
    INTRODUCTION, VGG, GOOGLENET, INCEPTION_MODULE, GAP, RESIDUAL, BOTTLENECK, HE_INIT, BN,
    RESNET_VARIANTS, MOBILENET, SEPARABLE, DEPTHWISE, POINTWISE, MOBILENET_COMPARISON, CLOSING,
)  # fmt: skip


@dataclass(frozen=True)
class Unjudged:
    """A statement of the tutorial the catalogue does not judge, and why."""

    section: str
    statement: str
    reason: str

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"unjudged statement {self.statement!r}: unknown section {self.section!r}")


NOT_JUDGED: tuple[Unjudged, ...] = (
    Unjudged(
        INTRODUCTION,
        "The four models are often used in transfer learning and as backbones of object detection and "
        "semantic segmentation models.",
        "a statement about practice in the field: no model or record here measures how often a network is used",
    ),
    Unjudged(
        VGG,
        "VGGNet is much used because its very simple architecture reached high accuracy.",
        "popularity and simplicity are judgements, not measurements",
    ),
    Unjudged(
        VGG,
        "Besides the parameter saving, accuracy improved, so CNN research has centred on 3x3 filters since.",
        "accuracy needs ImageNet training (Simonyan & Zisserman 2015, Section 4.1, report a 7% higher top-1 error "
        "for net B with 5x5 convs in place of pairs of 3x3); the course of later research is not measurable",
    ),
    Unjudged(
        GOOGLENET,
        "The network has been improved since; as of March 2020 Inception v4 is the latest.",
        "dated statement about a research line; no record here settles which later model counts as the latest",
    ),
    Unjudged(
        INCEPTION_MODULE,
        "GoogLeNet is built as 'Network In Network': several networks gathered into one module.",
        "an analogy: Network In Network is Lin et al. 2014's architecture, from which Szegedy et al. 2015 "
        "(Section 1) take the name Inception and the 1x1 convolutions; the stacking of modules is judged",
    ),
    Unjudged(
        RESIDUAL,
        "ResNet's feature, and the origin of its name, is the Residual module.",
        "naming: nothing to measure beyond the residual blocks the other claims of this section measure",
    ),
    Unjudged(
        BOTTLENECK,
        "The bottleneck module trains more efficiently.",
        "training efficiency needs training runs; He et al. 2016 (Section 4.1, 'Deeper Bottleneck Architectures') "
        "motivate the design by training time",
    ),
    Unjudged(
        RESNET_VARIANTS,
        "The listing's docstrings, error messages and comments that label the line they sit on (the conv helpers' "
        "one-line docstrings, BasicBlock's refusal of groups other than 1, ...).",
        "torchvision's own source text; the code they label is judged through the tables the tutorial prints",
    ),
    Unjudged(
        RESNET_VARIANTS,
        "Zero-initialising the last BN of each residual branch improves the model by 0.2-0.3% "
        "(the listing's comment, citing Goyal et al. 2017).",
        "an accuracy gain needs ImageNet training",
    ),
    Unjudged(
        RESNET_VARIANTS,
        "The full script need not be memorised; it is for interested readers.",
        "advice to the reader",
    ),
    Unjudged(
        MOBILENET,
        "MobileNet predicts with high accuracy.",
        "accuracy needs ImageNet evaluation (Howard et al. 2017, Table 8, report 70.6% top-1 for 1.0 MobileNet-224); "
        "its lightness is judged",
    ),
    Unjudged(
        MOBILENET,
        "MobileNet is used as the backbone where speed matters, such as object detection.",
        "a statement about practice in the field (Howard et al. 2017 use it in SSD and Faster R-CNN on COCO)",
    ),
    Unjudged(
        MOBILENET_COMPARISON,
        "The code's comments naming a cfg tuple's two numbers (planes, stride) and the block's two convs "
        "(depthwise, pointwise).",
        "labels of the line they sit on; the code they label is judged through the table the tutorial prints",
    ),
    Unjudged(
        CLOSING,
        "CNNs have developed to raise accuracy (while cutting parameters).",
        "the accuracy half needs ImageNet evaluation on comparable terms (the papers' and torchvision's figures "
        "come from different protocols); the parameter half is judged",
    ),
    Unjudged(
        CLOSING,
        "Research is still active and new models are to be looked forward to; the chapter's models are only some "
        "of the famous ones but hold the most important architectures; knowing each model's features is a strong "
        "weapon.",
        "opinion and advice",
    ),
)
