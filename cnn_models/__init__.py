"""Reference implementations of the classic CNNs, each registered with its spec.

    >>> import cnn_models
    >>> "resnet50" in cnn_models.list_models()
    True
    >>> model = cnn_models.get_model("resnet50", num_classes=10)

Importing this package imports every family module, which registers its architectures.
"""

from __future__ import annotations

# Family modules: importing each registers its specs. Keep the list sorted.
from . import (  # noqa: F401
    _registry,
    cifar_resnet,
    googlenet,
    inception_v3,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    vgg,
)
from ._registry import (
    ENTRY_POINT_GROUP,
    UnknownModelError,
    get_model,
    get_spec,
    list_models,
    plugin_errors,
    register_model,
)
from ._spec import MISSING, ArchSpec, Expected, InitScheme, SpecError

__all__ = [
    "ENTRY_POINT_GROUP",
    "MISSING",
    "ArchSpec",
    "Expected",
    "InitScheme",
    "SpecError",
    "UnknownModelError",
    "get_model",
    "get_spec",
    "list_models",
    "plugin_errors",
    "register_model",
]
