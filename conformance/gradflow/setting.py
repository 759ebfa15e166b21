"""One point of the gradient-flow experiment grid, validated (plain data, no torch).

A ``Setting`` says which experiment net (``nets.build_net``) is measured and how: depth
(layers of a plain net, blocks of a residual net), width C, init scheme, residual mode, BN,
padding, input size (N, C, H, W) = (batch, width, spatial, spatial) and float dtype.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .nets import INIT_SCHEMES, PADDINGS, RESIDUAL_MODES

__all__ = ["DTYPES", "Setting"]

DTYPES: tuple[str, ...] = ("float64", "float32")

RESIDUAL_WORDS = {
    "off": "plain",
    "on": "residual",
    "scaled": "residual/sqrt2",
    "zeroinit": "residual zero-init branch",
}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    depth: int
    width: int
    init: str
    residual: str = "off"
    bn: bool = False
    padding: str = "circular"
    kernel_size: int = 3
    spatial: int = 8
    batch: int = 32
    dtype: str = "float64"

    def __post_init__(self) -> None:
        for name in ("depth", "width", "spatial", "batch", "kernel_size"):
            _positive_int(name, getattr(self, name))
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {list(INIT_SCHEMES)}, got {self.init!r}")
        if self.residual not in RESIDUAL_MODES:
            raise ValueError(
                f"residual must be one of {list(RESIDUAL_MODES)}, got {self.residual!r}"
            )
        if not isinstance(self.bn, bool):
            raise ValueError(f"bn must be a bool, got {self.bn!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {list(PADDINGS)}, got {self.padding!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")

    @property
    def plain(self) -> bool:
        return self.residual == "off"

    @property
    def unit(self) -> str:
        """What one step of the slope is: a conv layer (plain) or a residual block."""
        return "layer" if self.plain else "block"

    @property
    def fan(self) -> int:
        """n = k^2 * C: fan-in and fan-out of every conv (constant width)."""
        return self.kernel_size * self.kernel_size * self.width

    @property
    def label(self) -> str:
        return (
            f"{RESIDUAL_WORDS[self.residual]}{' +BN' if self.bn else ''} {self.init} "
            f"L={self.depth} C={self.width}"
            + ("" if self.padding == "circular" else " zero-pad")
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
