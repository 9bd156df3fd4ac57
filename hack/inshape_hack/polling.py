"""The one poll-until helper: wait for an observed state, tolerating "not there yet"."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.2,
) -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    Raises TimeoutError naming ``what`` after ``timeout`` seconds, and RuntimeError at once if
    ``alive()`` says the process behind the check has died (no point waiting for it).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if not alive():
            raise RuntimeError(f"{what}: process exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(interval)
