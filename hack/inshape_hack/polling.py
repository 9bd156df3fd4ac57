"""The one poll-until helper: wait for an observed state, tolerating "not there yet".

Every wait of the dev harness, the tests and the benches is this loop: a port that opens, a
server that answers, an object that reaches a state, a watch that saw an event. Callers give
it a domain name (``what``) and, where a failed look means "not yet", the errors to retry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.2,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    An exception of a type in ``retry_on`` counts as "not yet" (a refused connection, a server
    still starting); any other propagates at once. Raises TimeoutError after ``timeout``
    seconds, and RuntimeError at once if ``alive()`` says the process behind the check has
    died (no point waiting for it). Both name ``what`` and the last value or error seen, and
    chain that error.
    """
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            value = check()
        except retry_on as caught:
            error, seen = caught, f"error {caught!r}"
        else:
            if value:
                return value
            seen = repr(value)
        if not alive():
            raise RuntimeError(f"{what}: process exited (last seen: {seen})") from error
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting until {what} (last seen: {seen})"
            ) from error
        time.sleep(interval)
