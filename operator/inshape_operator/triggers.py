"""Whether to start an update run now: lag, cron schedule and max interval, in one pure decision.

Level-based: everything is derived from observations (the policy, whether a Job is active, the
consumer group's lag, the last run's times, the last consumed schedule slot), so a restarted
operator decides the same. Rules, in order:

1. `suspend` blocks everything; an active Job blocks everything (never two Jobs at once).
2. After a Failed run, nothing starts until the failure back-off has passed (no hot loop of
   failing Jobs while the lag stays above the threshold).
3. Lag: the group's lag reaches `minNewRecords`.
4. Schedule: a cron slot passed since the later of the policy's creation, the last run's
   start and the last consumed slot. A slot with nothing pending is consumed without a run.
5. MaxInterval: that long passed since the last run's start (or the policy's creation), and
   a record is pending (or the lag is unknown: the Job then finds out).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from croniter import CroniterBadDateError, CroniterError, croniter

from inshape_api import cron_syntax
from inshape_api.spec import TriggerSpec, duration_seconds

TriggerName = Literal["Lag", "Schedule", "MaxInterval"]

_DURATION = re.compile(r"([0-9]+)([smhd])")
_NEVER_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
# How far croniter searches for a slot. The rarest schedule that fires at all, 29 February on
# one weekday (`0 0 29 2 */7`: a star-led day-of-week ANDs the day fields), recurs at most 40
# years apart in the Gregorian calendar; past the bound croniter raises CroniterBadDateError
# (a few milliseconds), which is how a schedule that never fires (`0 0 31 2 *`) is found.
_SEARCH_YEARS = 41


class TriggerError(ValueError):
    """A trigger spec that cannot be evaluated (bad schedule or duration)."""


class Schedule:
    """A validated 5-field cron expression on croniter, in UTC, to the minute.

    Day-of-month and day-of-week follow Vixie cron: when both are restricted a day matches if
    either does, unless one of them starts with `*`, then both must (croniter's
    implement_cron_bug, its name for Vixie's rule).
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        # One parse; croniter keeps its position, so calls take turns (handlers run in threads).
        self._croniter: croniter[datetime] = croniter(
            expression,
            _NEVER_PROBE,
            ret_type=datetime,
            max_years_between_matches=_SEARCH_YEARS,
            implement_cron_bug=True,
        )
        self._lock = threading.Lock()

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled minute strictly after `moment`; CroniterBadDateError if none."""
        start = _minute(moment)  # croniter starts from the minute after a whole minute
        with self._lock:
            return self._croniter.get_next(start_time=start).astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last scheduled minute at or before `moment`, or None within the search span."""
        # croniter looks strictly before its start: start one minute after moment's minute.
        start = _minute(moment) + timedelta(minutes=1)
        try:
            with self._lock:
                return self._croniter.get_prev(start_time=start).astimezone(UTC)
        except CroniterBadDateError:
            return None


def _minute(moment: datetime) -> datetime:
    """`moment` in UTC, down to its minute: whole minutes, exact as croniter's float seconds."""
    if moment.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@lru_cache(maxsize=1024)
def parse_schedule(expression: str) -> Schedule:
    """The schedule, or TriggerError naming spec.trigger.schedule: what the CRD's pattern
    refuses, a range croniter would misread (50-10, 5-5), or a schedule that never fires."""
    problem = cron_syntax.shape_problem(expression) or cron_syntax.order_problem(expression)
    if problem is None:
        try:
            schedule = Schedule(expression)
            schedule.next_after(_NEVER_PROBE)
        except CroniterBadDateError:
            problem = f"{expression!r} never fires"
        except CroniterError as exc:  # the pattern admitted what croniter refuses: a bug
            problem = f"{expression!r}: {exc}"
        else:
            return schedule
    raise TriggerError(f"spec.trigger.schedule: {problem}")


def parse_duration(text: str) -> timedelta:
    """`6h`, `1h30m`, `90s`, `2d` -> timedelta (the spec's DURATION pattern)."""
    if not text or _DURATION.sub("", text) != "":
        raise TriggerError(f"{text!r} is not a duration like 6h or 1h30m")
    seconds = duration_seconds(text)  # the spec's own reading, so both agree by construction
    if seconds == 0:
        raise TriggerError(f"{text!r} is zero; give a positive duration")
    return timedelta(seconds=seconds)


def validate(trigger: TriggerSpec) -> None:
    """Raise TriggerError if the schedule or maxInterval cannot work."""
    if trigger.schedule is not None:
        parse_schedule(trigger.schedule)
    if trigger.maxInterval is not None:
        try:
            parse_duration(trigger.maxInterval)
        except TriggerError as exc:
            raise TriggerError(f"spec.trigger.maxInterval: {exc}") from exc


@dataclass(frozen=True)
class Observed:
    """What the decision looks at; all times timezone-aware."""

    now: datetime
    created: datetime  # the policy's creationTimestamp: the baseline before any run
    pending: int | None  # consumer-group lag; None when it could not be read
    job_active: bool
    last_run_started: datetime | None = None
    last_schedule_time: datetime | None = None  # status.lastScheduleTime
    last_failed_at: datetime | None = None  # when the last run finished, if it Failed


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str  # CamelCase: the trigger that fired, or why nothing starts
    message: str
    trigger: TriggerName | None = None
    # The cron slot this decision consumes; store it as status.lastScheduleTime.
    schedule_time: datetime | None = None
    # The earliest time a time-based rule could change the decision (None: only events can).
    recheck_at: datetime | None = None


def _held(observed: Observed, suspend: bool, failure_backoff: timedelta) -> Decision | None:
    """Rules 1 and 2: what keeps any run from starting now."""
    if suspend:
        return Decision(False, "Suspended", "spec.suspend is true; no new runs start")
    if observed.job_active:
        return Decision(False, "JobActive", "an update Job is running")
    if observed.last_failed_at is not None:
        retry_at = observed.last_failed_at + failure_backoff
        if observed.now < retry_at:
            return Decision(
                False,
                "FailureBackoff",
                f"the last run failed; the next may start at {retry_at.isoformat()}",
                recheck_at=retry_at,
            )
    return None


def _slot(
    trigger: TriggerSpec, schedule: Schedule | None, observed: Observed
) -> tuple[Decision | None, datetime | None]:
    """Rule 4: (a Schedule decision, or the slot skipped because nothing is pending)."""
    if schedule is None:
        return None, None
    anchor = max(
        t
        for t in (observed.created, observed.last_run_started, observed.last_schedule_time)
        if t is not None
    )
    slot = schedule.latest_at_or_before(observed.now)
    if slot is None or slot <= anchor:
        return None, None
    if observed.pending == 0:
        return None, slot  # nothing to train on: skip this slot without a Job
    message = f"schedule {trigger.schedule!r} fired at {slot.isoformat()}"
    return Decision(True, "Schedule", message, trigger="Schedule", schedule_time=slot), slot


def decide(
    trigger: TriggerSpec,
    *,
    suspend: bool,
    observed: Observed,
    failure_backoff: timedelta = timedelta(minutes=5),
) -> Decision:
    """The one decision; raises TriggerError for a schedule or interval that cannot work."""
    validate(trigger)
    held = _held(observed, suspend, failure_backoff)
    if held is not None:
        return held
    now, pending = observed.now, observed.pending
    if pending is not None and pending >= trigger.minNewRecords:
        message = f"{pending} records pending (threshold {trigger.minNewRecords})"
        return Decision(True, "Lag", message, trigger="Lag")
    schedule = parse_schedule(trigger.schedule) if trigger.schedule else None
    scheduled, slot_consumed = _slot(trigger, schedule, observed)
    if scheduled is not None:
        return scheduled
    interval_due: datetime | None = None
    if trigger.maxInterval is not None:
        interval_due = (observed.last_run_started or observed.created) + parse_duration(
            trigger.maxInterval
        )
        if now >= interval_due and pending != 0:
            waiting = f", {pending} records pending" if pending is not None else ""
            message = f"no run for {trigger.maxInterval}{waiting}"
            return Decision(
                True, "MaxInterval", message, trigger="MaxInterval", schedule_time=slot_consumed
            )
    candidates = [interval_due] if interval_due is not None and interval_due > now else []
    if schedule is not None:
        candidates.append(schedule.next_after(now))
    if pending is None:
        reason, message = "LagUnknown", "the consumer group's lag could not be read"
    else:
        reason, message = "BelowThreshold", f"{pending} of {trigger.minNewRecords} records pending"
    recheck_at = min(candidates) if candidates else None
    return Decision(False, reason, message, schedule_time=slot_consumed, recheck_at=recheck_at)
