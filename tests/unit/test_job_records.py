"""Record parsing: every reject reason, and the good rows kept in arrival order."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from inshape_jobs.records import (
    ChunkParser,
    ParsedChunk,
    RawChunk,
    RecordSchema,
    Reject,
    classify_bad_record,
    drop_reread_rejects,
    drop_unknown_labels,
)

CLASSIFIER = RecordSchema(features=("a", "b"), label="label", max_bytes=1000, classification=True)
REGRESSOR = RecordSchema(features=("a", "b"), label="y", max_bytes=1000, classification=False)


def chunk(values: list[bytes | None], partition: int = 0, first_offset: int = 0) -> RawChunk:
    n = len(values)
    return RawChunk(
        partitions=np.full(n, partition, dtype=np.int64),
        offsets=np.arange(first_offset, first_offset + n, dtype=np.int64),
        values=values,
    )


def parse(schema: RecordSchema, values: list[bytes | None]) -> ParsedChunk:
    return ChunkParser(schema).parse(chunk(values))


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


# (schema, raw value, expected reason)
BAD: list[tuple[str, RecordSchema, bytes | None, Reject]] = [
    (
        "oversized",
        CLASSIFIER,
        encode({"a": 1, "b": 2, "label": 1, "pad": "x" * 1000}),
        Reject.OVERSIZED,
    ),
    ("none-value", CLASSIFIER, None, Reject.NOT_JSON),
    ("truncated", CLASSIFIER, b'{"a": 1, "b": 2, "lab', Reject.NOT_JSON),
    ("empty", CLASSIFIER, b"", Reject.NOT_JSON),
    ("garbage", CLASSIFIER, b"hello", Reject.NOT_JSON),
    ("invalid-utf8", CLASSIFIER, b'{"a": 1, "b": 2, "label": "\xff\xfe"}', Reject.NOT_JSON),
    ("invalid-utf8-bare", CLASSIFIER, b"\xff\xfe\xfd", Reject.NOT_JSON),
    ("list", CLASSIFIER, b"[1, 2, 3]", Reject.NOT_OBJECT),
    ("string", CLASSIFIER, b'"a"', Reject.NOT_OBJECT),
    ("number", CLASSIFIER, b"3", Reject.NOT_OBJECT),
    ("null", CLASSIFIER, b"null", Reject.NOT_OBJECT),
    ("missing-first", CLASSIFIER, encode({"b": 2, "label": 1}), Reject.MISSING_FEATURE),
    ("missing-last", CLASSIFIER, encode({"a": 1, "label": 1}), Reject.MISSING_FEATURE),
    (
        "string-feature",
        CLASSIFIER,
        encode({"a": "1", "b": 2, "label": 1}),
        Reject.NON_NUMERIC_FEATURE,
    ),
    (
        "bool-feature",
        CLASSIFIER,
        encode({"a": 1, "b": True, "label": 1}),
        Reject.NON_NUMERIC_FEATURE,
    ),
    (
        "null-feature",
        CLASSIFIER,
        encode({"a": None, "b": 2, "label": 1}),
        Reject.NON_NUMERIC_FEATURE,
    ),
    (
        "list-feature",
        CLASSIFIER,
        encode({"a": [1], "b": 2, "label": 1}),
        Reject.NON_NUMERIC_FEATURE,
    ),
    ("nan-literal", CLASSIFIER, b'{"a": NaN, "b": 2, "label": 1}', Reject.NON_FINITE),
    ("infinity-literal", CLASSIFIER, b'{"a": 1, "b": -Infinity, "label": 1}', Reject.NON_FINITE),
    ("huge-literal", CLASSIFIER, b'{"a": 1, "b": 1e999, "label": 1}', Reject.NON_FINITE),
    ("regressor-nan", REGRESSOR, b'{"a": NaN, "b": 2, "y": 1.5}', Reject.NON_FINITE),
    (
        "huge-int-feature",
        CLASSIFIER,
        b'{"a": 1' + b"0" * 400 + b', "b": 2, "label": 1}',
        Reject.NON_FINITE,
    ),
    ("missing-label", CLASSIFIER, encode({"a": 1, "b": 2}), Reject.MISSING_LABEL),
    ("null-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": None}), Reject.MISSING_LABEL),
    ("regressor-missing-label", REGRESSOR, encode({"a": 1, "b": 2}), Reject.MISSING_LABEL),
    ("bool-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": True}), Reject.BAD_LABEL),
    ("float-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": 1.5}), Reject.BAD_LABEL),
    ("integral-float-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": 1.0}), Reject.BAD_LABEL),
    ("empty-string-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": ""}), Reject.BAD_LABEL),
    ("list-label", CLASSIFIER, encode({"a": 1, "b": 2, "label": [1]}), Reject.BAD_LABEL),
    (
        "int64-overflow-label",
        CLASSIFIER,
        encode({"a": 1, "b": 2, "label": 2**63}),
        Reject.BAD_LABEL,
    ),
    (
        "huge-int-label",
        CLASSIFIER,
        b'{"a": 1, "b": 2, "label": 1' + b"0" * 400 + b"}",
        Reject.BAD_LABEL,
    ),
    (
        "regressor-huge-int-label",
        REGRESSOR,
        b'{"a": 1, "b": 2, "y": 1' + b"0" * 400 + b"}",
        Reject.BAD_LABEL,
    ),
    ("regressor-string-label", REGRESSOR, encode({"a": 1, "b": 2, "y": "3.5"}), Reject.BAD_LABEL),
    ("regressor-bool-label", REGRESSOR, encode({"a": 1, "b": 2, "y": False}), Reject.BAD_LABEL),
    ("regressor-nan-label", REGRESSOR, b'{"a": 1, "b": 2, "y": NaN}', Reject.BAD_LABEL),
    ("regressor-huge-label", REGRESSOR, b'{"a": 1, "b": 2, "y": 1e999}', Reject.BAD_LABEL),
]


@pytest.mark.parametrize(
    ("schema", "value", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_each_bad_record_is_rejected_with_its_reason(
    schema: RecordSchema, value: bytes | None, reason: Reject
) -> None:
    good = encode({"a": 1, "b": 2, schema.label: 1})
    parsed = parse(schema, [good, value, good])
    assert len(parsed) == 2
    assert parsed.offsets.tolist() == [0, 2]
    assert dict(parsed.rejects) == {reason.value: 1}
    assert parsed.rejected == [(0, 1, reason.value, value)]


@pytest.mark.parametrize(
    ("schema", "value", "reason"),
    [b[1:] for b in BAD if b[2] is not None and b[3] is not Reject.OVERSIZED],
    ids=[b[0] for b in BAD if b[2] is not None and b[3] is not Reject.OVERSIZED],
)
def test_slow_path_agrees_with_the_parser(
    schema: RecordSchema, value: bytes, reason: Reject
) -> None:
    assert classify_bad_record(value, schema) is reason


@pytest.mark.parametrize("schema", [CLASSIFIER, REGRESSOR])
def test_slow_path_finds_nothing_wrong_with_a_good_record(schema: RecordSchema) -> None:
    assert classify_bad_record(encode({"a": 1, "b": 2.5, schema.label: 3}), schema) is None


def test_record_of_exactly_max_bytes_is_kept() -> None:
    base = encode({"a": 1, "b": 2, "label": 1, "pad": ""})
    value = encode({"a": 1, "b": 2, "label": 1, "pad": "x" * (CLASSIFIER.max_bytes - len(base))})
    assert len(value) == CLASSIFIER.max_bytes
    assert len(parse(CLASSIFIER, [value])) == 1
    assert dict(parse(CLASSIFIER, [value + b" "]).rejects) == {"oversized": 1}


def test_good_rows_kept_in_order_with_their_partitions_and_offsets() -> None:
    values: list[bytes | None] = [
        encode({"a": 1, "b": 10, "label": 7}),
        b"not json",
        encode({"label": 8, "b": 20.5, "a": -2, "extra": "ignored"}),
        encode({"a": 1, "b": 1}),
        encode({"a": 3, "b": 30, "label": 9}),
    ]
    raw = RawChunk(
        partitions=np.array([2, 0, 1, 1, 2], dtype=np.int64),
        offsets=np.array([100, 5, 40, 41, 101], dtype=np.int64),
        values=values,
    )
    parsed = ChunkParser(CLASSIFIER).parse(raw)
    assert parsed.features.dtype == np.float64
    np.testing.assert_array_equal(parsed.features, [[1, 10], [-2, 20.5], [3, 30]])
    assert parsed.labels.dtype == np.int64
    assert parsed.labels.tolist() == [7, 8, 9]
    assert parsed.partitions.tolist() == [2, 1, 2]
    assert parsed.offsets.tolist() == [100, 40, 101]
    assert dict(parsed.rejects) == {"not_json": 1, "missing_label": 1}
    assert {(p, o, r) for p, o, r, _ in parsed.rejected} == {
        (0, 5, "not_json"),
        (1, 41, "missing_label"),
    }


def test_non_finite_rows_are_removed_with_their_positions() -> None:
    # Only the fast decoder's vectorised check sees these if it decodes 1e999 as inf.
    values: list[bytes | None] = [
        encode({"a": 1, "b": 1, "label": 1}),
        b'{"a": 1e999, "b": 1, "label": 2}',
        encode({"a": 3, "b": 3, "label": 3}),
    ]
    parsed = parse(CLASSIFIER, values)
    assert parsed.labels.tolist() == [1, 3]
    assert parsed.offsets.tolist() == [0, 2]
    assert np.isfinite(parsed.features).all()
    assert dict(parsed.rejects) == {"non_finite": 1}


def test_every_record_bad_gives_empty_arrays_of_the_right_shape() -> None:
    parsed = parse(CLASSIFIER, [b"x", None])
    assert parsed.features.shape == (0, 2)
    assert len(parsed.labels) == 0 and len(parsed.offsets) == 0 and len(parsed.partitions) == 0
    assert sum(parsed.rejects.values()) == 2


def test_empty_chunk() -> None:
    parsed = parse(REGRESSOR, [])
    assert parsed.features.shape == (0, 2)
    assert len(parsed) == 0 and not parsed.rejects


def test_int64_extreme_labels_are_kept() -> None:
    values: list[bytes | None] = [
        encode({"a": 1, "b": 2, "label": -(2**63)}),
        encode({"a": 1, "b": 2, "label": 2**63 - 1}),
    ]
    assert parse(CLASSIFIER, values).labels.tolist() == [-(2**63), 2**63 - 1]


def test_string_class_labels() -> None:
    values: list[bytes | None] = [
        encode({"a": 1, "b": 2, "label": "cat"}),
        encode({"a": 3, "b": 4, "label": "dog"}),
    ]
    parsed = parse(CLASSIFIER, values)
    assert parsed.labels.dtype == object
    assert parsed.labels.tolist() == ["cat", "dog"]


def test_mixed_int_and_string_labels_become_strings() -> None:
    values: list[bytes | None] = [
        encode({"a": 1, "b": 2, "label": 1}),
        encode({"a": 3, "b": 4, "label": "two"}),
    ]
    assert parse(CLASSIFIER, values).labels.tolist() == ["1", "two"]


def test_regressor_labels_are_floats_and_int_features_accepted() -> None:
    values: list[bytes | None] = [
        encode({"a": 1, "b": 2, "y": 3}),
        encode({"a": 0, "b": 0, "y": -0.5}),
    ]
    parsed = parse(REGRESSOR, values)
    assert parsed.labels.dtype == np.float64
    assert parsed.labels.tolist() == [3.0, -0.5]


def test_single_feature_schema() -> None:
    schema = RecordSchema(features=("x",), label="t", max_bytes=100, classification=False)
    values: list[bytes | None] = [
        encode({"x": 1.5, "t": 2}),
        encode({"t": 2}),
        encode({"x": 2.5, "t": 4}),
    ]
    parsed = parse(schema, values)
    assert parsed.features.shape == (2, 1)
    assert parsed.features[:, 0].tolist() == [1.5, 2.5]
    assert parsed.labels.tolist() == [2.0, 4.0]
    assert dict(parsed.rejects) == {"missing_feature": 1}


def test_feature_names_that_are_not_identifiers() -> None:
    schema = RecordSchema(
        features=("pixel-0", "a b", "class", "0"),
        label="the label",
        max_bytes=500,
        classification=True,
    )
    good = encode({"pixel-0": 1, "a b": 2, "class": 3, "0": 4, "the label": 5})
    missing = encode({"pixel-0": 1, "a b": 2, "class": 3, "the label": 5})
    non_numeric = encode({"pixel-0": 1, "a b": "two", "class": 3, "0": 4, "the label": 5})
    parsed = parse(schema, [good, missing, non_numeric])
    assert parsed.features.tolist() == [[1, 2, 3, 4]]
    assert parsed.labels.tolist() == [5]
    assert dict(parsed.rejects) == {"missing_feature": 1, "non_numeric_feature": 1}


def test_features_follow_the_schema_order_not_the_record_order() -> None:
    parsed = parse(CLASSIFIER, [b'{"label": 0, "b": 2, "a": 1}'])
    assert parsed.features.tolist() == [[1.0, 2.0]]


def test_parser_is_reusable_across_chunks() -> None:
    parser = ChunkParser(CLASSIFIER)
    first = parser.parse(chunk([encode({"a": 1, "b": 1, "label": 1}), b"x"]))
    second = parser.parse(chunk([encode({"a": 2, "b": 2, "label": 2})], first_offset=2))
    assert (dict(first.rejects), dict(second.rejects)) == ({"not_json": 1}, {})
    assert second.offsets.tolist() == [2]


def test_drop_unknown_labels() -> None:
    values: list[bytes | None] = [
        encode({"a": 0, "b": 0, "label": 1}),
        encode({"a": 1, "b": 1, "label": 5}),
        b"bad",
        encode({"a": 2, "b": 2, "label": 2}),
    ]
    parsed = parse(CLASSIFIER, values)
    kept = drop_unknown_labels(parsed, np.array([0, 1, 2]))
    assert kept.labels.tolist() == [1, 2]
    assert kept.offsets.tolist() == [0, 3]
    assert kept.features.tolist() == [[0, 0], [2, 2]]
    assert dict(kept.rejects) == {"not_json": 1, "unknown_label": 1}
    assert (0, 1, "unknown_label", None) in kept.rejected


def test_drop_unknown_string_labels() -> None:
    values: list[bytes | None] = [
        encode({"a": 0, "b": 0, "label": "cat"}),
        encode({"a": 1, "b": 1, "label": "cow"}),
    ]
    kept = drop_unknown_labels(parse(CLASSIFIER, values), np.array(["cat", "dog"], dtype=object))
    assert kept.labels.tolist() == ["cat"]
    assert dict(kept.rejects) == {"unknown_label": 1}


def test_drop_unknown_labels_keeps_all_known() -> None:
    parsed = parse(CLASSIFIER, [encode({"a": 0, "b": 0, "label": 1})])
    assert drop_unknown_labels(parsed, np.array([0, 1])) is parsed
    assert not parsed.rejects


def _window_chunk() -> ParsedChunk:
    """Two partitions, each read from before its committed offset (a retrain window)."""
    good, bad = encode({"a": 1, "b": 1, "label": 1}), b"bad"
    raw = RawChunk(
        partitions=np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int64),
        offsets=np.array([8, 9, 10, 11, 20, 21, 22], dtype=np.int64),
        values=[bad, good, bad, encode({"a": 1}), encode({"b": 2, "label": 1}), bad, good],
    )
    return ChunkParser(CLASSIFIER).parse(raw)


def test_drop_reread_rejects_keeps_only_rejects_at_or_after_the_committed_offset() -> None:
    parsed = _window_chunk()
    assert dict(parsed.rejects) == {"not_json": 3, "missing_feature": 2}

    kept = drop_reread_rejects(parsed, {0: 10, 1: 22})

    # Partition 0: 8 is a re-read, 10 (== committed) and 11 are new; partition 1: all re-reads.
    assert [(p, o, r) for p, o, r, _ in kept.rejected] == [
        (0, 10, "not_json"),
        (0, 11, "missing_feature"),
    ]
    assert dict(kept.rejects) == {"not_json": 1, "missing_feature": 1}
    assert sum(kept.rejects.values()) == len(kept.rejected)
    assert kept.rejected[0][3] == b"bad"  # the value goes on to the dead-letter topic
    # The good rows, re-read or new, are untouched: training still sees the whole window.
    assert (kept.partitions.tolist(), kept.offsets.tolist()) == ([0, 1], [9, 22])
    np.testing.assert_array_equal(kept.features, parsed.features)
    # The parsed chunk itself is not changed.
    assert dict(parsed.rejects) == {"not_json": 3, "missing_feature": 2}
    assert len(parsed.rejected) == 5


def test_drop_reread_rejects_drops_a_reason_seen_only_in_re_reads() -> None:
    kept = drop_reread_rejects(_window_chunk(), {0: 12, 1: 23})
    assert kept.rejected == [] and not kept.rejects
    assert "missing_feature" not in kept.rejects


def test_drop_reread_rejects_changes_nothing_without_a_re_read() -> None:
    # An incremental run: every offset read is at or after the committed one.
    parsed = _window_chunk()
    assert drop_reread_rejects(parsed, {0: 8, 1: 20}) is parsed
    assert drop_reread_rejects(parsed, {}) is parsed  # a partition never committed starts at 0


def test_drop_reread_rejects_after_drop_unknown_labels() -> None:
    values: list[bytes | None] = [
        encode({"a": 0, "b": 0, "label": 7}),
        encode({"a": 1, "b": 1, "label": 1}),
        encode({"a": 2, "b": 2, "label": 7}),
    ]
    known = drop_unknown_labels(parse(CLASSIFIER, values), np.array([0, 1]))
    kept = drop_reread_rejects(known, {0: 1})
    assert kept.rejected == [(0, 2, "unknown_label", None)]
    assert dict(kept.rejects) == {"unknown_label": 1}
    assert kept.offsets.tolist() == [1]


def test_reject_values_are_the_documented_strings() -> None:
    assert {r.value for r in Reject} == {
        "oversized",
        "not_json",
        "not_object",
        "missing_feature",
        "non_numeric_feature",
        "non_finite",
        "missing_label",
        "bad_label",
        "unknown_label",
    }
