"""Streaming sample statistics, histograms and drift."""

from __future__ import annotations

import numpy as np
import pytest

from inshape_jobs.stats import (
    DRIFT_BINS,
    SampleStats,
    bin_edges,
    drift_scores,
    psi,
    summarize_drift,
)

FEATURES = ["a", "b", "c"]


def sample(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.normal(5.0 + shift, 2.0, n),
            rng.uniform(-1.0, 1.0, n) + shift,
            rng.exponential(3.0, n) + shift,
        ]
    )


def stats_over(chunks: list[np.ndarray], edges: list[list[float]] | None = None) -> SampleStats:
    stats = SampleStats(FEATURES, edges=edges)
    for i, x in enumerate(chunks):
        stats.add(x, np.arange(len(x)) % 3 + i % 2)
    return stats


def test_summary_over_chunks_equals_numpy_over_the_concatenation() -> None:
    chunks = [sample(n, seed) for seed, n in enumerate([1, 700, 3, 2_000, 50])]
    chunks = [c + 1e6 if i == 3 else c for i, c in enumerate(chunks)]  # a far-off chunk
    everything = np.concatenate(chunks)
    summary = stats_over(chunks).feature_summary()
    assert list(summary) == FEATURES
    for j, name in enumerate(FEATURES):
        column = everything[:, j]
        assert summary[name]["mean"] == pytest.approx(column.mean(), rel=1e-12)
        assert summary[name]["std"] == pytest.approx(column.std(), rel=1e-9)
        assert summary[name]["min"] == column.min()
        assert summary[name]["max"] == column.max()


def test_summary_of_a_single_chunk() -> None:
    x = sample(100, 0)
    summary = stats_over([x]).feature_summary()
    assert summary["b"]["std"] == pytest.approx(x[:, 1].std())


def test_empty_chunks_change_nothing() -> None:
    stats = SampleStats(FEATURES)
    stats.add(np.empty((0, 3)), np.empty(0))
    assert stats.n == 0 and stats.edges is None
    assert stats.feature_summary() == {}
    x = sample(10, 1)
    stats.add(x, np.zeros(10))
    stats.add(np.empty((0, 3)), np.empty(0))
    assert stats.n == 10


def test_label_counts_across_chunks() -> None:
    stats = SampleStats(["a"])
    stats.add(np.zeros((4, 1)), np.array([1, 2, 2, 3]))
    stats.add(np.ones((3, 1)), np.array([3, 3, 7]))
    assert stats.labels == {"1": 1, "2": 2, "3": 3, "7": 1}
    assert stats.n == 7


def test_string_labels_are_counted() -> None:
    stats = SampleStats(["a"])
    stats.add(np.zeros((3, 1)), np.array(["cat", "dog", "cat"], dtype=object))
    assert stats.labels == {"cat": 2, "dog": 1}


def test_edges_come_from_the_first_chunk_and_are_kept() -> None:
    first, second = sample(1_000, 0), sample(1_000, 1, shift=5.0)
    stats = stats_over([first, second])
    assert stats.edges == bin_edges(first)
    assert all(len(e) == DRIFT_BINS - 1 for e in stats.edges)


def test_histogram_counts_sum_to_n() -> None:
    chunks = [sample(300, 0), sample(5, 1), sample(1_000, 2, shift=10.0)]
    profile = stats_over(chunks).profile()
    assert profile["n"] == 1_305
    assert profile["features"] == FEATURES
    assert len(profile["counts"]) == len(FEATURES)
    for counts, edges in zip(profile["counts"], profile["edges"], strict=True):
        assert sum(counts) == 1_305
        assert len(counts) == len(edges) + 1
    assert sum(profile["labels"].values()) == 1_305


def test_histogram_bins_values_by_the_given_edges() -> None:
    stats = SampleStats(["a"], edges=[[0.0, 10.0]])
    stats.add(np.array([[-5.0], [0.0], [3.0], [10.0], [11.0], [99.0]]), np.zeros(6))
    # Outer bins are open-ended; a value equal to an edge falls in the bin above it.
    assert stats.profile()["counts"] == [[1, 2, 3]]


def test_constant_feature_gets_one_edge() -> None:
    x = np.column_stack([np.full(100, 4.0), np.arange(100.0)])
    edges = bin_edges(x)
    assert edges[0] == [4.0]
    assert len(edges[1]) == DRIFT_BINS - 1


def test_bin_edges_are_sorted_quantiles() -> None:
    x = np.arange(1_000, dtype=np.float64).reshape(-1, 1)
    (edges,) = bin_edges(x)
    assert edges == sorted(edges)
    assert edges == pytest.approx(np.quantile(x[:, 0], np.linspace(0, 1, 11)[1:-1]).tolist())


def test_psi_of_identical_histograms_is_zero() -> None:
    counts = [10, 50, 200, 50, 10]
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert psi(counts, [c * 7 for c in counts]) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_shifted_histograms_is_large() -> None:
    reference = stats_over([sample(5_000, 0)])
    shifted = stats_over([sample(5_000, 1, shift=2.0)], edges=reference.edges)
    scores = drift_scores(reference.profile(), shifted.profile())
    assert set(scores) == set(FEATURES)
    assert all(v > 0.2 for v in scores.values())


def test_psi_of_a_fresh_sample_of_the_same_distribution_is_small() -> None:
    reference = stats_over([sample(20_000, 0)])
    same = stats_over([sample(20_000, 1)], edges=reference.edges)
    scores = drift_scores(reference.profile(), same.profile())
    assert all(v < 0.01 for v in scores.values())


def test_psi_is_symmetric_and_positive() -> None:
    p, q = [30, 30, 40], [10, 20, 70]
    assert psi(p, q) > 0
    assert psi(p, q) == pytest.approx(psi(q, p))


def test_psi_of_an_empty_histogram_is_zero() -> None:
    assert psi([0, 0, 0], [1, 2, 3]) == 0.0
    assert psi([1, 2, 3], [0, 0, 0]) == 0.0


def test_psi_survives_empty_bins() -> None:
    value = psi([100, 0, 0], [0, 0, 100])
    assert np.isfinite(value) and value > 1.0


def test_drift_scores_with_mismatched_edges_is_empty() -> None:
    reference = stats_over([sample(1_000, 0)])
    other = stats_over([sample(1_000, 1)])  # its own edges
    assert reference.edges != other.edges
    assert drift_scores(reference.profile(), other.profile()) == {}


def test_drift_scores_with_mismatched_features_is_empty() -> None:
    reference = stats_over([sample(1_000, 0)])
    renamed = {**reference.profile(), "features": ["x", "y", "z"]}
    assert drift_scores(reference.profile(), renamed) == {}
    assert drift_scores({}, reference.profile()) == {}


def test_profile_round_trips_through_json_types() -> None:
    import json

    profile = stats_over([sample(100, 0)]).profile()
    assert json.loads(json.dumps(profile)) == profile


def test_summarize_drift() -> None:
    assert summarize_drift({}) == {}
    assert summarize_drift({"a": 0.1, "b": 0.5}) == pytest.approx(
        {"drift_psi_mean": 0.3, "drift_psi_max": 0.5}
    )
