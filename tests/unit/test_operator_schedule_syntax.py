"""The CRD's schedule pattern (inshape_api.cron_syntax.PATTERN) against croniter, the parser
the operator evaluates schedules with, on a few thousand generated strings.

A seeded generator walks the cron grammar and breaks it the ways people do: out-of-range
numbers, `*/0`, reversed and equal ranges, empty list items, 3, 4, 6 or 7 fields, tabs, stray
characters, Quartz's L/W/#/?, macros in capitals. For each string:

1. The pattern admits only what croniter parses (A => C): the API server never stores a
   schedule the operator cannot read.
2. What croniter parses and the pattern refuses falls in REFUSED_EXTENSIONS, the croniter
   syntax inshape chose not to offer (C and not A => listed): else the two disagree.
3. `triggers.validate` accepts exactly what the pattern admits, minus what standard cron
   reads differently from croniter (ranges that do not run upwards) and schedules that never
   fire, both found by an independent reference reading below. For what it accepts,
   croniter's expansion of every field equals the reference's, and the operator's next and
   latest slot around a random moment equal the reference's day-by-day search (which also
   checks how the two day fields combine).

3000 cases from a fixed seed: about 3 s.
"""

from __future__ import annotations

import bisect
import calendar
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

from inshape_api.cron_syntax import PATTERN
from inshape_api.spec import TriggerSpec
from inshape_operator.triggers import TriggerError, parse_schedule, validate

SEED = 20250303
CASES = 3000

# Written out again, not imported: the reference below reads cron on its own.
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
NAMES = {3: (1, MONTHS), 4: (0, DAYS)}  # field -> (value of the first name, names)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# --- what croniter parses and inshape refuses at apply, and why ------------------------------


def _fields(text: str) -> list[str]:
    return text.split()


def _zero_range_end(text: str) -> bool:
    """0 ending or starting a range in day-of-month or month, which croniter wraps around
    (`11-0` is 11-12 in month) instead of refusing the 0."""
    fields = _fields(text)
    ranges = [
        bound
        for field in fields[2:4]
        for item in field.split(",")
        if "-" in item
        for bound in item.split("/")[0].split("-")
    ]
    return any(bound.isdigit() and int(bound) == 0 for bound in ranges)


REFUSED_EXTENSIONS: dict[str, Callable[[str], bool]] = {
    # croniter's 6th (seconds) and 7th (year) fields: a Kubernetes-style 5-field API.
    "seconds or year field": lambda s: len(_fields(s)) in (6, 7),
    # croniter splits on any whitespace and strips it; the API takes spaces between fields.
    "tab, newline, leading or trailing space": lambda s: (
        bool(re.search(r"[^\S ]", s)) or s != s.strip()
    ),
    # croniter lowers the whole expression; macros are lowercase, as Kubernetes CronJob's.
    "macro not in lowercase": lambda s: s.lower() in MACROS and s not in MACROS,
    # Quartz's L (last), W (weekday), # (nth), ? (any); Jenkins' H (hash), croniter's R
    # (random): not standard cron.
    "L, W, #, ?, H or R": lambda s: (
        bool(re.search(r"[#?]", s))
        or any(
            word.lower() not in MONTHS + DAYS for word in re.findall(r"[A-Za-z]+", s.lstrip("@"))
        )
    ),
    "0 as a range bound in day-of-month or month": _zero_range_end,
    # croniter ANDs the day fields when either holds a `*` anywhere (`1,*`); cron only when
    # one starts with `*`. The pattern takes `*` first or not at all in those two fields.
    "* after the first item of a day field": lambda s: (
        len(_fields(s)) == 5
        and any(i.startswith("*") for f in _fields(s)[2::2] for i in f.split(",")[1:])
    ),
}


def refused_extension(text: str) -> str | None:
    return next((name for name, test in REFUSED_EXTENSIONS.items() if test(text)), None)


# --- the generator ---------------------------------------------------------------------------

STRAY = ["x", "?", "L", "l", "W", "#", "H", "R", "-", ",", "/", "*", "%", ".", "é", "\u0661"]


def _any_case(rng: random.Random, word: str) -> str:
    return rng.choice(
        [
            word,
            word.upper(),
            word.capitalize(),
            "".join(c.upper() if rng.random() < 0.5 else c for c in word),
        ]
    )


def _value(rng: random.Random, index: int) -> tuple[str, int | None]:
    low, high = BOUNDS[min(index, 4)]
    if rng.random() < 0.03:
        number = rng.choice([low - 1 if low else 60, high + 1, 99, 100, 60, 24, 32, 13, 8])
    else:
        number = rng.randint(low, high)
    if index in NAMES and rng.random() < 0.35:
        first, names = NAMES[index]
        if 0 <= number - first < len(names):
            return _any_case(rng, names[number - first]), number
    if rng.random() < 0.01:  # a name in the wrong field
        return _any_case(rng, rng.choice(MONTHS + DAYS)), None
    text = str(number)
    if rng.random() < 0.12:
        text = "0" * rng.randint(1, 3) + text
    return text, number


def _step(rng: random.Random) -> str:
    steps = [0, 1, 2, 3, 5, 7, 10, 15, 30, 60, 100]
    text = str(rng.choices(steps, [1, 3, 3, 3, 3, 3, 3, 3, 3, 2, 1])[0])
    return "/" + ("0" + text if rng.random() < 0.08 else text)


# croniter's syntax beyond standard cron, per field; and 0 ending a day-of-month or month range.
EXTENSIONS = {
    0: ["R", "H", "H(0-29)/10"],
    2: ["L", "l", "15W", "w3", "?", "L-2", "28-0", "11-0/2"],
    3: ["?", "12-0", "6-00"],
    4: ["mon#2", "5#3", "L5", "?", "5L"],
}


def _item(rng: random.Random, index: int) -> str:
    kinds = ["*", "*/n", "a", "a-b", "a-b/n", "a/n", "", "extension"]
    kind = rng.choices(kinds, [20, 15, 30, 15, 10, 8, 1, 1])[0]
    if kind == "extension":
        return rng.choice(EXTENSIONS.get(index, ["*"]))
    if kind in ("*", ""):
        return kind
    if kind == "*/n":
        return "*" + _step(rng)
    first, low = _value(rng, index)
    if kind == "a":
        return first
    if kind == "a/n":
        return first + _step(rng)
    last, high = _value(rng, index)
    if low is not None and high is not None and low > high and rng.random() < 0.7:
        first, last = last, first  # mostly upwards, sometimes backwards or equal
    return f"{first}-{last}" + (_step(rng) if kind == "a-b/n" else "")


def expression(rng: random.Random) -> str:
    if rng.random() < 0.04:
        if rng.random() < 0.2:
            return rng.choice(list(MACROS)) + rng.choice([" ", "x", "s", " *"])
        return _any_case(rng, rng.choice([*MACROS, "@reboot", "@hour", "@every", "@"]))
    if rng.random() < 0.03:  # days some months lack: some never fire
        days = rng.choice(["30", "31", "30,31", "29-31", "29", "31/2"])
        months = rng.choice(["2", "feb", "4,6", "apr-jun/2", "2,4", "*/2"])
        weekdays = rng.choice(["*", "*/2", "mon", "1-5", "0-7/7"])
        return f"{rng.randrange(60)} {rng.randrange(24)} {days} {months} {weekdays}"
    count = rng.choices([5, 4, 6, 7, 3], [88, 4, 4, 2, 2])[0]
    fields = [
        ",".join(_item(rng, i) for _ in range(rng.choices([1, 2, 3], [70, 20, 10])[0]))
        for i in range(count)
    ]
    text = fields[0]
    for field in fields[1:]:
        text += rng.choices([" ", "  ", "\t", "   "], [90, 6, 2, 2])[0] + field
    if rng.random() < 0.06:
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(STRAY) + text[at:]
    if rng.random() < 0.03:
        space = rng.choice([" ", "\t", "\n"])
        text = space + text if rng.random() < 0.5 else text + space
    return text


# --- the reference: standard cron's reading, written without croniter or cron_syntax ---------

Reading = tuple[list[set[int]], bool]  # per-field values (Sunday 0), whether the days AND


def _number(index: int, word: str) -> int:
    first, names = NAMES.get(index, (0, []))
    return first + names.index(word.lower()) if word.lower() in names else int(word)


def reference(text: str) -> Reading | str:
    """How cron reads an expression the pattern admits, or why inshape refuses it."""
    text = MACROS.get(text, text)
    fields = text.split(" ")
    fields = [f for f in fields if f]
    sets: list[set[int]] = []
    for index, field in enumerate(fields):
        low, high = BOUNDS[index]
        values: set[int] = set()
        for item in field.split(","):
            body, slash, step_text = item.partition("/")
            step = int(step_text) if slash else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                start, end = (_number(index, w) for w in body.split("-"))
                if start >= end:
                    return "range not upwards"
            else:
                start = _number(index, body)
                # a/n runs to the field's end: day-of-week's is 6 (robfig/cron, croniter).
                end = (6 if index == 4 else high) if slash else start
                if start > end:
                    return "range not upwards"
            values |= set(range(start, end + 1, step))
        sets.append({v % 7 for v in values} if index == 4 else values)
    and_days = fields[2].startswith("*") or fields[4].startswith("*")
    return sets, and_days


def fires(reading: Reading) -> bool:
    """Whether any minute matches: with the days ORed a listed weekday comes in any month;
    ANDed, a listed day must exist in a listed month (29 February counts: every date falls
    on every weekday in some year)."""
    (_, _, days, months, _), and_days = reading
    longest = {m: calendar.monthrange(2024, m)[1] for m in range(1, 13)}  # a leap year
    return not and_days or any(d <= longest[m] for m in months for d in days)


def slot_after(reading: Reading, moment: datetime, step: int) -> datetime | None:
    """The reference's first slot after `moment` (step 1) or last at or before it (step -1),
    day by day over 41 years: what the operator's Schedule must answer."""
    (minutes, hours, days, months, weekdays), and_days = reading
    times = sorted(h * 60 + m for h in hours for m in minutes)  # minutes of the day
    now = moment.hour * 60 + moment.minute  # a slot in this minute is at or before moment
    day = moment.date()
    for offset in range(366 * 41):
        in_month = day.day in days
        on_weekday = day.isoweekday() % 7 in weekdays
        if day.month in months and (
            (in_month and on_weekday) if and_days else (in_month or on_weekday)
        ):
            if offset == 0 and step > 0:
                later = times[bisect.bisect_right(times, now) :]
                slot = later[0] if later else None
            elif offset == 0:
                earlier = times[: bisect.bisect_right(times, now)]
                slot = earlier[-1] if earlier else None
            else:
                slot = times[0] if step > 0 else times[-1]
            if slot is not None:
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                return start + timedelta(minutes=slot)
        day += timedelta(days=step)
    return None


def croniter_sets(text: str) -> list[set[int | str]] | None:
    """croniter's expansion of each field (`*` spelled out), or None if it cannot parse."""
    try:
        expanded = croniter.expand(text)[0]
    except CroniterError:
        return None
    full = [set(range(low, high + 1)) for low, high in BOUNDS[:4]] + [set(range(7))]
    return [
        set(full[i]) if "*" in values and i < len(full) else set(values)
        for i, values in enumerate(expanded)
    ]


def validates(text: str) -> bool:
    try:
        validate(TriggerSpec(schedule=text))
    except TriggerError as exc:
        assert str(exc).startswith("spec.trigger.schedule: "), exc
        return False
    return True


def test_the_pattern_and_croniter_agree() -> None:
    rng = random.Random(SEED)
    pattern = re.compile(PATTERN)
    seen: Counter[str] = Counter()
    for _ in range(CASES):
        text = expression(rng)
        admitted = pattern.fullmatch(text) is not None
        parsed = croniter_sets(text)
        if admitted:
            assert parsed is not None, f"the API would admit {text!r}, croniter cannot parse it"
            reading = reference(text)
            expected = not isinstance(reading, str) and fires(reading)
            assert validates(text) is expected, (text, reading)
            if isinstance(reading, str):
                seen[reading] += 1
            elif expected:
                assert parsed == reading[0], f"croniter reads {text!r} as {parsed}"
                moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(100 * 365 * 86400)
                )
                schedule = parse_schedule(text)
                assert schedule.next_after(moment) == slot_after(reading, moment, 1), (
                    text,
                    moment,
                )
                assert schedule.latest_at_or_before(moment) == slot_after(reading, moment, -1), (
                    text,
                    moment,
                )
                seen["accepted"] += 1
            else:
                seen["never fires"] += 1
        else:
            assert not validates(text), text
            if parsed is None:
                seen["refused by both"] += 1
            else:
                why = refused_extension(text)
                assert why is not None, f"croniter parses {text!r}, the pattern refuses it"
                seen[why] += 1
    # Every class came up, so none of the rules above is dead.
    assert set(seen) == {
        "accepted",
        "refused by both",
        "range not upwards",
        "never fires",
        *REFUSED_EXTENSIONS,
    }, seen
    assert seen["accepted"] > CASES // 5, seen


def test_the_reference_reads_known_expressions() -> None:
    weekdays = reference("*/15 9-17 * * mon-fri")
    assert not isinstance(weekdays, str)
    assert weekdays[0][0] == {0, 15, 30, 45} and weekdays[0][4] == {1, 2, 3, 4, 5}
    assert weekdays[1] is True
    assert reference("5-1 * * * *") == reference("5-5 * * * *") == "range not upwards"
    never = reference("0 0 31 2 *")
    assert not isinstance(never, str) and not fires(never)
    assert refused_extension("0 0 L * *") == "L, W, #, ?, H or R"
    assert refused_extension("0 0 1 * mon") is None


def test_the_pattern_is_linear_on_long_inputs() -> None:
    """Python's backtracking `re` (spec.py) on long near-misses: no blow-up."""
    pattern = re.compile(PATTERN)
    started = time.perf_counter()
    for text in [
        "0" * 20_000 + "x * * * *",
        "1," * 10_000 + " * * * *",
        "*/" + "1" * 20_000 + "x * * * *",
        "* " * 10_000,
        "1-2/3," * 5_000 + "1-",
    ]:
        assert pattern.fullmatch(text) is None
    assert time.perf_counter() - started < 1
