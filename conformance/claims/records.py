"""Recorded facts: what a paper says about history (placings, who proposed what, what was used
before), with the citation. A claim whose measured value is a record names it as its evidence;
nothing here is measured on modules.

Sources: Simonyan & Zisserman 2015 (VGG, arXiv:1409.1556); Szegedy et al. 2015 (GoogLeNet,
arXiv:1409.4842); Szegedy et al. 2017 (Inception-v4, arXiv:1602.07261); He et al. 2015
("Delving Deep into Rectifiers", arXiv:1502.01852); Ioffe & Szegedy 2015 (Batch Normalization,
arXiv:1502.03167); He et al. 2016 (ResNet, arXiv:1512.03385); Krizhevsky et al. 2012 (AlexNet).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["RECORDS", "Record", "record"]


@dataclass(frozen=True)
class Record:
    value: Any
    citation: str


RECORDS: MappingProxyType[str, Record] = MappingProxyType({
    "ilsvrc2014-classification": Record(
        {"GoogLeNet": 1, "VGG": 2},
        "Szegedy et al. 2015, Table 2 (ILSVRC 2014 classification: GoogLeNet 1st, VGG 2nd); Simonyan & Zisserman "
        "2015, abstract (first place in localisation, second in classification)",
    ),
    "googlenet-name": Record(
        "LeNet",
        "Szegedy et al. 2015, Section 5 (GoogLeNet was the team name, chosen as an homage to LeCun's LeNet-5)",
    ),
    "googlenet-names": Record(
        {"architecture": "Inception", "GoogLeNet": "Inception-v1"},
        "Szegedy et al. 2015, abstract (GoogLeNet is one incarnation of the architecture codenamed Inception); "
        "Szegedy et al. 2017 (Inception-v4), Section 2 (calls it Inception-v1)",
    ),
    "resnet-problem": Record(
        "degradation",
        "He et al. 2016, Section 1 (vanishing/exploding gradients have been largely addressed by normalised "
        "initialisation and intermediate normalisation layers; deeper plain nets still reach higher training "
        "error: the degradation problem, Fig. 1) and Section 4.1 (BN-trained plain nets have healthy gradient "
        "norms; their difficulty is unlikely to be caused by vanishing gradients)",
    ),
    "resnet-table2-top1": Record(
        {"plain-18": 27.94, "plain-34": 28.54, "ResNet-18": 27.88, "ResNet-34": 25.03},
        "He et al. 2016, Table 2 (top-1 error in %, ImageNet validation, 10-crop testing)",
    ),
    "he-init-origin": Record(
        "He et al. 2015, 'Delving Deep into Rectifiers' (arXiv:1502.01852)",
        "He et al. 2015, Section 2.2 (derivation, Eq. 10); He et al. 2016 (the ResNet paper), Section 3.4, "
        "initialises its weights 'as in' that paper",
    ),
    "bn-origin": Record(
        "Ioffe & Szegedy 2015 (arXiv:1502.03167)",
        "Ioffe & Szegedy 2015; He et al. 2016, Section 3.4, adopts BN right after each conv and before the "
        "activation, citing it",
    ),
    "arxiv-ids": Record(
        {"VGGNet": "1409.1556", "GoogLeNet": "1409.4842", "ResNet": "1512.03385", "MobileNet": "1704.04861"},
        "the papers' arXiv identifiers (YYMM.NNNNN: year and month of first submission); the tutorial links "
        "1512.03385 and 1704.04861 itself",
    ),
    "init-before-he": Record(
        {"Krizhevsky et al. 2012": 0.01, "Simonyan & Zisserman 2015": 0.1},
        "Krizhevsky et al. 2012, Section 5 (zero-mean Gaussian, std 0.01); Simonyan & Zisserman 2015, "
        "Section 3.1 (zero mean, variance 1e-2); He et al. 2015, Section 2.2 (Gaussians of fixed std such as "
        "0.01 were the common init)",
    ),
})  # fmt: skip


def record(key: str) -> Any:
    """The recorded value ``key`` (KeyError naming the known keys otherwise)."""
    try:
        return RECORDS[key].value
    except KeyError:
        raise KeyError(f"no record {key!r}; known: {', '.join(RECORDS)}") from None
