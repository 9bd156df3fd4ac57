"""The API's one encoder and decoder (inshape_api.wire): defaults left out, Kubernetes times,
no non-finite numbers, and decoding errors that name the JSON path."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest

from inshape_api.result import RecordCounts, RunResult
from inshape_api.status import Condition, PolicyStatus
from inshape_api.wire import WireError, encode, from_wire, rfc3339, to_wire

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Inner:
    count: int = 0
    label: str = "x"


@dataclass(frozen=True)
class Sample:
    name: str
    size: int | None = None
    ratio: float | None = None
    flag: bool = False
    tags: tuple[str, ...] = ()
    table: dict[str, int] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    at: datetime | None = None


# --- to_wire: defaults are left out -----------------------------------------------------------


def test_fields_holding_their_default_are_left_out() -> None:
    assert to_wire(Sample("a")) == {"name": "a"}
    assert to_wire(Sample("a", inner=Inner())) == {"name": "a"}  # a default factory's value
    assert to_wire(RunResult(outcome="Skipped")) == {"outcome": "Skipped"}
    assert to_wire(PolicyStatus()) == {}


def test_falsy_values_that_are_not_the_default_are_kept() -> None:
    assert to_wire(Sample("a", size=0, ratio=0.0)) == {"name": "a", "size": 0, "ratio": 0.0}
    assert to_wire(PolicyStatus(pendingRecords=0, observedGeneration=0)) == {
        "pendingRecords": 0,
        "observedGeneration": 0,
    }


def test_nested_values_leave_out_their_own_defaults() -> None:
    sample = Sample(
        "a",
        flag=True,
        tags=("t",),
        table={"k": 1},
        inner=Inner(count=3),
    )
    assert to_wire(sample) == {
        "name": "a",
        "flag": True,
        "tags": ["t"],
        "table": {"k": 1},
        "inner": {"count": 3},
    }
    assert to_wire(RecordCounts(read=5, rejected=0)) == {"read": 5}


def test_a_required_field_is_written_even_when_empty() -> None:
    condition = Condition("Ready", "True", "Fine", "", T0)
    assert to_wire(condition) == {
        "type": "Ready",
        "status": "True",
        "reason": "Fine",
        "message": "",
        "lastTransitionTime": "2025-03-01T12:00:00Z",
    }


# --- times -----------------------------------------------------------------------------------


def test_times_are_utc_whole_seconds_with_a_z() -> None:
    assert rfc3339(T0) == "2025-03-01T12:00:00Z"
    assert rfc3339(T0 + timedelta(microseconds=999_999)) == "2025-03-01T12:00:00Z"
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)) == "2025-03-01T12:00:00Z"
    assert to_wire(Sample("a", at=T0)) == {"name": "a", "at": "2025-03-01T12:00:00Z"}
    assert to_wire({"when": [T0]}) == {"when": ["2025-03-01T12:00:00Z"]}


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rfc3339(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        to_wire(Sample("a", at=datetime(2025, 1, 1)))


# --- non-finite numbers ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_fields_are_dropped(value: float) -> None:
    assert to_wire(Sample("a", ratio=value)) == {"name": "a"}
    result = RunResult(outcome="Rejected", candidateScore=value, championScore=0.5)
    assert to_wire(result) == {"outcome": "Rejected", "championScore": 0.5}
    text = encode(result)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"championScore": 0.5, "outcome": "Rejected"}


# --- encode ----------------------------------------------------------------------------------


def test_encode_is_one_compact_sorted_line() -> None:
    assert encode({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert encode({"z": {"y": 1, "x": 2}}) == '{"z":{"x":2,"y":1}}'
    text = encode(Sample("a", size=2, table={"k": 1}))
    assert text == '{"name":"a","size":2,"table":{"k":1}}'
    assert "\n" not in encode(RunResult(outcome="Failed", message="two\nlines"))


# --- from_wire -------------------------------------------------------------------------------


def test_from_wire_builds_the_typed_value() -> None:
    sample = from_wire(
        {"name": "a", "tags": ["t"], "inner": {"count": 3}, "at": "2025-03-01T12:00:00Z"},
        Sample,
    )
    assert sample == Sample("a", tags=("t",), inner=Inner(count=3), at=T0)
    assert sample.at is not None and sample.at.tzinfo is not None


def test_to_wire_and_back_is_the_same_value() -> None:
    sample = Sample("a", 1, 0.5, True, ("t", "u"), {"k": 2}, Inner(4, "y"), T0)
    assert from_wire(to_wire(sample), Sample) == sample
    assert from_wire(json.loads(encode(sample)), Sample) == sample


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"name": 5}, "$.name"),
        ({}, "name"),  # missing required field
        ({"name": "a", "inner": {"count": "three"}}, "$.inner.count"),
        ({"name": "a", "tags": "t"}, "$.tags"),
        ({"name": "a", "table": {"k": "v"}}, "$.table"),
        ({"name": "a", "at": "yesterday"}, "$.at"),
        ({"name": "a", "size": True}, "$.size"),
    ],
)
def test_from_wire_errors_name_the_path(data: object, path: str) -> None:
    with pytest.raises(WireError, match=path.replace("$", r"\$").replace(".", r"\.")):
        from_wire(data, Sample)


def test_from_wire_errors_name_list_positions_and_are_value_errors() -> None:
    condition = {
        "type": "Ready",
        "status": "Yes",
        "reason": "Fine",
        "message": "",
        "lastTransitionTime": "2025-03-01T12:00:00Z",
    }
    with pytest.raises(WireError, match=r"\$\.conditions\[0\]\.status"):
        from_wire({"conditions": [condition]}, PolicyStatus)
    assert issubclass(WireError, ValueError)


def test_a_validation_in_the_type_becomes_a_wire_error() -> None:
    bad_reason = {
        "type": "Ready",
        "status": "True",
        "reason": "two words",
        "message": "",
        "lastTransitionTime": "2025-03-01T12:00:00Z",
    }
    with pytest.raises(WireError, match="CamelCase"):
        from_wire(bad_reason, Condition)
