"""An update run's first steps: snapshot the topic and fetch the first chunk.

Nothing here, nor anything it imports, loads scikit-learn, MLflow, matplotlib, scipy or
pandas: those cost seconds of imports, so the Job starts reading first and imports them
(update.py) while the first chunk is in hand. tests/unit/test_job_lazy_imports.py holds
this module to that.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from inshape_api.spec import Policy
from inshape_jobs.drain import Snapshot
from inshape_jobs.progress import process_age
from inshape_jobs.records import Chunk

FIRST_FETCH = "first fetch"  # in the line printed as it goes out; bench/job_start.py waits for it


class Reader(Protocol):
    """What the run needs of Kafka (drain.TopicReader in production)."""

    bootstrap_servers: str

    def snapshot(self, window: int | None = None) -> Snapshot: ...
    def read(self, snapshot: Snapshot, chunk_records: int) -> Iterator[Chunk]: ...
    def commit(self, offsets: dict[int, int], metadata: str) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, rejected: list[tuple[int, int, str, bytes | None]]) -> None: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    run_key: str
    chunk_records: int = 10_000
    quiet: bool = False


@dataclass
class Timers:
    """Seconds spent per stage; drain and train interleave, so each is timed on its own."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


class StartedDrain:
    """A snapshot whose read has begun: its first chunk (if any) is fetched already."""

    def __init__(
        self, snapshot: Snapshot, timers: Timers, chunks: Iterator[Chunk], started: float
    ) -> None:
        self.snapshot = snapshot
        self.timers = timers
        self.started = started  # time.monotonic() as the run began
        self._rest = chunks
        with timers.stage("drain"):
            self._first = next(chunks, None)

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk of the snapshot, the fetched first one included (once only)."""
        first, self._first = self._first, None
        if first is not None:
            yield first
        yield from self._rest

    def close(self) -> None:
        """Stop the read (its fetch thread and connections) if the run leaves it unfinished."""
        if isinstance(self._rest, Generator):
            self._rest.close()


def start_drain(
    policy: Policy, options: RunOptions, reader: Reader, timers: Timers | None = None
) -> StartedDrain:
    """Snapshot the topic and fetch its first chunk; nothing is committed."""
    started = time.monotonic()
    timers = timers or Timers()
    model = policy.spec.model
    window = model.window.maxRecords if model.strategy == "retrain" and model.window else None
    with timers.stage("snapshot"):
        snapshot = reader.snapshot(window=window)
    if snapshot.new_records == 0:
        return StartedDrain(snapshot, timers, iter(()), started)
    print(
        f"Snapshot of {snapshot.topic} for group {snapshot.group}: "
        f"{snapshot.new_records} new records, {snapshot.to_read} to read",
        flush=True,
    )
    age = process_age()
    since = f" {age:.2f}s after process start" if age is not None else ""
    print(f"Reading {snapshot.topic}: {FIRST_FETCH}{since}", flush=True)
    chunks = reader.read(snapshot, options.chunk_records)
    return StartedDrain(snapshot, timers, chunks, started)
