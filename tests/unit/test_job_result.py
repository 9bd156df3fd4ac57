"""The one-line JSON result and the termination message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inshape_jobs.result import TERMINATION_MESSAGE_LIMIT, compact, emit, encode


def small_result() -> dict[str, Any]:
    return {
        "outcome": "Promoted",
        "reasons": [],
        "message": "improvement +0.0100",
        "runKey": "job-uid",
        "runId": "abc123",
        "candidateScore": 0.91,
        "championScore": 0.9,
        "records": {"read": 1000, "valid": 990, "train": 800, "holdout": 190, "rejected": 10},
        "rejectedByReason": {"not_json": 10},
        "stages": {"drain": 1.5, "log": 0.3},
    }


def with_many_offsets(partitions: int) -> dict[str, Any]:
    return {
        **small_result(),
        "offsets": {str(p): {"from": 10**9 + p, "to": 2 * 10**9 + p} for p in range(partitions)},
    }


def test_encode_is_one_compact_sorted_line() -> None:
    text = encode({"b": 1, "a": [1, 2]})
    assert text == '{"a":[1,2],"b":1}'
    assert "\n" not in encode(small_result())


def test_small_result_is_unchanged() -> None:
    result = small_result()
    text = compact(result)
    assert json.loads(text) == result
    assert "truncated" not in text


def test_large_offsets_are_dropped_first() -> None:
    result = with_many_offsets(100)
    assert len(encode(result)) > TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(compact(result))
    assert len(compact(result).encode()) <= TERMINATION_MESSAGE_LIMIT
    assert decoded["truncated"] is True
    assert "offsets" not in decoded
    # Only as much detail as needed goes: the rest stays.
    assert decoded["rejectedByReason"] == {"not_json": 10}
    assert decoded["stages"] == small_result()["stages"]
    assert decoded["message"] == small_result()["message"]
    assert decoded["outcome"] == "Promoted"


def test_detail_is_dropped_until_it_fits() -> None:
    result = {
        **small_result(),
        "rejectedByReason": {f"reason_{i}": i for i in range(300)},
        "message": "m" * 4000,
    }
    text = compact(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(text)
    assert decoded["truncated"] is True
    for key in ("rejectedByReason", "stages", "message"):
        assert key not in decoded
    for key in ("outcome", "reasons", "runKey", "runId", "records", "candidateScore"):
        assert decoded[key] == result[key]


def test_limit_counts_bytes_not_characters() -> None:
    result = {**small_result(), "message": "é" * 1500}  # 1500 characters, 3000 bytes
    text = compact(result, limit=2000)
    assert len(text.encode()) <= 2000
    assert "message" not in json.loads(text)


@pytest.mark.parametrize("limit", [600, 1000, 4096])
def test_compact_respects_any_limit(limit: int) -> None:
    assert len(compact(with_many_offsets(200), limit=limit).encode()) <= limit


def test_input_is_not_modified() -> None:
    result = with_many_offsets(100)
    compact(result)
    assert "offsets" in result and "truncated" not in result


def test_emit_prints_the_full_result_and_writes_the_compact_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = with_many_offsets(100)
    path = tmp_path / "termination-log"
    emit(result, str(path))
    printed = capsys.readouterr().out
    assert printed.endswith("\n") and printed.count("\n") == 1
    assert json.loads(printed) == result
    written = path.read_text()
    assert len(written.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(written)["truncated"] is True
    assert written == compact(result)


def test_emit_small_result_writes_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    emit(small_result(), str(path))
    assert json.loads(path.read_text()) == small_result()


@pytest.mark.parametrize("termination_path", [None, ""])
def test_emit_without_a_termination_path_only_prints(
    termination_path: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emit(small_result(), termination_path)
    assert json.loads(capsys.readouterr().out) == small_result()
    assert list(tmp_path.iterdir()) == []
