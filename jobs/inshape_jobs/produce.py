"""The stream producer: writes a record stream to a topic at a given rate (Kafka I/O)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from kafka.producer import KafkaProducer

from inshape_api.kafka_security import PLAINTEXT_SECURITY, KafkaSecurity, client_kwargs
from inshape_jobs.progress import Progress
from inshape_jobs.streams import MALFORMED_KINDS, malformed_record
from inshape_jobs.topics import ensure_topic


def encoded(
    records: Iterator[dict[str, Any]], bad_fraction: float, seed: int = 0
) -> Iterator[bytes]:
    """JSON values, with about bad_fraction of them replaced by malformed ones."""
    rng = np.random.default_rng(seed)
    for record in records:
        if bad_fraction > 0 and rng.random() < bad_fraction:
            yield malformed_record(str(rng.choice(MALFORMED_KINDS)), record)
        else:
            yield json.dumps(record, separators=(",", ":")).encode()


def produce(
    bootstrap_servers: str,
    topic: str,
    values: Iterator[bytes],
    *,
    count: int,
    rate: float | None = None,
    partitions: int = 3,
    quiet: bool = False,
    security: KafkaSecurity = PLAINTEXT_SECURITY,
) -> int:
    """Send count values (rate: records per second, None for as fast as possible)."""
    ensure_topic(bootstrap_servers, topic, partitions, security=security)
    producer = KafkaProducer(
        **client_kwargs(security),
        bootstrap_servers=bootstrap_servers,
        linger_ms=10,
        batch_size=512 * 1024,
        acks="all",
        compression_type=None,
        max_request_size=8 * 1024 * 1024,
    )
    progress = Progress("produce", count, quiet=quiet)
    started = time.monotonic()
    sent = 0
    try:
        for value in values:
            if sent >= count:
                break
            if rate:
                # Pace against the start time, so slow sends do not lower the average rate.
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(topic, value=value)
            sent += 1
            progress.update(sent)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    progress.done(sent)
    return sent
