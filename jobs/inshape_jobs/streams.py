"""Record streams for the producer: the scikit-learn digits set and a drifting hyperplane.

Pure generators of JSON-ready dicts (plus malformed byte strings on request); no Kafka here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

DIGITS_FEATURES = [f"px{i}" for i in range(64)]


def hyperplane_features(n_features: int) -> list[str]:
    return [f"x{i}" for i in range(n_features)]


def digits_records(seed: int = 0, noise: float = 0.0) -> Iterator[dict[str, Any]]:
    """The 1,797 8x8 digit images that ship with scikit-learn, reshuffled on every pass;
    with noise > 0 each pixel gets Gaussian noise so repeated passes are not identical."""
    data = load_digits()
    rng = np.random.default_rng(seed)
    while True:
        for index in rng.permutation(len(data.target)):
            pixels = data.data[index]
            if noise > 0:
                pixels = np.clip(pixels + rng.normal(0.0, noise, pixels.shape), 0.0, 16.0)
            record: dict[str, Any] = {
                name: round(float(v), 3) for name, v in zip(DIGITS_FEATURES, pixels, strict=True)
            }
            record["label"] = int(data.target[index])
            yield record


class RotatingHyperplane:
    """The classic concept-drift stream: label = [w . x > sum(w) / 2] with x uniform in
    [0, 1]^d, while w moves a little every record, so a stale model decays steadily."""

    def __init__(
        self,
        n_features: int = 10,
        drift: float = 1e-3,
        noise: float = 0.05,
        drift_features: int | None = None,
        seed: int = 0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.features = hyperplane_features(n_features)
        self.weights = self.rng.uniform(0.0, 1.0, n_features)
        self.direction = np.ones(n_features)
        moving = n_features if drift_features is None else drift_features
        self.moving = np.arange(n_features) < moving
        self.drift = drift
        self.noise = noise

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n records as arrays, the weights drifting between records as in the one-by-one
        stream (a cumulative sum over steps, for speed)."""
        x = self.rng.uniform(0.0, 1.0, (n, len(self.weights)))
        steps = np.outer(np.arange(1, n + 1), self.drift * self.direction * self.moving)
        weights = self.weights + steps
        y = (np.einsum("ij,ij->i", x, weights) > weights.sum(axis=1) / 2).astype(np.int64)
        flip = self.rng.random(n) < self.noise
        y[flip] = 1 - y[flip]
        self.weights = weights[-1]
        # Each moving weight turns back with probability 10% per batch, as in MOA's generator.
        turn = self.rng.random(len(self.weights)) < 0.1
        self.direction[turn] *= -1
        return x, y

    def records(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        while True:
            x, y = self.batch(batch)
            for row, label in zip(x, y, strict=True):
                record: dict[str, Any] = {
                    name: round(float(v), 5) for name, v in zip(self.features, row, strict=True)
                }
                record["label"] = int(label)
                yield record


MALFORMED_KINDS = (
    "not_json",
    "not_object",
    "missing_feature",
    "non_numeric_feature",
    "non_finite",
    "missing_label",
    "oversized",
)


def malformed_record(kind: str, good: dict[str, Any], max_bytes: int = 65_536) -> bytes:
    """A bad variant of a good record, one per reject reason the job knows."""
    bad = dict(good)
    first = next(iter(k for k in bad if k != "label"))
    if kind == "not_json":
        return json.dumps(good).encode()[:-7]
    if kind == "not_object":
        return json.dumps(list(good.values())).encode()
    if kind == "missing_feature":
        del bad[first]
    elif kind == "non_numeric_feature":
        bad[first] = "seven"
    elif kind == "non_finite":
        bad[first] = float("nan")
    elif kind == "missing_label":
        bad.pop("label", None)
    elif kind == "oversized":
        bad["padding"] = "x" * max_bytes
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return json.dumps(bad).encode()
