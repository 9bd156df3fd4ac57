"""Scoring models on the holdout: one metric value plus per-example outcomes for paired tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm
from sklearn.base import BaseEstimator

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
CLASSIFICATION_METRICS = frozenset({"accuracy", "f1_macro", "roc_auc"})


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    # Classifiers: 1.0 where the prediction was right. Regressors: the loss behind the metric
    # (absolute error for mae, squared error otherwise); paired tests compare these.
    per_example: npt.NDArray[np.float64]


def direction(metric: str) -> float:
    """+1 where higher is better, -1 where lower is."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


def _roc_auc(model: BaseEstimator, x: npt.NDArray[np.float64], y: npt.NDArray[Any]) -> float:
    classes = getattr(model, "classes_", None)
    if hasattr(model, "predict_proba"):
        scores = model.predict_proba(x)
    else:
        scores = model.decision_function(x)
    if classes is not None and len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return float(skm.roc_auc_score(y, positive))
    if len(np.unique(y)) < 2:
        return float("nan")
    if not hasattr(model, "predict_proba"):
        # One-vs-rest AUC needs probabilities; a softmax of the decision values ranks the same.
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = exp / exp.sum(axis=1, keepdims=True)
    return float(skm.roc_auc_score(y, scores, multi_class="ovr", labels=classes))


def score(
    model: BaseEstimator, metric: str, x: npt.NDArray[np.float64], y: npt.NDArray[Any]
) -> Score:
    predicted = model.predict(x)
    if metric in CLASSIFICATION_METRICS:
        per_example = (predicted == y).astype(np.float64)
        if metric == "accuracy":
            value = float(per_example.mean())
        elif metric == "f1_macro":
            value = float(skm.f1_score(y, predicted, average="macro", zero_division=0))
        else:
            value = _roc_auc(model, x, y)
        return Score(metric, value, per_example)
    residuals = np.asarray(predicted, dtype=np.float64) - y.astype(np.float64)
    if metric == "mae":
        absolute = np.abs(residuals)
        return Score(metric, float(absolute.mean()), absolute)
    squared = residuals**2
    if metric == "rmse":
        return Score(metric, float(np.sqrt(squared.mean())), squared)
    if metric == "r2":
        return Score(metric, float(skm.r2_score(y, predicted)), squared)
    raise ValueError(f"unknown metric {metric!r}")


def metric_fits_task(metric: str, classification: bool) -> bool:
    return (metric in CLASSIFICATION_METRICS) == classification
