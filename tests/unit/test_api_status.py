"""The typed policy status (inshape_api.status): to and from its stored JSON, and a stored
field of an older or hand-edited shape dropped on its own instead of blocking the policy."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace
from typing import Any

import pytest

from inshape_api.status import (
    LastRun,
    PolicyStatus,
)
from tests.samples import FULL_STATUS


def test_to_wire_and_from_wire_round_trip() -> None:
    assert PolicyStatus.from_wire(FULL_STATUS.to_wire()) == FULL_STATUS
    assert PolicyStatus.from_wire(PolicyStatus().to_wire()) == PolicyStatus()


def test_to_wire_is_the_stored_shape() -> None:
    document = FULL_STATUS.to_wire()
    assert document["lastRun"]["offsets"] == {
        "0": {"start": 0, "end": 10},
        "1": {"start": 5, "end": 5},
    }
    assert document["lastRun"]["finishedAt"] == "2025-03-01T12:00:00Z"
    assert document["lastScheduleTime"] == "2025-03-01T11:00:00Z"
    assert document["champion"]["promotedAt"] == "2025-03-01T12:00:00Z"
    assert document["previousChampion"] == {
        "uri": "models:/digits/6",
        "version": "6",
        "metric": 0.9,
        "metricName": "f1_macro",
    }
    assert document["conditions"][2] == {
        "type": "Degraded",
        "status": "False",
        "reason": "AsExpected",
        "message": "",
        "lastTransitionTime": "2025-02-28T12:00:00Z",
    }
    assert document["conditions"][0]["observedGeneration"] == 4
    assert PolicyStatus().to_wire() == {}
    assert PolicyStatus(lastRun=LastRun(outcome="Skipped")).to_wire() == {
        "lastRun": {"outcome": "Skipped"}
    }


@pytest.mark.parametrize("stored", [None, {}])
def test_no_status_yet(stored: dict[str, Any] | None) -> None:
    assert PolicyStatus.from_wire(stored) == PolicyStatus()


def test_nulls_are_absent_fields() -> None:
    assert PolicyStatus.from_wire({"champion": None, "pendingRecords": 5}) == PolicyStatus(
        pendingRecords=5
    )


def _with(field: str, value: Any) -> dict[str, Any]:
    return {**FULL_STATUS.to_wire(), field: value}


def test_an_old_offsets_shape_drops_only_last_run(caplog: pytest.LogCaptureFixture) -> None:
    """lastRun.offsets was {from, to} before: that lastRun is dropped (the next run rewrites
    it); champion, conditions and the rest stay."""
    old = FULL_STATUS.to_wire()
    old["lastRun"]["offsets"] = {"0": {"from": 0, "to": 10}}
    with caplog.at_level(logging.WARNING, logger="inshape_api.status"):
        status = PolicyStatus.from_wire(old)
    assert status.lastRun is None
    assert status == replace(FULL_STATUS, lastRun=None)
    assert "status.lastRun" in caplog.text and "start" in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("observedGeneration", "four"),
        ("pendingRecords", [3]),
        ("champion", {"version": "7"}),  # no uri
        ("previousChampion", "models:/digits/6"),
        ("lastScheduleTime", "last tuesday"),
        ("lastRun", {"outcome": "Won"}),
        ("lastRun", {"job": "digits-update-7"}),  # no outcome
        (
            "conditions",
            [
                {
                    "type": "Ready",
                    "status": "Yes",
                    "reason": "Fine",
                    "message": "",
                    "lastTransitionTime": "2025-03-01T12:00:00Z",
                }
            ],
        ),
        (
            "conditions",
            [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "not camel case",
                    "message": "",
                    "lastTransitionTime": "2025-03-01T12:00:00Z",
                }
            ],
        ),
        ("conditions", [{"type": "Ready", "status": "True"}]),  # required fields missing
    ],
)
def test_a_misfit_field_is_dropped_and_the_rest_kept(field: str, value: Any) -> None:
    status = PolicyStatus.from_wire(_with(field, value))
    assert getattr(status, field) == getattr(PolicyStatus(), field)
    for other in (f.name for f in dataclasses.fields(PolicyStatus)):
        if other != field:
            assert getattr(status, other) == getattr(FULL_STATUS, other), other


def test_unknown_stored_fields_are_ignored() -> None:
    stored = _with("somethingNew", {"a": 1})
    stored["lastRun"] = {**stored["lastRun"], "extra": True}
    assert PolicyStatus.from_wire(stored) == FULL_STATUS


def test_condition_finds_one_by_type() -> None:
    ready = FULL_STATUS.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True", "ChampionServing")
    assert FULL_STATUS.condition("Unknown") is None
    assert PolicyStatus().condition("Ready") is None
