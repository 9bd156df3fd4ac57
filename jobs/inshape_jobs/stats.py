"""Sample characteristics, computed in one streaming pass over the chunks.

Per-feature count/mean/std/min/max (merged chunk by chunk), the label distribution, and
histograms on fixed bin edges so the sample can be compared with the champion's (drift).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
DRIFT_BINS = 10
PSI_EPSILON = 1e-4


def bin_edges(sample: FloatArray, bins: int = DRIFT_BINS) -> list[list[float]]:
    """Inner bin edges per feature from a sample's quantiles (outer bins are open-ended)."""
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.quantile(sample, quantiles, axis=0).T
    return [sorted(set(np.round(row, 12).tolist())) for row in edges]


@dataclass
class SampleStats:
    """Streaming summary of the feature rows and labels of one run's valid records."""

    features: list[str]
    edges: list[list[float]] | None = None
    n: int = 0
    _mean: FloatArray | None = None
    _m2: FloatArray | None = None
    _min: FloatArray | None = None
    _max: FloatArray | None = None
    labels: Counter[str] = field(default_factory=Counter)
    _hist: list[npt.NDArray[np.int64]] = field(default_factory=list)

    def add(self, x: FloatArray, y: npt.NDArray[Any]) -> None:
        if len(x) == 0:
            return
        if self.edges is None:
            self.edges = bin_edges(x)
        if not self._hist:
            self._hist = [np.zeros(len(e) + 1, dtype=np.int64) for e in self.edges]
        n_b = len(x)
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        if self._mean is None or self._m2 is None or self._min is None or self._max is None:
            self._mean, self._m2 = mean_b, m2_b
            self._min, self._max = x.min(axis=0), x.max(axis=0)
        else:
            # Chan et al.'s parallel update: exact, and stable for large n.
            total = self.n + n_b
            delta = mean_b - self._mean
            self._mean = self._mean + delta * n_b / total
            self._m2 = self._m2 + m2_b + delta**2 * self.n * n_b / total
            self._min = np.minimum(self._min, x.min(axis=0))
            self._max = np.maximum(self._max, x.max(axis=0))
        self.n += n_b
        for j, edges in enumerate(self.edges):
            idx = np.searchsorted(np.asarray(edges), x[:, j], side="right")
            self._hist[j] += np.bincount(idx, minlength=len(edges) + 1)
        values, counts = np.unique(y.astype(str), return_counts=True)
        self.labels.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))

    def feature_summary(self) -> dict[str, dict[str, float]]:
        if self._mean is None or self._m2 is None or self._min is None or self._max is None:
            return {}
        std = np.sqrt(self._m2 / max(self.n, 1))
        return {
            name: {
                "mean": float(self._mean[j]),
                "std": float(std[j]),
                "min": float(self._min[j]),
                "max": float(self._max[j]),
            }
            for j, name in enumerate(self.features)
        }

    def profile(self) -> dict[str, Any]:
        """What a later run needs to measure drift against this sample."""
        return {
            "features": self.features,
            "n": self.n,
            "edges": self.edges or [],
            "counts": [h.tolist() for h in self._hist],
            "labels": dict(self.labels),
        }


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index between two histograms over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    p = np.clip(e / e.sum(), PSI_EPSILON, None)
    q = np.clip(a / a.sum(), PSI_EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def drift_scores(reference: dict[str, Any], current: dict[str, Any]) -> dict[str, float]:
    """PSI per feature of the current sample against the reference (the champion's training
    sample); both profiles must share bin edges, which is why a run reuses the champion's."""
    if reference.get("features") != current.get("features"):
        return {}
    if reference.get("edges") != current.get("edges"):
        return {}
    return {
        name: psi(ref, cur)
        for name, ref, cur in zip(
            current["features"], reference["counts"], current["counts"], strict=True
        )
    }


def summarize_drift(per_feature: dict[str, float]) -> dict[str, float]:
    if not per_feature:
        return {}
    values = np.asarray(list(per_feature.values()))
    return {"drift_psi_mean": float(values.mean()), "drift_psi_max": float(values.max())}
