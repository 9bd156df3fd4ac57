"""The drain through the raw fetch path with the compiled decoder, against the real broker:
the same rows, rejects and dead letters as the msgspec path on the same topic."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
from kafka.producer import KafkaProducer

from inshape_hack.kafka import KafkaBroker
from inshape_jobs.drain import TopicReader
from inshape_jobs.native import NativeParser, make_parser
from inshape_jobs.produce import encoded
from inshape_jobs.records import ChunkParser, ParsedChunk, RecordSchema
from inshape_jobs.spans import SpanChunk
from inshape_jobs.streams import DIGITS_FEATURES, digits_records
from inshape_jobs.topics import ensure_topic

pytestmark = pytest.mark.integration

SCHEMA = RecordSchema(tuple(DIGITS_FEATURES), "label", 65_536, True)


def fill(broker: KafkaBroker, topic: str) -> int:
    """3 partitions: uncompressed and gzip batches, keys on some records, 10% bad records."""
    ensure_topic(broker.bootstrap_servers, topic, partitions=3)
    values = list(islice(encoded(digits_records(seed=3), 0.1, seed=3), 6000))
    for codec, part in ((None, values[:3000]), ("gzip", values[3000:])):
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, compression_type=codec, linger_ms=5
        )
        for i, value in enumerate(part):
            producer.send(topic, value=value, key=b"k%d" % i if i % 3 == 0 else None)
        producer.flush()
        producer.close()
    return len(values)


def drain(broker: KafkaBroker, topic: str, *, native: bool) -> tuple[ParsedChunk, TopicReader]:
    reader = TopicReader(broker.bootstrap_servers, topic, f"{topic}-g", native_spans=native)
    parser = make_parser(SCHEMA, native=native)
    assert isinstance(parser, NativeParser if native else ChunkParser)
    parts: list[ParsedChunk] = []
    try:
        for chunk in reader.read(reader.snapshot(), 1000):
            assert isinstance(chunk, SpanChunk) == native
            parts.append(parser.parse(chunk))
    finally:
        reader.close()
    rejects = sum((p.rejects for p in parts), start=parts[0].rejects.__class__())
    return (
        ParsedChunk(
            features=np.concatenate([p.features for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            partitions=np.concatenate([p.partitions for p in parts]),
            offsets=np.concatenate([p.offsets for p in parts]),
            rejects=rejects,
            rejected=[r for p in parts for r in p.rejected],
        ),
        reader,
    )


def test_the_native_drain_reads_what_the_msgspec_drain_reads(
    kafka_broker: KafkaBroker, unique_name: str
) -> None:
    topic = f"{unique_name}-native"
    total = fill(kafka_broker, topic)

    ours, our_reader = drain(kafka_broker, topic, native=True)
    reference, reference_reader = drain(kafka_broker, topic, native=False)

    # Both read everything through raw fetches, none through the consumer's fallback.
    for reader in (our_reader, reference_reader):
        assert reader.paths.fallback is None
        assert reader.paths.raw_records == total
    assert len(ours) + sum(ours.rejects.values()) == total
    assert 400 < sum(ours.rejects.values()) < 800  # about 10% bad
    assert ours.features.tobytes() == reference.features.tobytes()
    assert ours.labels.tolist() == reference.labels.tolist()
    assert ours.partitions.tolist() == reference.partitions.tolist()
    assert ours.offsets.tolist() == reference.offsets.tolist()
    assert ours.rejects == reference.rejects
    assert ours.rejected == reference.rejected
