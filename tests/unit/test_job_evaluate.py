"""Scoring on the holdout: every metric against scikit-learn's own, plus per-example outcomes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.svm import LinearSVC

from inshape_jobs.evaluate import direction, metric_fits_task, score


def noisy_classes(n: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes, so no metric is trivially perfect."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(0.0, 1.0, (n_classes, 4))
    return centres[y] + rng.normal(0.0, 1.2, (n, 4)), y


def noisy_regression(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([2.0, -1.0, 0.5]) + rng.normal(0.0, 1.0, n)


@pytest.fixture(scope="module")
def binary() -> tuple[Any, np.ndarray, np.ndarray]:
    x, y = noisy_classes(600, 2)
    return LogisticRegression().fit(x[:300], y[:300]), x[300:], y[300:]


@pytest.fixture(scope="module")
def multiclass() -> tuple[Any, np.ndarray, np.ndarray]:
    x, y = noisy_classes(900, 4, seed=1)
    return LogisticRegression().fit(x[:450], y[:450]), x[450:], y[450:]


@pytest.fixture(scope="module")
def regression() -> tuple[Any, np.ndarray, np.ndarray]:
    x, y = noisy_regression(400)
    return LinearRegression().fit(x[:200], y[:200]), x[200:], y[200:]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_accuracy(task: str, request: pytest.FixtureRequest) -> None:
    model, x, y = request.getfixturevalue(task)
    result = score(model, "accuracy", x, y)
    expected = skm.accuracy_score(y, model.predict(x))
    assert 0.5 < expected < 1.0
    assert result.metric == "accuracy"
    assert result.value == pytest.approx(expected)
    np.testing.assert_array_equal(result.per_example, (model.predict(x) == y).astype(float))


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_f1_macro(task: str, request: pytest.FixtureRequest) -> None:
    model, x, y = request.getfixturevalue(task)
    result = score(model, "f1_macro", x, y)
    expected = skm.f1_score(y, model.predict(x), average="macro")
    assert result.value == pytest.approx(expected)
    assert result.value != pytest.approx(skm.accuracy_score(y, model.predict(x)))
    assert result.per_example.mean() == pytest.approx(skm.accuracy_score(y, model.predict(x)))


def test_roc_auc_binary(binary: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = binary
    result = score(model, "roc_auc", x, y)
    assert result.value == pytest.approx(skm.roc_auc_score(y, model.predict_proba(x)[:, 1]))
    assert result.value != pytest.approx(skm.accuracy_score(y, model.predict(x)))


def test_roc_auc_binary_from_decision_function() -> None:
    x, y = noisy_classes(600, 2)
    model = LinearSVC().fit(x[:300], y[:300])
    assert not hasattr(model, "predict_proba")
    result = score(model, "roc_auc", x[300:], y[300:])
    assert result.value == pytest.approx(
        skm.roc_auc_score(y[300:], model.decision_function(x[300:]))
    )


def test_roc_auc_multiclass(multiclass: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = multiclass
    result = score(model, "roc_auc", x, y)
    expected = skm.roc_auc_score(y, model.predict_proba(x), multi_class="ovr")
    assert 0.5 < expected < 1.0
    assert result.value == pytest.approx(expected)


def test_roc_auc_multiclass_from_decision_function() -> None:
    x, y = noisy_classes(900, 3, seed=2)
    model = SGDClassifier(loss="hinge", random_state=0).fit(x[:450], y[:450])
    assert not hasattr(model, "predict_proba")
    result = score(model, "roc_auc", x[450:], y[450:])
    assert 0.6 < result.value < 1.0


def test_roc_auc_with_string_classes() -> None:
    x, y = noisy_classes(600, 3, seed=3)
    names = np.array(["ant", "bee", "cat"], dtype=object)[y]
    model = LogisticRegression().fit(x[:300], names[:300])
    result = score(model, "roc_auc", x[300:], names[300:])
    expected = skm.roc_auc_score(names[300:], model.predict_proba(x[300:]), multi_class="ovr")
    assert result.value == pytest.approx(expected)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_roc_auc_of_a_single_class_holdout_is_undefined(
    task: str, request: pytest.FixtureRequest
) -> None:
    model, x, y = request.getfixturevalue(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(score(model, "roc_auc", x[y == 1], y[y == 1]).value)


def test_rmse(regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = regression
    result = score(model, "rmse", x, y)
    assert result.value == pytest.approx(np.sqrt(skm.mean_squared_error(y, model.predict(x))))
    assert result.value > 0.5
    np.testing.assert_allclose(result.per_example, (model.predict(x) - y) ** 2)


def test_mae(regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = regression
    result = score(model, "mae", x, y)
    assert result.value == pytest.approx(skm.mean_absolute_error(y, model.predict(x)))
    np.testing.assert_allclose(result.per_example, np.abs(model.predict(x) - y))


def test_r2(regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = regression
    result = score(model, "r2", x, y)
    expected = skm.r2_score(y, model.predict(x))
    assert 0.5 < expected < 1.0
    assert result.value == pytest.approx(expected)
    np.testing.assert_allclose(result.per_example, (model.predict(x) - y) ** 2)


def test_regression_metrics_accept_integer_labels(
    regression: tuple[Any, np.ndarray, np.ndarray],
) -> None:
    model, x, y = regression
    rounded = np.round(y).astype(np.int64)
    assert score(model, "mae", x, rounded).value == pytest.approx(
        skm.mean_absolute_error(rounded, model.predict(x))
    )


def test_unknown_metric(regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, x, y = regression
    with pytest.raises(ValueError, match="unknown metric"):
        score(model, "mape", x, y)


@pytest.mark.parametrize(
    ("metric", "sign"),
    [
        ("accuracy", 1.0),
        ("f1_macro", 1.0),
        ("roc_auc", 1.0),
        ("r2", 1.0),
        ("rmse", -1.0),
        ("mae", -1.0),
    ],
)
def test_direction(metric: str, sign: float) -> None:
    assert direction(metric) == sign


@pytest.mark.parametrize(
    ("metric", "classification", "fits"),
    [
        ("accuracy", True, True),
        ("roc_auc", True, True),
        ("f1_macro", False, False),
        ("rmse", False, True),
        ("r2", False, True),
        ("mae", True, False),
    ],
)
def test_metric_fits_task(metric: str, classification: bool, fits: bool) -> None:
    assert metric_fits_task(metric, classification) is fits
