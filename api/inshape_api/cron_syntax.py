"""The cron syntax spec.trigger.schedule accepts, as one regular expression built from the fields.

Five fields, evaluated in UTC: minute (0-59), hour (0-23), day-of-month (1-31), month (1-12 or
jan-dec), day-of-week (0-7 or sun-sat; 0 and 7 are Sunday), separated by spaces. A field is a
comma list of `*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n` (a to the field's end), with n >= 1;
numbers may have leading zeros, names any case. Or one of MACROS, in lowercase.

PATTERN is the field's OpenAPI `pattern` in the CRD, so the API server refuses at apply what
the operator (croniter) cannot parse; spec.py applies the same pattern (re.fullmatch), so the
Job and the operator refuse the same strings. It is a plain regular expression in the subset
that ECMA-262 (the OpenAPI dialect), Go's RE2 (what the API server runs) and Python's `re`
share: no lookaround, backreferences or inline flags; and no ambiguity a backtracking `re`
could blow up on (tests/unit/test_operator_schedule_syntax.py).

croniter parses more than this; the pattern refuses it on purpose: seconds and year fields,
Quartz's L, W, # and ?, hashed and random H and R, whitespace other than spaces between the
fields, macros in capitals, 0 as a range end in day-of-month or month (croniter wraps `11-0`
around), and `*` after the first item of a day field (croniter then ANDs the day fields where
cron ORs them, see FIELDS).

What a pattern cannot state, `order_problem` does: a range must run upwards (`a-b` with
a < b). croniter reads `50-10` as a wrap-around and `5-5` as the whole field, where cron reads
an error and minute 5; the operator refuses both (inshape_operator.triggers.validate).

Pure, with no croniter import: the api package stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is low + i
    # `*` and `*/n` only as the list's first item: see FIELDS.
    star_first: bool = False
    # Where `a/n` stops (default high): day-of-week's 6, its 7 is Sunday again (croniter and
    # robfig/cron, Kubernetes CronJob's, agree), so `7/n` has nowhere to run.
    step_end: int | None = None

    @property
    def end(self) -> int:
        return self.high if self.step_end is None else self.step_end

    def value(self, text: str) -> int:
        """The number a value of this field stands for (a name, or digits)."""
        lowered = text.lower()
        if lowered in self.names:
            return self.low + self.names.index(lowered)
        return int(text)


# When day-of-month and day-of-week are both restricted, a day matches if either does, unless
# one of them starts with `*`: then both must (Vixie cron). croniter also ANDs them when a `*`
# comes later in the list (`1,*`), so there the day fields take `*` first or not at all.
FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day-of-month", 1, 31, star_first=True),
    Field("month", 1, 12, MONTHS),
    Field("day-of-week", 0, 7, DAYS, star_first=True, step_end=6),
)


def _class(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def number_pattern(low: int, high: int) -> str:
    """Decimal numbers low..high (high < 100), with any leading zeros (croniter reads int())."""
    if not 0 <= low <= high < 100:
        raise ValueError(f"{low}-{high}: only 0-99 is supported")
    parts = []
    if low <= 9:
        parts.append(_class(low, min(high, 9)))
    whole = [t for t in range(1, 10) if low <= t * 10 and t * 10 + 9 <= high]
    if whole:
        parts.append(_class(whole[0], whole[-1]) + "[0-9]")
    for tens in range(max(1, low // 10), high // 10 + 1):
        if tens in whole:
            continue
        first, last = max(low, tens * 10), min(high, tens * 10 + 9)
        if first <= last:
            parts.append(f"{tens}{_class(first % 10, last % 10)}")
    return "0*(" + "|".join(parts) + ")"


def name_pattern(name: str) -> str:
    """A name in any case (croniter lowers the expression): jan -> [Jj][Aa][Nn]."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in name)


STEP = "/0*[1-9][0-9]*"


def value_pattern(field: Field) -> str:
    return "|".join([number_pattern(field.low, field.high), *map(name_pattern, field.names)])


def values_pattern(field: Field) -> str:
    """`a`, `a-b`, `a-b/n` or `a/n`."""
    value = f"({value_pattern(field)})"
    return f"{value}(-{value})?({STEP})?"


def item_pattern(field: Field) -> str:
    """`*`, `*/n`, or values."""
    return rf"(\*({STEP})?|{values_pattern(field)})"


def field_pattern(field: Field) -> str:
    later = f"({values_pattern(field)})" if field.star_first else item_pattern(field)
    return f"{item_pattern(field)}(,{later})*"


def expression_pattern() -> str:
    fields = " +".join(field_pattern(f) for f in FIELDS)
    return f"^({'|'.join(MACROS)}|{fields})$"


PATTERN = expression_pattern()
_EXPRESSION = re.compile(PATTERN)
_FIELDS = [re.compile(field_pattern(f)) for f in FIELDS]
_ITEMS = [re.compile(item_pattern(f)) for f in FIELDS]


def shape_problem(expression: str) -> str | None:
    """Why PATTERN refuses `expression`, naming the field; None when it matches."""
    if _EXPRESSION.fullmatch(expression):
        return None
    usage = "minute hour day-of-month month day-of-week, or " + ", ".join(MACROS)
    if expression.startswith("@"):
        return f"{expression!r} is not a macro; the macros are {', '.join(MACROS)}"
    if expression != expression.strip(" ") or re.search(r"[^\S ]", expression):
        return f"{expression!r}: separate the fields by spaces, with none before or after"
    parts = expression.split()
    if len(parts) != len(FIELDS):
        return f"{expression!r} has {len(parts)} field(s); give 5: {usage}"
    for field, field_re, item_re, part in zip(FIELDS, _FIELDS, _ITEMS, parts, strict=True):
        if field_re.fullmatch(part):
            continue
        items = part.split(",")
        if field.star_first and any(i.startswith("*") for i in items[1:]):
            return (
                f"{field.name}: {part!r} has * after the first item; put it first, where cron "
                "reads it as 'both day fields must match', or leave it out"
            )
        item = next((i for i in items if not item_re.fullmatch(i)), part)
        if not item:
            return f"{field.name}: {part!r} has an empty list item"
        names = f" or {field.names[0]}-{field.names[-1]}" if field.names else ""
        return (
            f"{field.name}: {item!r} is not *, */n, a, a-b, a-b/n or a/n "
            f"with a, b in {field.low}-{field.high}{names} and n >= 1"
        )
    return f"{expression!r} is not a cron expression ({usage})"


def order_problem(expression: str) -> str | None:
    """The first range of an expression PATTERN matches that does not run upwards, or None.

    `a-b` needs a < b: croniter reads `50-10` as 50-59,0-10 and `5-5` (or `jan-jan`) as the
    whole field. `a/n` runs from a to the field's end, which day-of-week's 7 lies past.
    """
    if expression in MACROS:
        return None
    for field, part in zip(FIELDS, expression.split(), strict=True):
        for item in part.split(","):
            body, slash, _ = item.partition("/")
            if body == "*":
                continue
            first, dash, last = body.partition("-")
            low = field.value(first)
            if dash:
                high = field.value(last)
                if low == high:
                    return (
                        f"{field.name}: the range {body!r} starts and ends at {first}; "
                        f"write {first} alone"
                    )
                if low > high:
                    return (
                        f"{field.name}: the range {body!r} runs backwards; "
                        "split a range across the end into two (50-59,0-10)"
                    )
            elif slash and low > field.end:
                return (
                    f"{field.name}: {item!r} would run from {first} up to {field.end}; "
                    f"start it at {field.end} or lower"
                )
    return None
