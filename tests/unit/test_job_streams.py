"""The producer's record streams, and the malformed records it injects."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from inshape_jobs.records import ChunkParser, RawChunk, RecordSchema, Reject
from inshape_jobs.streams import (
    DIGITS_FEATURES,
    MALFORMED_KINDS,
    RotatingHyperplane,
    digits_records,
    hyperplane_features,
    malformed_record,
)


def take(iterator: Any, n: int) -> list[dict[str, Any]]:
    return list(itertools.islice(iterator, n))


def test_digits_records_have_64_pixels_and_an_int_label() -> None:
    records = take(digits_records(), 200)
    assert [f"px{i}" for i in range(64)] == DIGITS_FEATURES
    for record in records:
        assert list(record) == [*DIGITS_FEATURES, "label"]
        assert type(record["label"]) is int and 0 <= record["label"] <= 9
        assert all(type(record[f]) is float and 0.0 <= record[f] <= 16.0 for f in DIGITS_FEATURES)
    assert {r["label"] for r in records} == set(range(10))


def test_digits_records_are_deterministic_per_seed() -> None:
    assert take(digits_records(seed=3), 20) == take(digits_records(seed=3), 20)
    assert take(digits_records(seed=3), 20) != take(digits_records(seed=4), 20)


def test_digits_pass_covers_the_whole_set_then_repeats() -> None:
    records = take(digits_records(seed=0), 1_797 * 2)
    first, second = records[:1_797], records[1_797:]
    key = json.dumps
    assert sorted(map(key, first)) == sorted(map(key, second))
    assert first != second  # reshuffled


def test_digits_noise_changes_pixels_within_range() -> None:
    clean = take(digits_records(seed=0), 50)
    noisy = take(digits_records(seed=0, noise=1.0), 50)
    assert [r["label"] for r in clean] == [r["label"] for r in noisy]
    assert clean != noisy
    assert all(0.0 <= r[f] <= 16.0 for r in noisy for f in DIGITS_FEATURES)


def test_hyperplane_records() -> None:
    records = take(RotatingHyperplane(n_features=5, seed=0).records(batch=100), 250)
    assert hyperplane_features(5) == ["x0", "x1", "x2", "x3", "x4"]
    for record in records:
        assert list(record) == ["x0", "x1", "x2", "x3", "x4", "label"]
        assert record["label"] in (0, 1) and type(record["label"]) is int
        assert all(0.0 <= record[f] <= 1.0 for f in hyperplane_features(5))
    share = np.mean([r["label"] for r in records])
    assert 0.2 < share < 0.8


def test_hyperplane_is_deterministic_per_seed() -> None:
    a, b, c = RotatingHyperplane(seed=7), RotatingHyperplane(seed=7), RotatingHyperplane(seed=8)
    xa, ya = a.batch(500)
    xb, yb = b.batch(500)
    xc, _ = c.batch(500)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(xa, xc)
    assert take(RotatingHyperplane(seed=7).records(), 30) == take(
        RotatingHyperplane(seed=7).records(), 30
    )


def test_hyperplane_weights_drift() -> None:
    stream = RotatingHyperplane(n_features=4, drift=1e-3, seed=0)
    start = stream.weights.copy()
    stream.batch(1_000)
    # Every moving weight moved by drift per record.
    np.testing.assert_allclose(np.abs(stream.weights - start), 1.0)


def test_hyperplane_only_drift_features_move() -> None:
    stream = RotatingHyperplane(n_features=6, drift_features=2, seed=0)
    start = stream.weights.copy()
    for _ in range(5):
        stream.batch(200)
    moved = ~np.isclose(stream.weights, start)
    assert moved.tolist() == [True, True, False, False, False, False]


def test_hyperplane_without_drift_is_stationary() -> None:
    stream = RotatingHyperplane(drift=0.0, seed=0)
    start = stream.weights.copy()
    stream.batch(1_000)
    np.testing.assert_array_equal(stream.weights, start)


def test_a_stale_model_decays_on_the_drifting_stream() -> None:
    stream = RotatingHyperplane(seed=0)
    x_train, y_train = stream.batch(2_000)
    x_near, y_near = stream.batch(2_000)
    for _ in range(36):
        stream.batch(1_000)
    x_far, y_far = stream.batch(2_000)  # records 40,000 to 42,000
    model = LogisticRegression().fit(x_train, y_train)
    near, far = model.score(x_near, y_near), model.score(x_far, y_far)
    assert near > 0.8
    assert far < near - 0.1


def test_hyperplane_label_noise_flips_labels() -> None:
    clean = RotatingHyperplane(drift=0.0, noise=0.0, seed=0)
    noisy = RotatingHyperplane(drift=0.0, noise=0.3, seed=0)
    x, y = clean.batch(5_000)
    weights = clean.weights
    assert np.array_equal(y, (x @ weights > weights.sum() / 2).astype(np.int64))
    xn, yn = noisy.batch(5_000)
    truth = (xn @ noisy.weights > noisy.weights.sum() / 2).astype(np.int64)
    assert float((yn != truth).mean()) == pytest.approx(0.3, abs=0.03)


# --- malformed records -----------------------------------------------------------------------

DIGITS_SCHEMA = RecordSchema(
    features=tuple(DIGITS_FEATURES), label="label", max_bytes=2_048, classification=True
)
HYPERPLANE_SCHEMA = RecordSchema(
    features=tuple(hyperplane_features(10)), label="label", max_bytes=512, classification=True
)


def test_every_malformed_kind_is_a_reject_reason() -> None:
    assert set(MALFORMED_KINDS) <= {r.value for r in Reject}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
@pytest.mark.parametrize("stream", ["digits", "hyperplane"])
def test_parser_classifies_each_malformed_kind_as_itself(kind: str, stream: str) -> None:
    if stream == "digits":
        schema, goods = DIGITS_SCHEMA, take(digits_records(seed=1), 3)
    else:
        schema, goods = HYPERPLANE_SCHEMA, take(RotatingHyperplane(seed=1).records(), 3)
    values: list[bytes | None] = [
        json.dumps(goods[0]).encode(),
        malformed_record(kind, goods[1], max_bytes=schema.max_bytes),
        json.dumps(goods[2]).encode(),
    ]
    assert all(len(v) <= schema.max_bytes for v in (values[0], values[2]))  # type: ignore[arg-type]
    parsed = ChunkParser(schema).parse(
        RawChunk(
            partitions=np.zeros(3, dtype=np.int64),
            offsets=np.arange(3, dtype=np.int64),
            values=values,
        )
    )
    assert dict(parsed.rejects) == {kind: 1}
    assert parsed.rejected == [(0, 1, kind, values[1])]
    assert parsed.offsets.tolist() == [0, 2]
    assert parsed.labels.tolist() == [goods[0]["label"], goods[2]["label"]]


def test_malformed_record_does_not_modify_the_good_one() -> None:
    good = take(digits_records(), 1)[0]
    before = dict(good)
    for kind in MALFORMED_KINDS:
        malformed_record(kind, good)
    assert good == before


def test_unknown_malformed_kind() -> None:
    with pytest.raises(ValueError, match="unknown malformed kind"):
        malformed_record("bad_label", {"x0": 1.0, "label": 1})
