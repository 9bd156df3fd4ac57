"""Cron matching, durations and the start-a-run decision."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from inshape_api.spec import TriggerSpec
from inshape_operator import cron
from inshape_operator.triggers import (
    Decision,
    Observed,
    TriggerError,
    decide,
    parse_duration,
    validate,
)

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday
CREATED = T0 - timedelta(days=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- cron ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("* * * * *", T0, True),
        ("*/15 * * * *", at(30), True),
        ("*/15 * * * *", at(31), False),
        ("5-10/5 * * * *", at(10), True),
        ("5-10/5 * * * *", at(15), False),
        ("0 9-17 * * *", T0, True),
        ("0 9-17 * * *", T0.replace(hour=18), False),
        ("0,30 10 * * *", at(30), True),
        ("0 10 * * mon", T0, True),
        ("0 10 * * 1-5", T0, True),
        ("0 10 * * sat,sun", T0, False),
        ("0 10 * * 7", T0 + timedelta(days=6), True),  # 7 is Sunday
        ("0 10 3 mar *", T0, True),
        ("0 10 4 * *", T0, False),
        # Both day fields restricted: either matches (Vixie cron).
        ("0 10 15 * mon", T0, True),
        ("0 10 3 * fri", T0, True),
        # Day-of-week starting with * means "any" for the dom/dow rule.
        ("0 10 15 * */2", T0, False),
        ("30 * * * 2/2", T0.replace(minute=30), False),
    ],
)
def test_cron_matches(expression: str, moment: datetime, expected: bool) -> None:
    assert cron.parse(expression).matches(moment) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "x * * * *",
        "* * * foo *",
        "@daily",
    ],
)
def test_cron_refuses(expression: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(expression)


def test_pattern_agrees_with_parser_on_shape() -> None:
    for good in ["*/5 * * * *", "0 9-17 * * mon-fri", "0 0 1,15 jan,jul *", "1-5/2 * * * *"]:
        assert re.search(cron.PATTERN, good), good
        cron.parse(good)
    for bad in ["* * * *", "every 5 minutes", "* * * * * *", "@hourly", " * * * * *"]:
        assert not re.search(cron.PATTERN, bad), bad


def test_next_and_latest_slots() -> None:
    c = cron.parse("*/20 10 * * *")
    assert c.next_after(T0) == at(20)
    assert c.next_after(at(40)) == at(24 * 60)
    assert c.latest_at_or_before(at(39.5)) == at(20)
    assert c.latest_at_or_before(T0) == T0
    assert c.latest_at_or_before(T0 - timedelta(seconds=1)) == at(40 - 24 * 60)


def test_rare_schedules_are_found() -> None:
    leap = cron.parse("0 0 29 2 *")
    assert leap.next_after(T0) == datetime(2028, 2, 29, tzinfo=UTC)
    assert leap.latest_at_or_before(T0) == datetime(2024, 2, 29, tzinfo=UTC)
    with pytest.raises(cron.CronError, match="never fires"):
        cron.parse("0 0 31 2 *").next_after(T0)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        cron.parse("* * * * *").matches(datetime(2025, 1, 1))


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h", 21600), ("1h30m", 5400), ("90s", 90), ("2d", 172800), ("1d1h1m1s", 90061)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "6", "h", "6 h", "1.5h", "6H", "0s", "-1h", "6hours"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(TriggerError):
        parse_duration(text)


def test_validate_names_the_field() -> None:
    with pytest.raises(TriggerError, match=r"spec\.trigger\.schedule"):
        validate(TriggerSpec(schedule="61 * * * *"))
    with pytest.raises(TriggerError, match="never fires"):
        validate(TriggerSpec(schedule="0 0 31 2 *"))
    with pytest.raises(TriggerError, match=r"spec\.trigger\.maxInterval"):
        validate(TriggerSpec(maxInterval="0m"))


# --- decisions -------------------------------------------------------------------------------


def observed(**kwargs: object) -> Observed:
    base: dict[str, object] = {"now": T0, "created": CREATED, "pending": 0, "job_active": False}
    base.update(kwargs)
    return Observed(**base)  # type: ignore[arg-type]


def run(trigger: TriggerSpec, suspend: bool = False, **kwargs: object) -> Decision:
    return decide(trigger, suspend=suspend, observed=observed(**kwargs))


def test_lag_at_threshold_starts_a_run() -> None:
    d = run(TriggerSpec(minNewRecords=100), pending=100)
    assert (d.start, d.trigger, d.reason) == (True, "Lag", "Lag")
    assert "100 records pending" in d.message


def test_lag_below_threshold_waits() -> None:
    d = run(TriggerSpec(minNewRecords=100), pending=99)
    assert (d.start, d.reason, d.recheck_at) == (False, "BelowThreshold", None)
    assert "99 of 100" in d.message


def test_suspend_and_active_job_block_every_trigger() -> None:
    trigger = TriggerSpec(minNewRecords=1, schedule="* * * * *", maxInterval="1m")
    suspended = run(trigger, suspend=True, pending=10**6)
    assert (suspended.start, suspended.reason) == (False, "Suspended")
    busy = run(trigger, pending=10**6, job_active=True)
    assert (busy.start, busy.reason) == (False, "JobActive")
    # Suspend wins over an active Job: the message tells the user why nothing new starts.
    assert run(trigger, suspend=True, job_active=True).reason == "Suspended"


def test_failure_backoff_holds_even_a_large_lag() -> None:
    trigger = TriggerSpec(minNewRecords=1)
    failed_at = T0 - timedelta(minutes=2)
    waiting = decide(
        trigger,
        suspend=False,
        observed=observed(pending=500, last_failed_at=failed_at),
        failure_backoff=timedelta(minutes=5),
    )
    assert (waiting.start, waiting.reason) == (False, "FailureBackoff")
    assert waiting.recheck_at == failed_at + timedelta(minutes=5)
    later = decide(
        trigger,
        suspend=False,
        observed=observed(now=at(3), pending=500, last_failed_at=failed_at),
        failure_backoff=timedelta(minutes=5),
    )
    assert later.start and later.trigger == "Lag"


def test_schedule_fires_once_per_slot() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="*/30 * * * *")
    first = run(trigger, now=at(1), pending=5, last_run_started=at(-40))
    assert (first.start, first.trigger, first.schedule_time) == (True, "Schedule", T0)
    # The Job for that slot started at 10:01: the 10:00 slot is served.
    again = run(trigger, now=at(5), pending=5, last_run_started=at(1), last_schedule_time=T0)
    assert not again.start
    assert again.recheck_at == at(30)


def test_missed_slots_fire_once_for_the_latest() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="0 * * * *")
    d = run(trigger, now=at(5 * 60 + 7), pending=1, last_run_started=at(-600))
    assert d.start and d.schedule_time == at(5 * 60)


def test_schedule_slot_with_nothing_pending_is_consumed_without_a_run() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="0 * * * *")
    d = run(trigger, now=at(1), pending=0, last_run_started=at(-120))
    assert (d.start, d.schedule_time) == (False, T0)
    # Recorded as lastScheduleTime, the slot does not fire when records arrive later.
    later = run(trigger, now=at(20), pending=3, last_run_started=at(-120), last_schedule_time=T0)
    assert not later.start


def test_schedule_before_creation_does_not_fire() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="0 10 * * *")
    d = run(trigger, now=at(1), created=at(0.5), pending=3)
    assert not d.start
    assert d.recheck_at == at(24 * 60)


def test_schedule_fires_when_lag_is_unknown() -> None:
    trigger = TriggerSpec(minNewRecords=10, schedule="*/10 * * * *")
    d = run(trigger, now=at(0.5), pending=None, last_run_started=at(-30))
    assert d.start and d.trigger == "Schedule"


def test_max_interval_needs_a_pending_record() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, maxInterval="6h")
    due = run(trigger, pending=1, last_run_started=T0 - timedelta(hours=6))
    assert (due.start, due.trigger) == (True, "MaxInterval")
    nothing = run(trigger, pending=0, last_run_started=T0 - timedelta(hours=7))
    assert not nothing.start
    early = run(trigger, pending=1, last_run_started=T0 - timedelta(hours=5))
    assert not early.start and early.recheck_at == T0 + timedelta(hours=1)


def test_max_interval_counts_from_creation_before_any_run() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, maxInterval="1h30m")
    d = run(trigger, pending=None, created=T0 - timedelta(minutes=90))
    assert d.start and d.trigger == "MaxInterval"


def test_lag_unknown_is_reported() -> None:
    d = run(TriggerSpec(), pending=None)
    assert (d.start, d.reason) == (False, "LagUnknown")


def test_recheck_is_the_earliest_time_rule() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="0 12 * * *", maxInterval="1h")
    d = run(trigger, pending=2, last_run_started=at(-10))
    assert d.recheck_at == at(50)


def test_invalid_trigger_raises() -> None:
    with pytest.raises(TriggerError):
        run(TriggerSpec(schedule="99 * * * *"), pending=5)
