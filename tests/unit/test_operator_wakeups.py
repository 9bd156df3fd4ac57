"""Wake-ups: a policy's daemon sleeps until its due time, the poll interval, or a re-arm."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from inshape_operator.wakeups import SLACK_SECONDS, Wakeups

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_the_delay_is_the_due_time_capped_by_the_poll() -> None:
    wakeups = Wakeups()
    assert wakeups.delay("p", 30.0, NOW) == 30.0  # nothing due: the poll interval
    wakeups.arm("p", NOW + timedelta(seconds=7))
    assert wakeups.delay("p", 30.0, NOW) == 7.0 + SLACK_SECONDS
    assert wakeups.delay("p", 5.0, NOW) == 5.0
    wakeups.arm("p", NOW - timedelta(seconds=3))  # overdue: at once
    assert wakeups.delay("p", 30.0, NOW) == SLACK_SECONDS
    wakeups.forget("p")
    assert wakeups.delay("p", 30.0, NOW) == 30.0


def test_sleep_ends_when_due_long_before_the_poll() -> None:
    async def scenario() -> tuple[bool, float]:
        wakeups = Wakeups()
        wakeups.arm("p", datetime.now(UTC) + timedelta(seconds=0.2))
        started = time.monotonic()
        due = await wakeups.sleep("p", 30.0)
        return due, time.monotonic() - started

    due, slept = asyncio.run(scenario())
    assert due and slept < 10.0  # the poll interval (30 s) never came into it


def test_a_re_arm_wakes_the_sleeper_to_sleep_again() -> None:
    async def scenario() -> bool:
        wakeups = Wakeups()
        sleeper = asyncio.create_task(wakeups.sleep("p", 30.0))
        await asyncio.sleep(0.05)
        wakeups.arm("p", datetime.now(UTC) + timedelta(minutes=5))
        return await asyncio.wait_for(sleeper, 10.0)

    assert asyncio.run(scenario()) is False
