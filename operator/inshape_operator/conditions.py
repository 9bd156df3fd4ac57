"""Status conditions after the Kubernetes API conventions (metav1.Condition).

`type` names an aspect (Ready, Progressing, Degraded), `status` is True/False/Unknown,
`reason` one CamelCase word, `message` for humans, `observedGeneration` the spec generation the
condition was computed from, and `lastTransitionTime` moves only when `status` flips.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
TYPES = (READY, PROGRESSING, DEGRADED)

Status = Literal["True", "False", "Unknown"]
STATUSES: tuple[Status, ...] = ("True", "False", "Unknown")
# metav1.Condition's validation of reason and its message limit.
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
REASON_MAX = 1024
MESSAGE_MAX = 32768


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""
    observed_generation: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"condition {self.type}: status {self.status!r} is not one of {STATUSES}"
            )
        if len(self.reason) > REASON_MAX or not REASON.match(self.reason):
            raise ValueError(f"condition {self.type}: reason {self.reason!r} is not CamelCase")


def rfc3339(moment: datetime) -> str:
    """Kubernetes' time format: UTC, whole seconds, a Z."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time from a Kubernetes object, or None if absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None, new: Condition, now: datetime
) -> list[dict[str, Any]]:
    """A new list with `new` in place of any condition of its type (order kept, else appended).

    lastTransitionTime is kept from the old condition when the status did not change.
    """
    old = find(conditions, new.type)
    transition = (
        old["lastTransitionTime"]
        if old is not None and old.get("status") == new.status and old.get("lastTransitionTime")
        else rfc3339(now)
    )
    entry: dict[str, Any] = {
        "type": new.type,
        "status": new.status,
        "reason": new.reason,
        "message": new.message[:MESSAGE_MAX],
        "lastTransitionTime": transition,
    }
    if new.observed_generation is not None:
        entry["observedGeneration"] = new.observed_generation
    result: list[dict[str, Any]] = []
    replaced = False
    for condition in conditions or ():
        if condition.get("type") == new.type:
            if not replaced:
                result.append(entry)
                replaced = True
            continue
        result.append(dict(condition))
    if not replaced:
        result.append(entry)
    return result
