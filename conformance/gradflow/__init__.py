"""Gradient flow at initialization and through the first steps of training.

Measures per-layer activation and activation-gradient second moments of any ``nn.Module``
(``Probe``) and of configurable experiment nets (plain / residual, BN or not, six inits),
and compares them with closed-form predictions (``theory.py``, with their sources: He et al.
2015, Glorot & Bengio 2010, Hanin 2018,
De & Smith 2020, Yang et al. 2019, Fixup / SkipInit, torchvision ``zero_init_residual``).

    >>> from conformance import gradflow
    >>> res = gradflow.measure(depth=16, width=32, init="naive", seeds=5)
    >>> res.slope_forward, res.prediction.slope_forward     # (mean, SE), predicted
    >>> res.summary()["verdict"]
    'agrees'
    >>> gradflow.first_layer_gradient_vs_depth([8, 20, 56, 110], residual="on", bn=True)

Any model: ``model_profile.measure_variant`` records per-layer second moments of activations,
of the gradients with respect to them and of weight gradients over seeds (registered
architectures, candidates, and their variants: init swapped, ``zero_init_residual``, the plain
twin), with the laws' predictions where ``reach`` finds conv-BN-ReLU / conv-ReLU links.
Training: ``training.train_all`` runs the degradation experiment of He et al. 2016 (Fig. 1,
Fig. 6) in miniature on an offline teacher task.

Modules: ``probes`` (hooks), ``nets`` (experiment nets, init table), ``setting`` (one grid
point), ``theory`` (predictions, tolerances), ``runner`` (Monte Carlo over seeds, verdicts),
``models`` (CIFAR ResNets vs plain nets, torchvision ResNets), ``reach`` (which layers of any
model the laws reach), ``model_profile`` (any model at init), ``training`` (plain vs residual
in training), ``writeup`` / ``model_writeup`` / ``train_writeup`` (CSV, JSON, PNG, markdown),
``cli`` (``cnn-conformance gradflow``).
"""

from __future__ import annotations

from .nets import INIT_SCHEMES, RESIDUAL_MODES, build_net, init_variance, probe_names
from .probes import LayerStats, Probe, log_mean_square
from .runner import (
    DepthPoint,
    SettingResult,
    bn_scale_invariance,
    first_layer_gradient_vs_depth,
    float32_onset_measured,
    measure,
    probe_model,
    run_grid,
    run_setting,
    zero_init_identity,
)
from .setting import Setting
from .theory import KAPPA, Prediction, float32_onset, predict

__all__ = [
    "INIT_SCHEMES",
    "KAPPA",
    "RESIDUAL_MODES",
    "DepthPoint",
    "LayerStats",
    "Prediction",
    "Probe",
    "Setting",
    "SettingResult",
    "bn_scale_invariance",
    "build_net",
    "first_layer_gradient_vs_depth",
    "float32_onset",
    "float32_onset_measured",
    "init_variance",
    "log_mean_square",
    "measure",
    "predict",
    "probe_model",
    "probe_names",
    "run_grid",
    "run_setting",
    "zero_init_identity",
]
