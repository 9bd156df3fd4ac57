"""Schedules (croniter, in UTC), durations and the start-a-run decision."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from inshape_api import cron_syntax
from inshape_api.spec import SpecError, TriggerSpec, parse_spec
from inshape_operator.triggers import (
    Decision,
    Observed,
    TriggerError,
    decide,
    parse_duration,
    parse_schedule,
    validate,
)

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday
CREATED = T0 - timedelta(days=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- schedules -------------------------------------------------------------------------------


def fires_at(expression: str, moment: datetime) -> bool:
    return parse_schedule(expression).latest_at_or_before(moment) == moment


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("* * * * *", T0, True),
        ("*/15 * * * *", at(30), True),
        ("*/15 * * * *", at(31), False),
        ("*/15 * * * *", at(45), True),
        ("5-10/5 * * * *", at(10), True),
        ("5-10/5 * * * *", at(15), False),
        ("50/5 * * * *", at(55), True),  # a/n: from a to the field's end
        ("50/5 * * * *", at(45), False),
        ("0 9-17 * * *", T0, True),
        ("0 9-17 * * *", T0.replace(hour=17), True),
        ("0 9-17 * * *", T0.replace(hour=18), False),
        ("0,30 10 * * *", at(30), True),
        ("0,30 10 * * *", at(15), False),
        ("0-5,30 10 * * *", at(3), True),
        ("0 10 * * mon", T0, True),
        ("0 10 * * MON", T0, True),  # names in any case
        ("0 10 * * 1-5", T0, True),
        ("0 10 * * mon-fri", T0 + timedelta(days=4), True),
        ("0 10 * * mon-fri", T0 + timedelta(days=5), False),
        ("0 10 * * sat,sun", T0, False),
        ("0 10 * * sat,sun", T0 + timedelta(days=6), True),
        ("0 10 * * 7", T0 + timedelta(days=6), True),  # 7 is Sunday
        ("0 10 * * 5-7", T0 + timedelta(days=6), True),
        ("0 10 * * 0", T0 + timedelta(days=6), True),
        ("0 10 3 mar *", T0, True),
        ("0 10 3 jan-feb,apr *", T0, False),
        ("0 10 4 * *", T0, False),
        ("00 010 03 03 01", T0, True),  # leading zeros
        # Both day fields restricted: either matches (Vixie cron).
        ("0 10 15 * mon", T0, True),
        ("0 10 3 * fri", T0, True),
        # A day field starting with * makes both needed (Vixie cron; croniter's cron bug).
        ("0 10 15 * */2", T0, False),
        ("0 10 3 * */2", T0, False),
        ("0 10 3 * */1", T0, True),
        ("30 * * * 2/2", T0.replace(minute=30), False),
        ("@hourly", T0, True),
        ("@hourly", at(1), False),
        ("@daily", T0.replace(hour=0), True),
        ("@weekly", datetime(2025, 3, 9, tzinfo=UTC), True),  # a Sunday
        ("@monthly", datetime(2025, 3, 1, tzinfo=UTC), True),
        ("@yearly", datetime(2025, 1, 1, tzinfo=UTC), True),
    ],
)
def test_schedule_fires(expression: str, moment: datetime, expected: bool) -> None:
    assert fires_at(expression, moment) is expected


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("* * * *", "has 4 field"),
        ("* * * * * *", "has 6 field"),  # croniter's seconds field
        ("60 * * * *", "minute: '60'"),
        ("* 24 * * *", "hour: '24'"),
        ("* * 0 * *", "day-of-month: '0'"),
        ("* * * 13 *", "month: '13'"),
        ("* * * * 8", "day-of-week: '8'"),
        ("*/0 * * * *", "minute: '*/0'"),
        ("x * * * *", "minute: 'x'"),
        ("* * * foo *", "month: 'foo'"),
        ("* * * mon *", "month: 'mon'"),
        ("1,,2 * * * *", "empty list item"),
        ("0 0 L * *", "day-of-month: 'L'"),
        ("0 0 * * mon#2", "day-of-week: 'mon#2'"),
        ("0 0 ? * *", "day-of-month: '?'"),
        ("@reboot", "not a macro"),
        ("@HOURLY", "not a macro"),
        (" * * * * *", "separate the fields by spaces"),
        ("*\t* * * *", "separate the fields by spaces"),
        # What the pattern admits and croniter would misread.
        ("5-1 * * * *", "runs backwards"),
        ("* * * * sat-sun", "runs backwards"),
        ("5-5 * * * *", "starts and ends at 5"),
        ("* * * jan-jan *", "starts and ends at jan"),
        ("* * * * 7/2", "would run from 7 up to 6"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 31 2 */7", "never fires"),
    ],
)
def test_schedule_refusals_name_the_field(expression: str, why: str) -> None:
    with pytest.raises(TriggerError, match=r"^spec\.trigger\.schedule: ") as caught:
        parse_schedule(expression)
    assert why in str(caught.value)


def test_the_spec_parser_applies_the_same_pattern() -> None:
    """What the CRD's pattern refuses, the Job's and operator's spec parser refuse too, saying
    which field is wrong instead of quoting the pattern."""
    raw = {
        "source": {"kafka": {"topic": "t", "features": ["a"], "bootstrapServers": "k:9092"}},
        "model": {"name": "m", "estimator": "sklearn.linear_model.SGDClassifier"},
        "mlflow": {"trackingUri": "http://mlflow"},
    }
    for good in ["*/15 9-17 * * mon-fri", "@hourly", "0 0 29 2 *"]:
        parse_spec({**raw, "trigger": {"schedule": good}})
    with pytest.raises(SpecError, match="minute: '61' is not") as caught:
        parse_spec({**raw, "trigger": {"schedule": "61 * * * *"}})
    assert caught.value.path == "spec.trigger.schedule"
    assert cron_syntax.PATTERN not in str(caught.value)


def test_next_and_latest_slots() -> None:
    s = parse_schedule("*/20 10 * * *")
    assert s.next_after(T0) == at(20)
    assert s.next_after(T0 - timedelta(microseconds=1)) == T0
    assert s.next_after(at(40)) == at(24 * 60)
    assert s.latest_at_or_before(at(39.5)) == at(20)
    # A slot exactly at the moment counts as passed: the decision at due time fires.
    assert s.latest_at_or_before(T0) == T0
    assert s.latest_at_or_before(T0 + timedelta(seconds=59, microseconds=999_999)) == T0
    assert s.latest_at_or_before(T0 - timedelta(microseconds=1)) == at(40 - 24 * 60)


def test_slots_are_utc_whatever_the_zone_of_the_moment() -> None:
    """UTC only: no daylight saving time. 30 2 * * * fires at 02:30 UTC on the night clocks
    in Central Europe jump from 02:00 to 03:00 local time (2025-03-30 01:00 UTC)."""
    cest = timezone(timedelta(hours=2))
    s = parse_schedule("30 2 * * *")
    slot = s.next_after(datetime(2025, 3, 30, 3, 0, tzinfo=cest))  # 01:00 UTC
    assert slot == datetime(2025, 3, 30, 2, 30, tzinfo=UTC)
    assert slot.tzinfo is UTC
    later = s.latest_at_or_before(datetime(2025, 3, 30, 4, 30, tzinfo=cest))
    assert later == datetime(2025, 3, 30, 2, 30, tzinfo=UTC)


def test_rare_schedules_are_found() -> None:
    leap = parse_schedule("0 0 29 2 *")
    assert leap.next_after(T0) == datetime(2028, 2, 29, tzinfo=UTC)
    assert leap.latest_at_or_before(T0) == datetime(2024, 2, 29, tzinfo=UTC)
    # 29 February on a Sunday (a star-led day-of-week ANDs the day fields): 28 years apart
    # here, 40 across 2100 (no leap year), the longest gap, within the search bound.
    sunday = parse_schedule("0 0 29 2 */7")
    assert sunday.next_after(T0) == datetime(2032, 2, 29, tzinfo=UTC)
    assert sunday.latest_at_or_before(T0) == datetime(2004, 2, 29, tzinfo=UTC)
    after_2088 = datetime(2088, 3, 1, tzinfo=UTC)
    assert sunday.next_after(after_2088) == datetime(2128, 2, 29, tzinfo=UTC)
    before_2128 = datetime(2128, 2, 28, tzinfo=UTC)
    assert sunday.latest_at_or_before(before_2128) == datetime(2088, 2, 29, tzinfo=UTC)


def test_a_schedule_that_never_fires_is_refused_quickly() -> None:
    started = time.perf_counter()
    for expression in ["0 0 31 2 *", "* * 30,31 feb *", "0 0 31 2 */7"]:
        with pytest.raises(TriggerError, match="never fires"):
            validate(TriggerSpec(schedule=expression))
    assert time.perf_counter() - started < 1


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        parse_schedule("* * * * *").next_after(datetime(2025, 1, 1))


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


def test_schedule_fires_exactly_at_its_slot() -> None:
    trigger = TriggerSpec(minNewRecords=10**6, schedule="*/30 * * * *")
    early = run(trigger, now=T0 - timedelta(microseconds=1), pending=5, last_run_started=at(-20))
    assert (early.start, early.recheck_at) == (False, T0)
    due = run(trigger, now=T0, pending=5, last_run_started=at(-20))
    assert (due.start, due.trigger, due.schedule_time) == (True, "Schedule", T0)


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
