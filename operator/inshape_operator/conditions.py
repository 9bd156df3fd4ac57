"""Setting a status condition after the Kubernetes API conventions (metav1.Condition).

`type` names an aspect (Ready, Progressing, Degraded), `status` is True/False/Unknown,
`reason` one CamelCase word, `message` for humans, `observedGeneration` the spec generation the
condition was computed from, and `lastTransitionTime` moves only when `status` flips.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from inshape_api.status import MESSAGE_MAX, Condition

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
TYPES = (READY, PROGRESSING, DEGRADED)


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time from a Kubernetes object, or None if absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def set_condition(
    conditions: tuple[Condition, ...], new: Condition, now: datetime
) -> tuple[Condition, ...]:
    """`conditions` with `new` in place of its type (order kept, else appended).

    lastTransitionTime is kept from the old condition when the status did not change, else
    it becomes `now` (whatever `new` carried).
    """
    old = next((c for c in conditions if c.type == new.type), None)
    moment = old.lastTransitionTime if old is not None and old.status == new.status else now
    entry = replace(new, message=new.message[:MESSAGE_MAX], lastTransitionTime=moment)
    kept: list[Condition] = []
    placed = False
    for condition in conditions:
        if condition.type != new.type:
            kept.append(condition)
        elif not placed:  # duplicates of a type (hand-edited status) collapse into one
            kept.append(entry)
            placed = True
    return (*kept, entry) if not placed else tuple(kept)
