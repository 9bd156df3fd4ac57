"""Drain throughput: records/s from a 1,000,000-record topic into training arrays.

Side by side in one run on one broker: kcat consuming the same topic to /dev/null (the
ceiling: C, no parsing), the plain kafka-python loop the original demo wrote (default
consumer settings, json.loads per message), and our drain (TopicReader + the parser the Job
picks: the compiled decoder, inshape_jobs.native). Targets: >= 0.5x kcat and >= 5x the plain
loop. A third line gives the msgspec parser's drain (the fallback without the extension).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from kafka.consumer import KafkaConsumer

from bench.common import digits_lines, emit, load_topic, scratch_broker
from inshape_hack.kafka import KafkaBroker
from inshape_jobs.drain import TopicReader
from inshape_jobs.native import NativeParser, make_parser
from inshape_jobs.records import RecordSchema
from inshape_jobs.streams import DIGITS_FEATURES


def kcat_rate(broker: KafkaBroker, topic: str, count: int) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            "kcat",
            "-C",
            "-b",
            broker.bootstrap_servers,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-c",
            str(count),
        ],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return count / (time.monotonic() - started)


def plain_loop_rate(broker: KafkaBroker, topic: str, count: int, budget: float) -> float:
    """As the original demo: default consumer, json.loads each message, lists, then arrays."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id="plain-loop",
        auto_offset_reset="earliest",
    )
    rows, labels = [], []
    started = time.monotonic()
    for message in consumer:
        record = json.loads(message.value)
        rows.append([record[name] for name in DIGITS_FEATURES])
        labels.append(record["label"])
        if len(rows) >= count or time.monotonic() - started > budget:
            break
    np.asarray(rows, dtype=np.float64), np.asarray(labels)
    elapsed = time.monotonic() - started
    consumer.close()
    return len(rows) / elapsed


def our_rate(
    broker: KafkaBroker, topic: str, chunk_records: int, *, native: bool
) -> tuple[float, int]:
    """The drain as the Job runs it; native=False: the msgspec parser and Python batch walk."""
    reader = TopicReader(broker.bootstrap_servers, topic, "inshape-bench", native_spans=native)
    parser = make_parser(RecordSchema(tuple(DIGITS_FEATURES), "label", 65_536, True), native=native)
    if native and not isinstance(parser, NativeParser):
        raise SystemExit("The compiled decoder is not installed: make setup builds it")
    started = time.monotonic()
    snapshot = reader.snapshot()
    valid = 0
    for chunk in reader.read(snapshot, chunk_records):
        valid += len(parser.parse(chunk))
    elapsed = time.monotonic() - started
    assert reader.paths.fallback is None, reader.paths.fallback
    reader.close()
    return snapshot.to_read / elapsed, valid


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--records", type=int, default=1_000_000)
    args.add_argument(
        "--plain-budget",
        type=float,
        default=60.0,
        help="seconds the (slow) plain loop may run; its rate is what it read",
    )
    args.add_argument("--chunk-records", type=int, default=50_000)
    args.add_argument("--partitions", type=int, default=3, help="of the benchmark topic")
    opts = args.parse_args()
    with scratch_broker() as broker, tempfile.TemporaryDirectory() as work:
        load_seconds = load_topic(
            broker, "bench-digits", digits_lines(opts.records), opts.partitions, Path(work)
        )
        kcat = kcat_rate(broker, "bench-digits", opts.records)
        ours, valid = our_rate(broker, "bench-digits", opts.chunk_records, native=True)
        assert valid == opts.records, f"drained {valid} of {opts.records} records"
        fallback, valid = our_rate(broker, "bench-digits", opts.chunk_records, native=False)
        assert valid == opts.records, f"drained {valid} of {opts.records} records (msgspec)"
        plain = plain_loop_rate(broker, "bench-digits", opts.records, opts.plain_budget)
    common = {
        "records": opts.records,
        "partitions": opts.partitions,
        "topic_load_seconds": round(load_seconds, 1),
    }
    emit(
        "drain_throughput",
        "records_per_second",
        ours=ours,
        reference=kcat,
        reference_name="kcat -C to /dev/null",
        unit="records/s",
        target=">= 0.5",
        **common,
    )
    emit(
        "drain_throughput",
        "records_per_second",
        ours=ours,
        reference=plain,
        reference_name="plain kafka-python loop (defaults, json.loads per message)",
        unit="records/s",
        target=">= 5",
        **common,
    )
    emit(
        "drain_throughput",
        "records_per_second_msgspec_fallback",
        ours=fallback,
        reference=kcat,
        reference_name="kcat -C to /dev/null",
        unit="records/s",
        target="none (the path without the compiled decoder)",
        **common,
    )


if __name__ == "__main__":
    main()
