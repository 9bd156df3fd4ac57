"""Building the scikit-learn estimator a policy names, and updating a candidate from it."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, is_classifier

from inshape_api.spec import ModelSpec, SpecError


def estimator_class(path: str) -> type[BaseEstimator]:
    """Resolve `sklearn.x.Y`; only scikit-learn classes, so a policy cannot import anything."""
    module_name, _, class_name = path.rpartition(".")
    if module_name.partition(".")[0] != "sklearn":  # not sklearn_evil, sklearnx, ...
        raise SpecError("spec.model.estimator", "must name a class in scikit-learn (sklearn.*)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError("spec.model.estimator", f"{path} not found: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise SpecError("spec.model.estimator", f"{path} is not a scikit-learn estimator")
    return cls


def build_estimator(spec: ModelSpec) -> BaseEstimator:
    cls = estimator_class(spec.estimator)
    try:
        estimator = cls(**spec.params)
    except TypeError as exc:
        raise SpecError("spec.model.params", str(exc)) from exc
    if spec.strategy == "incremental" and not hasattr(estimator, "partial_fit"):
        raise SpecError(
            "spec.model.strategy",
            f"{spec.estimator} has no partial_fit; use strategy retrain with a window",
        )
    return estimator


def is_classification(estimator: BaseEstimator) -> bool:
    return bool(is_classifier(estimator))


class IncrementalCandidate:
    """Champion copy (or a fresh estimator) updated chunk by chunk with partial_fit."""

    def __init__(self, base: BaseEstimator, classes: npt.NDArray[Any] | None) -> None:
        self.model = copy.deepcopy(base)
        self.classes = classes
        self.seen = 0

    def update(self, x: npt.NDArray[np.float64], y: npt.NDArray[Any]) -> None:
        if len(y) == 0:
            return
        if is_classification(self.model):
            self.model.partial_fit(x, y, classes=self.classes)
        else:
            self.model.partial_fit(x, y)
        self.seen += len(y)

    def finish(self) -> BaseEstimator | None:
        return self.model if self.seen or hasattr(self.model, "n_features_in_") else None


class WindowCandidate:
    """Keeps the most recent `capacity` training rows (a ring buffer) and refits on them."""

    def __init__(self, base: BaseEstimator, capacity: int, n_features: int) -> None:
        self.base = base
        self.capacity = capacity
        self._x = np.empty((capacity, n_features), dtype=np.float64)
        self._y: npt.NDArray[Any] | None = None
        self._next = 0
        self.seen = 0

    def update(self, x: npt.NDArray[np.float64], y: npt.NDArray[Any]) -> None:
        if len(y) == 0:
            return
        if self._y is None:
            self._y = np.empty(self.capacity, dtype=y.dtype)
        self.seen += len(y)  # every row seen, including those a long chunk pushes out at once
        x, y = x[-self.capacity :], y[-self.capacity :]
        positions = (self._next + np.arange(len(y))) % self.capacity
        self._x[positions] = x
        self._y[positions] = y
        self._next = int((self._next + len(y)) % self.capacity)

    def finish(self) -> BaseEstimator | None:
        if self._y is None:
            return None
        size = min(self.seen, self.capacity)
        model = copy.deepcopy(self.base)
        model.fit(self._x[:size], self._y[:size])
        return model
