"""Progress lines on stdout: what `kubectl logs job/...` shows while a run works."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


class Progress:
    """Prints `<stage> <pct>% <done>/<total> records <rate> rec/s` at most every `every` s."""

    def __init__(self, stage: str, total: int, every: float = 2.0, quiet: bool = False) -> None:
        self.stage = stage
        self.total = total
        self.every = every
        self.quiet = quiet
        self.started = time.monotonic()
        self._last = self.started

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._print(done, now)

    def done(self, done: int) -> None:
        self._print(done, time.monotonic())

    def _print(self, done: int, now: float) -> None:
        if self.quiet:
            return
        elapsed = max(now - self.started, 1e-9)
        share = 100.0 * done / self.total if self.total else 100.0
        print(
            f"{self.stage:<8} {share:5.1f}% {done}/{self.total} records "
            f"{done / elapsed:,.0f} rec/s {elapsed:.1f}s",
            file=sys.stdout,
            flush=True,
        )


def process_age() -> float | None:
    """Seconds since this process was started (Linux: /proc/self/stat's start time, in clock
    ticks since boot); None where that is unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22, counted from the state after the name
        ticks = os.sysconf("SC_CLK_TCK")
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, now - started_ticks / ticks)
