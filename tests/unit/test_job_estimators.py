"""Resolving and building the estimator a policy names, and updating candidates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier, SGDRegressor

from inshape_api.spec import ModelSpec, SpecError, Strategy, WindowSpec
from inshape_jobs.estimators import (
    IncrementalCandidate,
    WindowCandidate,
    build_estimator,
    estimator_class,
    is_classification,
)


def model_spec(estimator: str, strategy: Strategy = "incremental", **params: Any) -> ModelSpec:
    window = WindowSpec() if strategy == "retrain" else None
    return ModelSpec(
        name="m",
        estimator=estimator,
        params=params,
        strategy=strategy,
        window=window,
    )


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    x = rng.normal(0.0, 0.5, (n, 2)) + centres[y]
    return x, y


def test_estimator_class_resolves_sklearn_classes() -> None:
    assert estimator_class("sklearn.linear_model.SGDClassifier") is SGDClassifier
    assert estimator_class("sklearn.linear_model._stochastic_gradient.SGDRegressor") is SGDRegressor


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("os.system", "must name a class in scikit-learn"),
        ("builtins.object", "must name a class in scikit-learn"),
        ("sklearnx.Evil", "must name a class in scikit-learn"),
        ("SGDClassifier", "must name a class in scikit-learn"),
        ("sklearn.linear_model.NoSuchModel", "not found"),
        ("sklearn.no_such_module.Model", "not found"),
        ("sklearn.base.clone", "is not a scikit-learn estimator"),
        ("sklearn.utils.Bunch", "is not a scikit-learn estimator"),
        ("sklearn.exceptions.NotFittedError", "is not a scikit-learn estimator"),
    ],
)
def test_estimator_class_rejects(path: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        estimator_class(path)
    assert info.value.path == "spec.model.estimator"
    assert fragment in str(info.value)


def test_build_estimator_passes_params() -> None:
    estimator = build_estimator(
        model_spec("sklearn.linear_model.SGDClassifier", loss="log_loss", alpha=0.01)
    )
    assert isinstance(estimator, SGDClassifier)
    assert (estimator.loss, estimator.alpha) == ("log_loss", 0.01)


def test_build_estimator_maps_bad_params_to_the_params_field() -> None:
    with pytest.raises(SpecError) as info:
        build_estimator(model_spec("sklearn.linear_model.SGDClassifier", no_such_param=1))
    assert info.value.path == "spec.model.params"
    assert "no_such_param" in str(info.value)


def test_incremental_strategy_needs_partial_fit() -> None:
    with pytest.raises(SpecError) as info:
        build_estimator(model_spec("sklearn.ensemble.RandomForestClassifier"))
    assert info.value.path == "spec.model.strategy"
    assert "partial_fit" in str(info.value)


def test_retrain_strategy_accepts_estimators_without_partial_fit() -> None:
    estimator = build_estimator(
        model_spec("sklearn.ensemble.RandomForestClassifier", "retrain", n_estimators=3)
    )
    assert not hasattr(estimator, "partial_fit")


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [(SGDClassifier(), True), (LogisticRegression(), True), (SGDRegressor(), False)],
)
def test_is_classification(estimator: Any, expected: bool) -> None:
    assert is_classification(estimator) is expected


def test_incremental_candidate_learns_and_leaves_the_champion_alone() -> None:
    x, y = blobs(600)
    champion = SGDClassifier(random_state=0).partial_fit(x[:50], y[:50], classes=[0, 1, 2])
    before = champion.coef_.copy()
    candidate = IncrementalCandidate(champion, classes=np.array([0, 1, 2]))
    for start in range(50, 600, 100):
        candidate.update(x[start : start + 100], y[start : start + 100])
    model = candidate.finish()
    assert model is not None and model is not champion
    assert candidate.seen == 550
    np.testing.assert_array_equal(champion.coef_, before)
    assert not np.array_equal(model.coef_, before)
    assert model.score(x, y) > 0.9


def test_incremental_candidate_declares_classes_absent_from_the_first_chunk() -> None:
    x, y = blobs(300)
    candidate = IncrementalCandidate(SGDClassifier(random_state=0), classes=np.array([0, 1, 2, 3]))
    candidate.update(x[y < 2], y[y < 2])
    candidate.update(x, y)
    model = candidate.finish()
    assert model is not None
    assert model.classes_.tolist() == [0, 1, 2, 3]


def test_incremental_candidate_regressor() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    y = 3 * x[:, 0] - x[:, 1]
    candidate = IncrementalCandidate(SGDRegressor(random_state=0), classes=None)
    for _ in range(5):
        candidate.update(x, y)
    model = candidate.finish()
    assert model is not None
    assert candidate.seen == 2_500
    assert model.score(x, y) > 0.99


def test_incremental_candidate_without_data() -> None:
    fresh = IncrementalCandidate(SGDClassifier(), classes=np.array([0, 1]))
    fresh.update(np.empty((0, 2)), np.empty(0, dtype=np.int64))
    assert fresh.seen == 0
    assert fresh.finish() is None
    x, y = blobs(50)
    fitted = SGDClassifier().partial_fit(x, y, classes=[0, 1, 2])
    assert IncrementalCandidate(fitted, classes=None).finish() is not None


def test_window_candidate_refits_on_everything_below_capacity() -> None:
    x, y = blobs(300)
    candidate = WindowCandidate(LogisticRegression(), capacity=1_000, n_features=2)
    candidate.update(x[:100], y[:100])
    candidate.update(x[100:], y[100:])
    model = candidate.finish()
    assert model is not None
    expected = LogisticRegression().fit(x, y)
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-6)
    assert candidate.seen == 300


def test_window_keeps_the_most_recent_rows() -> None:
    candidate = WindowCandidate(LinearRegression(), capacity=3, n_features=1)
    rows = np.arange(10, dtype=np.float64)
    for chunk in ([0, 1], [2], [3, 4, 5, 6], [7], [8, 9]):
        candidate.update(rows[chunk].reshape(-1, 1), rows[chunk] * 10)
    assert sorted(candidate._x[:, 0].tolist()) == [7.0, 8.0, 9.0]
    assert sorted(candidate._y.tolist()) == [70.0, 80.0, 90.0]  # type: ignore[union-attr]
    assert candidate.seen == 10


def test_window_chunk_larger_than_capacity_keeps_its_tail() -> None:
    candidate = WindowCandidate(LinearRegression(), capacity=4, n_features=1)
    rows = np.arange(10, dtype=np.float64)
    candidate.update(rows.reshape(-1, 1), rows)
    assert candidate.seen == 10
    assert sorted(candidate._x[:, 0].tolist()) == [6.0, 7.0, 8.0, 9.0]
    assert sorted(candidate._y.tolist()) == [6.0, 7.0, 8.0, 9.0]  # type: ignore[union-attr]


def test_window_model_reflects_only_the_recent_concept() -> None:
    # The old rows follow y = -x, the recent ones y = +2x: a window of 50 sees only the latter.
    rng = np.random.default_rng(0)
    old = rng.uniform(0, 1, (200, 1))
    new = rng.uniform(0, 1, (100, 1))
    candidate = WindowCandidate(LinearRegression(), capacity=50, n_features=1)
    candidate.update(old, -old[:, 0])
    for start in range(0, 100, 30):
        part = new[start : start + 30]
        candidate.update(part, 2 * part[:, 0])
    model = candidate.finish()
    assert model is not None
    assert model.coef_[0] == pytest.approx(2.0)


def test_window_keeps_string_labels() -> None:
    candidate = WindowCandidate(LogisticRegression(), capacity=10, n_features=1)
    x = np.array([[0.0], [0.1], [1.0], [1.1]])
    candidate.update(x, np.array(["low", "low", "high", "high"], dtype=object))
    model = candidate.finish()
    assert model is not None
    assert model.predict(np.array([[0.05], [1.05]])).tolist() == ["low", "high"]


def test_window_candidate_without_data() -> None:
    candidate = WindowCandidate(LogisticRegression(), capacity=10, n_features=2)
    candidate.update(np.empty((0, 2)), np.empty(0))
    assert candidate.finish() is None


def test_window_candidate_does_not_fit_the_base() -> None:
    base = LogisticRegression()
    x, y = blobs(100)
    candidate = WindowCandidate(base, capacity=100, n_features=2)
    candidate.update(x, y)
    assert candidate.finish() is not base
    assert not hasattr(base, "coef_")
