"""When each policy's next pass is due: the poll interval, or sooner when a time-based trigger
(a cron slot, maxInterval, the end of a failure back-off) comes due before it.

Each policy's daemon sleeps here. A pass run for any reason (a change, a finished Job, the
daemon itself) re-arms the policy with the `recheck_at` its plan returned, which wakes the
sleeper so it sleeps again until the new time. A sleeping policy costs one timer, so idle CPU
does not grow with how exact the schedule is.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

# Wake this long after the due time, so the pass sees the slot as passed.
SLACK_SECONDS = 0.05


class Wakeups:
    """Due times by policy uid; used from the event loop only."""

    def __init__(self) -> None:
        self._due: dict[str, datetime | None] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def _event(self, uid: str) -> asyncio.Event:
        return self._changed.setdefault(uid, asyncio.Event())

    def arm(self, uid: str, at: datetime | None) -> None:
        """The policy's next time-based check (None: only the poll interval)."""
        self._due[uid] = at
        self._event(uid).set()

    def delay(self, uid: str, longest: float, now: datetime) -> float:
        """Seconds to sleep from `now`: until the due time (plus slack), at most `longest`."""
        due = self._due.get(uid)
        if due is None:
            return longest
        return min(longest, max(0.0, (due - now).total_seconds()) + SLACK_SECONDS)

    async def sleep(self, uid: str, longest: float) -> bool:
        """Sleep until due or `longest` seconds passed (True), or until re-armed (False)."""
        event = self._event(uid)
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), self.delay(uid, longest, datetime.now(UTC)))
        except TimeoutError:
            return True
        return False

    def forget(self, uid: str) -> None:
        self._due.pop(uid, None)
        self._changed.pop(uid, None)
