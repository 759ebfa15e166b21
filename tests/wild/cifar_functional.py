"""A CIFAR-10 ResNet-20 written with functional ops only: no Conv2d, BatchNorm2d or Linear module.

Architecture: He et al. 2016 (arXiv:1512.03385) §4.2, n = 3 (20 layers), option A shortcuts
(§3.3) whose zero channels come *after* the input's, as Facebook's ``fb.resnet.torch``
(``models/resnet.lua``, shortcut type A: ``nn.Concat`` of the subsampled input and a
zero-multiplied copy) reads the paper; that is the default reading of spec ``cifar_resnet20``.

Written unlike a module tree: every conv weight, BN gamma and BN beta is an ``nn.Parameter`` in
one ``nn.ParameterList`` (``body``: weight, gamma, beta per conv, in forward order), the
classifier's weight and bias in a second one (``head``); BN running statistics are buffers of
the root (``mean{k}`` / ``var{k}``) used by ``F.batch_norm`` with ``training=self.training``,
momentum 0.1 and eps 1e-5 (PyTorch's ``BatchNorm2d`` defaults). The shortcut concatenates
zeros (``torch.cat([x, zeros], 1)``), the pool is ``x.mean((2, 3))``, the classifier
``x @ w.t() + b``. Init as the paper (§4.2, He et al. 2015 Eq. (10): N(0, 2 / fan_in) convs,
BN 1 / 0) and PyTorch's Linear default U(+-1/sqrt(fan_in)) for the classifier.

Mutant ``build_add_after_relu``: in block 2 of stage 2 the residual is added after the
block's final ReLU (``relu(branch) + shortcut``) instead of before it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FunctionalCifarResNet", "build", "build_add_after_relu"]

WIDTHS = (16, 32, 64)


class FunctionalCifarResNet(nn.Module):
    def __init__(self, n: int = 3, num_classes: int = 10, late_add: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.n = n
        self.late_add = late_add
        self.body = nn.ParameterList()
        self._strides: list[int] = []
        c_in = 3
        plan = [(3, WIDTHS[0], 1)]  # (c_in, c_out, stride) of each conv, in forward order
        c_in = WIDTHS[0]
        for s, width in enumerate(WIDTHS):
            for b in range(n):
                plan.append((c_in, width, 2 if s and not b else 1))
                plan.append((width, width, 1))
                c_in = width
        for k, (ci, co, stride) in enumerate(plan):
            w = torch.empty(co, ci, 3, 3)
            nn.init.normal_(w, 0.0, math.sqrt(2.0 / (9 * ci)))
            self.body.append(nn.Parameter(w))
            self.body.append(nn.Parameter(torch.ones(co)))
            self.body.append(nn.Parameter(torch.zeros(co)))
            self.register_buffer(f"mean{k}", torch.zeros(co))
            self.register_buffer(f"var{k}", torch.ones(co))
            self._strides.append(stride)
        bound = 1.0 / math.sqrt(WIDTHS[-1])
        self.head = nn.ParameterList([
            nn.Parameter(torch.empty(num_classes, WIDTHS[-1]).uniform_(-bound, bound)),
            nn.Parameter(torch.empty(num_classes).uniform_(-bound, bound)),
        ])

    def _conv_bn(self, x: torch.Tensor, k: int) -> torch.Tensor:
        w, gamma, beta = self.body[3 * k], self.body[3 * k + 1], self.body[3 * k + 2]
        x = F.conv2d(x, w, None, self._strides[k], 1)
        return F.batch_norm(x, getattr(self, f"mean{k}"), getattr(self, f"var{k}"), gamma, beta,
                            self.training, 0.1, 1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self._conv_bn(x, 0))
        k = 1
        for s, width in enumerate(WIDTHS):
            for b in range(self.n):
                y = F.relu(self._conv_bn(x, k))
                y = self._conv_bn(y, k + 1)
                k += 2
                short = x
                if short.shape[1] != width:  # option A: subsample, append zero channels
                    short = short[:, :, ::2, ::2]
                    zeros = short.new_zeros(short.shape[0], width - short.shape[1], *short.shape[2:])
                    short = torch.cat([short, zeros], 1)
                x = F.relu(y) + short if self.late_add == (s, b) else F.relu(y + short)
        x = x.mean((2, 3))
        return x @ self.head[0].t() + self.head[1]


def build() -> FunctionalCifarResNet:
    """ResNet-20: spec ``cifar_resnet20`` (default reading, zeros after the input's channels)."""
    return FunctionalCifarResNet(3)


def build_add_after_relu() -> FunctionalCifarResNet:
    """Mutant of ``build``: stage 2 (index 1), block 2 (index 1) adds its shortcut after the ReLU."""
    return FunctionalCifarResNet(3, late_add=(1, 1))
