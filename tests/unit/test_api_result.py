"""A run's result (inshape_api.result): encoded once by the Job, decoded once by the operator.

Encoding round-trips; `compact` fits Kubernetes' termination message by dropping detail in a
fixed order; decoding never raises and turns anything unreadable into a Failed result.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from inshape_api.result import (
    MESSAGE_MAX,
    OUTCOMES,
    TERMINATION_MESSAGE_LIMIT,
    RunResult,
    decode,
    failed,
)
from tests.samples import PROMOTED


def with_many_offsets(partitions: int) -> RunResult:
    offsets = {str(p): (10**9 + p, 2 * 10**9 + p) for p in range(partitions)}
    return replace(PROMOTED, offsets=offsets)


# --- encode / decode -------------------------------------------------------------------------


def test_encode_then_decode_is_the_same_result() -> None:
    assert decode(PROMOTED.encode()) == PROMOTED
    for outcome in OUTCOMES:
        if outcome != "Promoted":
            result = RunResult(outcome=outcome, reasons=("Why",), message="m")
            assert decode(result.encode()) == result
    replayed = replace(PROMOTED, replayed=True, truncated=True)
    assert decode(replayed.encode()) == replayed


def test_encode_is_one_line_of_json_with_the_api_names() -> None:
    text = PROMOTED.encode()
    assert "\n" not in text
    document = json.loads(text)
    assert document["offsets"] == {"0": [100, 1100], "1": [0, 1000]}
    assert document["records"] == {
        "read": 2000,
        "new": 2000,
        "valid": 1990,
        "train": 1592,
        "holdout": 398,
        "rejected": 10,
    }
    assert {"modelUri", "candidateScore", "runKey", "rejectedByReason"} <= set(document)
    assert "truncated" not in document and "replayed" not in document
    assert RunResult(outcome="Skipped").encode() == '{"outcome":"Skipped"}'


# --- compact: within the termination message limit -------------------------------------------


def test_a_small_result_is_unchanged() -> None:
    text = PROMOTED.compact()
    assert text == PROMOTED.encode()
    assert decode(text) == PROMOTED
    assert "truncated" not in text


def test_large_offsets_are_dropped_first() -> None:
    result = with_many_offsets(150)
    assert len(result.encode()) > TERMINATION_MESSAGE_LIMIT
    text = result.compact()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(text)
    assert decoded["truncated"] is True
    assert "offsets" not in decoded
    # Only as much detail as needed goes: the rest stays.
    assert decoded["rejectedByReason"] == {"not_json": 10}
    assert decoded["stages"] == PROMOTED.stages
    assert decoded["message"] == PROMOTED.message
    assert decoded["outcome"] == "Promoted"


def test_rejected_by_reason_goes_second_and_stages_stay() -> None:
    result = replace(PROMOTED, rejectedByReason={f"reason_{i}": i for i in range(300)})
    decoded = json.loads(result.compact())
    assert decoded["truncated"] is True
    assert "offsets" not in decoded and "rejectedByReason" not in decoded
    assert decoded["stages"] == PROMOTED.stages and decoded["message"] == PROMOTED.message


def test_stages_go_third_and_the_message_stays() -> None:
    result = replace(PROMOTED, stages={f"stage_{i}": float(i) for i in range(300)})
    decoded = json.loads(result.compact())
    assert decoded["truncated"] is True
    for key in ("offsets", "rejectedByReason", "stages"):
        assert key not in decoded
    assert decoded["message"] == PROMOTED.message


def test_detail_is_dropped_until_it_fits() -> None:
    result = replace(
        PROMOTED,
        rejectedByReason={f"reason_{i}": i for i in range(300)},
        message="m" * 4000,
    )
    text = result.compact()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    decoded = decode(text)
    assert decoded.truncated
    assert (decoded.rejectedByReason, decoded.stages, decoded.message, decoded.offsets) == (
        {},
        {},
        "",
        {},
    )
    # What the operator acts on is all there.
    assert decoded == replace(
        result, truncated=True, offsets={}, rejectedByReason={}, stages={}, message=""
    )


def test_limit_counts_bytes_not_characters() -> None:
    result = replace(PROMOTED, message="é" * 1500)  # 1500 characters, 3000 bytes
    text = result.compact(limit=2000)
    assert len(text.encode()) <= 2000
    assert "message" not in json.loads(text)


@pytest.mark.parametrize("limit", [600, 1000, TERMINATION_MESSAGE_LIMIT])
def test_compact_respects_any_limit(limit: int) -> None:
    assert len(with_many_offsets(200).compact(limit=limit).encode()) <= limit


def test_compact_leaves_the_result_itself_alone() -> None:
    result = with_many_offsets(150)
    result.compact()
    assert len(result.offsets) == 150 and not result.truncated


def test_the_compacted_result_decodes_with_its_model_uri() -> None:
    big = replace(PROMOTED, rejectedByReason={f"r{i}": i for i in range(2000)})
    result = decode(big.compact())
    assert result.outcome == "Promoted" and result.truncated
    assert result.modelUri == "models:/digits-classifier/7"


# --- decode: never raises --------------------------------------------------------------------


def test_the_result_is_found_after_log_lines() -> None:
    result = RunResult(outcome="Rejected", reasons=("BelowFloor",), modelVersion="8")
    text = "Snapshot of t: 10 new records\nDecision: Rejected: worse\n" + result.encode() + "\n"
    assert decode(text) == result


def test_the_last_result_line_wins() -> None:
    first = RunResult(outcome="Skipped", reasons=("NoNewRecords",))
    last = RunResult(outcome="Failed", reasons=("DrainFailed",))
    assert decode(f"{first.encode()}\nretrying\n{last.encode()}\nbye") == last


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "NoResult"),
        ("", "NoResult"),
        ("   \n ", "NoResult"),
        ("Traceback (most recent call last):\nKeyError: 'x'", "UnreadableResult"),
        ('{"outcome": "Promoted"', "UnreadableResult"),
        ("[1, 2]", "UnreadableResult"),
        ('{"outcome": "Won"}', "UnreadableResult"),
        ('{"outcome": null}', "UnreadableResult"),
        ('{"reasons": [], "outcome": 3}', "UnreadableResult"),
        ('{"outcome": "Promoted"}', "PromotedWithoutModelUri"),
        ('{"outcome": "Promoted", "modelUri": null}', "PromotedWithoutModelUri"),
        ('{"outcome": "Promoted", "modelUri": "s3://bucket/model"}', "PromotedWithoutModelUri"),
        ('{"outcome": "Promoted", "modelUri": "models:/digits/latest"}', "PromotedWithoutModelUri"),
    ],
)
def test_garbage_becomes_failed_with_a_reason(text: str | None, reason: str) -> None:
    result = decode(text)
    assert result.outcome == "Failed"
    assert result.reasons == (reason,)
    assert result.message


def test_an_unreadable_result_shows_the_last_output() -> None:
    result = decode("INFO start\nKeyError: 'x'\n")
    assert result.message == "no JSON result; last output: KeyError: 'x'"


def test_an_unknown_outcome_names_the_field() -> None:
    assert "$.outcome" in decode('{"outcome": "Won"}').message


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("reasons", "NoNewRecords", "$.reasons"),
        ("message", 5, "$.message"),
        ("candidateScore", "high", "$.candidateScore"),
        ("modelVersion", 8, "$.modelVersion"),
        ("records", {"read": "x"}, "$.records.read"),
        ("records", {"new": True}, "$.records.new"),
        ("offsets", {"0": [1]}, "$.offsets"),
        ("offsets", {"0": "x"}, "$.offsets"),
        ("offsets", [[1, 2]], "$.offsets"),
        ("stages", {"drain": "slow"}, "$.stages"),
        ("replayed", "yes", "$.replayed"),
    ],
)
def test_a_value_of_the_wrong_type_makes_the_result_unreadable(
    field: str, value: object, path: str
) -> None:
    result = decode(json.dumps({"outcome": "Skipped", field: value}))
    assert (result.outcome, result.reasons) == ("Failed", ("UnreadableResult",))
    assert path in result.message


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    document = json.loads(PROMOTED.encode())
    document["fromTheFuture"] = {"anything": [1, 2]}
    document["records"]["skipped"] = 3
    assert decode(json.dumps(document)) == PROMOTED


def test_a_promoted_result_without_uri_keeps_its_run_id() -> None:
    result = decode('{"outcome": "Promoted", "runId": "r1", "modelUri": "s3://x"}')
    assert result.reasons == ("PromotedWithoutModelUri",) and result.runId == "r1"
    assert "'s3://x'" in result.message


def test_a_long_message_is_cut() -> None:
    text = RunResult(outcome="Rejected", message="m" * (MESSAGE_MAX * 2)).encode()
    assert decode(text).message == "m" * MESSAGE_MAX


def test_failed_says_why() -> None:
    result = failed("DrainFailed", "x" * (MESSAGE_MAX + 10), run_key="k", run_id="r")
    assert result == RunResult(
        outcome="Failed",
        reasons=("DrainFailed",),
        message="x" * MESSAGE_MAX,
        runKey="k",
        runId="r",
    )
    assert decode(result.encode()) == result


def test_a_non_finite_stage_time_does_not_spoil_the_result() -> None:
    result = replace(PROMOTED, stages={"drain": math.nan, "log": 0.3})
    decoded = decode(result.encode())
    assert decoded.outcome == "Promoted"
    assert decoded.stages == {"log": 0.3}
