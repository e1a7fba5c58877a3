"""The registry of detection methods: name -> where its class lives and one line on what it is.

Importing this module imports no detector (and nothing heavy): a class is imported when it is
first asked for, so ``vigil methods`` stays instant and the core never pulls an optional extra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import StateSpec
from vigil.errors import ConfigError

__all__ = ["METHODS", "Detector", "MethodInfo", "Param", "StateSpec", "get_class",
           "make_detector", "parse_param_value"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: where its class is, what it does and what it needs."""

    target: str  # "module:Class"
    summary: str
    needs: str = "-"  # labels, window, an extra, ...


METHODS: dict[str, MethodInfo] = {
    "auto": MethodInfo(
        "vigil.detectors.auto:Auto",
        "ensemble chosen by evidence: windowed shape models, forecast residual, robust z-score",
        needs="window (auto)",
    ),
    "zscore": MethodInfo(
        "vigil.detectors.statistical:ZScore",
        "two-sided z-score |x - mean| / std per channel",
    ),
    "robust_zscore": MethodInfo(
        "vigil.detectors.statistical:RobustZScore",
        "robust z-score |x - median| / (1.4826 MAD) per channel",
    ),
    "iqr": MethodInfo(
        "vigil.detectors.statistical:IQR",
        "distance outside Tukey's fences Q1 - 1.5 IQR, Q3 + 1.5 IQR, in IQR units",
    ),
    "mahalanobis": MethodInfo(
        "vigil.detectors.mahalanobis:Mahalanobis",
        "distance from normal under the channels' joint covariance (sees broken correlations)",
    ),
    "forecast": MethodInfo(
        "vigil.detectors.forecast:ForecastResidual",
        "one-step forecast error (ridge AR or local polynomial) as a robust z-score; causal",
        needs="window (auto)",
    ),
    "subsequence_pca": MethodInfo(
        "vigil.detectors.subsequence_pca:SubsequencePCA",
        "reconstruction error of each window on the training windows' principal components",
        needs="window (auto)",
    ),
    "subsequence_kmeans": MethodInfo(
        "vigil.detectors.subsequence_kmeans:SubsequenceKMeans",
        "distance of each window to the nearest k-means centre of the training windows",
        needs="window (auto)",
    ),
    "matrix_profile": MethodInfo(
        "vigil.detectors.matrix_profile:MatrixProfile",
        "matrix-profile discords: z-normalised distance of each window to its nearest training window",
        needs="window (auto)",
    ),
    "modes": MethodInfo(
        "vigil.detectors.modes:OperatingModes",
        "Mahalanobis distance to the nearest operating mode (Gaussian mixture, modes by BIC)",
    ),
    "isolation_forest": MethodInfo(
        "vigil.detectors.isolation_forest:IsolationForest",
        "unsupervised Isolation Forest (Liu et al. 2008); optional window of past rows",
        needs="window (optional)",
    ),
    "one_class_svm": MethodInfo(
        "vigil.detectors.one_class_svm:OneClassSVM",
        "One-Class SVM (RBF) boundary around the training rows; quadratic: max_train rows",
        needs="window (optional)",
    ),
    "lof": MethodInfo(
        "vigil.detectors.lof:LocalOutlierFactor",
        "Local Outlier Factor against the training rows; quadratic: max_train rows",
        needs="window (optional)",
    ),
    "random_forest": MethodInfo(
        "vigil.detectors.random_forest:RandomForest",
        "supervised: class-weighted random forest's anomaly probability",
        needs="labels",
    ),
    "autoencoder": MethodInfo(
        "vigil.detectors.deep.autoencoder:Autoencoder",
        "deep: MLP autoencoder's reconstruction error of windows of all channels (ONNX)",
        needs="window (auto); deep to fit",
    ),
    "vae": MethodInfo(
        "vigil.detectors.deep.vae:VAE",
        "deep: variational autoencoder (DONUT-like), reconstruction error with the KL term",
        needs="window (auto); deep to fit",
    ),
    "transformer": MethodInfo(
        "vigil.detectors.deep.transformer:Transformer",
        "deep: patch Transformer encoder's reconstruction error (long dependencies)",
        needs="window (auto); deep to fit",
    ),
    "gan": MethodInfo(
        "vigil.detectors.deep.gan:GAN",
        "deep: autoencoder trained against a critic (TadGAN-like); error plus critic doubt",
        needs="window (auto); deep to fit",
    ),
    "stuck": MethodInfo(
        "vigil.detectors.stuck:StuckSensor",
        "stuck sensor: current run of one repeated value over the longest run held in training",
    ),
}

DEFAULT_METHOD = "auto"


def get_class(method: str) -> type[Detector]:
    """The detector class registered as ``method``."""
    try:
        info = METHODS[method]
    except KeyError:
        raise ConfigError(
            f"unknown method {method!r}; choose one of: {', '.join(METHODS)} "
            "(`vigil methods` describes them)."
        ) from None
    module, _, cls = info.target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_detector(method: str, **params: Any) -> Detector:
    """A new, unfitted detector of ``method`` with ``params``."""
    return get_class(method)(**params)


def parse_param_value(text: str) -> Any:
    """A parameter value written as text (command line, bench method lists): int, float,
    None (``none``/``null``) or the text itself (e.g. ``auto``)."""
    if text.lower() in {"none", "null"}:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
