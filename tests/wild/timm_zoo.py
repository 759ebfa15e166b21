"""Models from timm (``timm.create_model``, no pretrained weights), an implementation we did not write.

* ``build_mobilenetv1``: timm's ``mobilenetv1_100`` (``timm/models/efficientnet.py``,
  ``_gen_mobilenet_v1``: Howard et al. 2017 Table 1 as ``dsa`` blocks, depthwise separable with
  an activation after the pointwise conv and no skip) with ``act_layer="relu"``. timm's default
  activation for this model is ReLU6, not the paper's ReLU (Howard et al. 2017, Fig. 3); with
  ReLU it computes spec ``mobilenet_v1``'s function. Its init is timm's TF-style one
  (``_init_weight_goog``), not the spec's declared convention.
* ``build_mobilenetv1_relu6``: the default ``mobilenetv1_100``, with ReLU6 after every BN, as the
  authors' TF-slim release builds it: spec ``mobilenet_v1``'s ``act="relu6"`` reading.
* ``build_mobilenetv1_relu6_one_relu`` (mutant): that model with one activation (``blocks.3.2``'s
  after the depthwise conv) back to ReLU, which no reading admits.
* ``build_resnet18`` / ``build_resnet50``: timm's ``resnet18`` / ``resnet50``
  (``timm/models/resnet.py``; the bottleneck strides its 3x3 conv, as torchvision's v1.5) with
  ``zero_init_last=False``, so the init is torchvision's too.
* ``build_resnet18_zero_init_last`` (init-only mutant): timm's default ``resnet18``, whose last
  BN of every residual branch starts at gamma 0 (Goyal et al. 2017, §5.1): the same function
  as torchvision's, a different init from spec ``resnet18`` (torchvision's BN gamma 1).
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["build_mobilenetv1", "build_mobilenetv1_relu6", "build_mobilenetv1_relu6_one_relu",
           "build_resnet18", "build_resnet18_zero_init_last",
           "build_resnet50"]


def _create(name: str, **kwargs: object) -> nn.Module:
    import timm  # a test dependency (pyproject extra "test")

    return timm.create_model(name, pretrained=False, **kwargs)


def build_mobilenetv1() -> nn.Module:
    """timm ``mobilenetv1_100`` with ReLU: spec ``mobilenet_v1``."""
    return _create("mobilenetv1_100", act_layer="relu")


def build_mobilenetv1_relu6() -> nn.Module:
    """timm's default ``mobilenetv1_100`` (ReLU6 after every BN): spec ``mobilenet_v1``, ``act="relu6"``."""
    return _create("mobilenetv1_100")


def build_mobilenetv1_relu6_one_relu() -> nn.Module:
    """Mutant: the ReLU6 model with ``blocks.3.2.bn1``'s activation a plain ReLU."""
    model = _create("mobilenetv1_100")
    model.blocks[3][2].bn1.act = nn.ReLU(inplace=True)
    return model


def build_resnet18() -> nn.Module:
    """timm ``resnet18``, torchvision's init: spec ``resnet18``, torchvision ``resnet18``."""
    return _create("resnet18", zero_init_last=False)


def build_resnet50() -> nn.Module:
    """timm ``resnet50``, torchvision's init: spec ``resnet50``, torchvision ``resnet50``."""
    return _create("resnet50", zero_init_last=False)


def build_resnet18_zero_init_last() -> nn.Module:
    """Init-only mutant: timm's default ``resnet18`` (``layerS.B.bn2`` gammas start at 0)."""
    return _create("resnet18")
