"""Five-field cron expressions (minute hour day-of-month month day-of-week), evaluated in UTC.

Supports `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b-c`, month and weekday
names (`jan`, `mon`) and day-of-week 7 as Sunday. Day-of-month and day-of-week follow Vixie
cron: when both are restricted (neither starts with `*`) a day matches if either does. No
`@daily`-style macros: the spec's minLength of 9 would refuse most of them anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: i + 1 for i, name in enumerate(_MONTHS)},
    {name: i for i, name in enumerate(_DAYS)},
)
# (lowest, highest) per field; day-of-week accepts 7 (Sunday) and folds it to 0.
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")

# The shape of an expression, as the CRD's OpenAPI pattern checks it (values are checked here).
_ITEM = r"(\*|[0-9]+(-[0-9]+)?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/[0-9]+)?"
_FIELD = rf"{_ITEM}(,{_ITEM})*"
PATTERN = rf"^{_FIELD}( +{_FIELD}){{4}}$"
# Far enough to find the next 29 February (leap days can be eight years apart).
_SEARCH_DAYS = 366 * 9


class CronError(ValueError):
    """A schedule that cannot be parsed; the message names the offending field."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month is `*`
    any_weekday: bool  # day-of-week is `*`

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def matches(self, moment: datetime) -> bool:
        moment = _utc(moment)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and self.matches_day(moment.date())
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled minute strictly after `moment`."""
        start = _utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for offset in range(_SEARCH_DAYS):
            day = start.date() + timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    slot = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if slot >= start:
                        return slot
        raise CronError(f"{self.expression!r} never fires")

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last scheduled minute at or before `moment`, or None within the search span."""
        end = _utc(moment).replace(second=0, microsecond=0)
        for offset in range(_SEARCH_DAYS):
            day = end.date() - timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for hour in sorted(self.hours, reverse=True):
                for minute in sorted(self.minutes, reverse=True):
                    slot = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if slot <= end:
                        return slot
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("cron times must be timezone-aware")
    return moment.astimezone(UTC)


def _value(text: str, index: int) -> int:
    names = _NAMES[index]
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError(f"{_FIELD_NAMES[index]}: {text!r} is not a number")
    low, high = _BOUNDS[index]
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{_FIELD_NAMES[index]}: {value} is outside {low}-{high}")
    return value


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{_FIELD_NAMES[index]}: step {step_text!r} must be >= 1")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, _, last_text = body.partition("-")
            first, last = _value(first_text, index), _value(last_text, index)
            if first > last:
                raise CronError(f"{_FIELD_NAMES[index]}: range {body!r} runs backwards")
        else:
            first = _value(body, index)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def parse(expression: str) -> Cron:
    text = " ".join(expression.split())
    if not re.fullmatch(PATTERN, text):
        raise CronError(f"{expression!r} is not a 5-field cron expression")
    parts = text.split(" ")
    fields = [_field(part, i) for i, part in enumerate(parts)]
    return Cron(
        expression=expression,
        minutes=fields[0],
        hours=fields[1],
        days=fields[2],
        months=fields[3],
        weekdays=fields[4],
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )
