"""Drain throughput over SASL_SSL with SCRAM-SHA-512 against PLAINTEXT, same broker, same run.

One broker with the test PKI's secure listeners (hack/inshape_hack/kafka_listeners.py) and a
SCRAM user; one digits topic (300,000 records by default) loaded over PLAINTEXT; then our
drain (TopicReader + ChunkParser, the raw fetch path) reads it all through each listener,
alternated, best of --rounds each (the machine is shared). The cost measured is TLS
decryption and the SCRAM exchange (once per connection). Target: >= 0.8x PLAINTEXT.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import digits_lines, emit, load_topic
from inshape_api.kafka_security import KafkaSecurity
from inshape_hack.kafka import KafkaBroker
from inshape_hack.kafka_certs import write_test_pki
from inshape_hack.kafka_listeners import Role
from inshape_hack.kafka_scram import create_scram_user
from inshape_jobs.drain import TopicReader
from inshape_jobs.records import ChunkParser, RecordSchema
from inshape_jobs.streams import DIGITS_FEATURES

TOPIC = "bench-digits-secure"


def drain_rate(
    address: str, security: KafkaSecurity, group: str, chunk_records: int
) -> tuple[float, int]:
    """Records/s of one whole drain (snapshot to last chunk parsed); and the valid count."""
    reader = TopicReader(address, TOPIC, group, security=security)
    parser = ChunkParser(RecordSchema(tuple(DIGITS_FEATURES), "label", 65_536, True))
    try:
        started = time.monotonic()
        snapshot = reader.snapshot()
        valid = sum(len(parser.parse(chunk)) for chunk in reader.read(snapshot, chunk_records))
        elapsed = time.monotonic() - started
        if reader.paths.fallback is not None:
            raise RuntimeError(f"the drain fell back to the consumer: {reader.paths.fallback}")
    finally:
        reader.close()
    return snapshot.to_read / elapsed, valid


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--records", type=int, default=300_000)
    args.add_argument("--partitions", type=int, default=3)
    args.add_argument("--chunk-records", type=int, default=50_000)
    args.add_argument("--rounds", type=int, default=2)
    opts = args.parse_args()
    root = Path(tempfile.mkdtemp(prefix="inshape-bench-secure-"))
    try:
        pki = write_test_pki(root / "pki", users=["bench"])
        password = secrets.token_urlsafe(18)
        with KafkaBroker(root / "kafka", heap="1g", pki=pki) as broker:
            create_scram_user(broker.bootstrap_servers, "bench", password)
            load_seconds = load_topic(
                broker, TOPIC, digits_lines(opts.records), opts.partitions, root
            )
            ways = {
                "PLAINTEXT": (broker.bootstrap_servers, KafkaSecurity()),
                "SASL_SSL": (
                    broker.address(Role.SCRAM),
                    KafkaSecurity(
                        "SASL_SSL",
                        ca_file=str(pki.ca_file),
                        sasl_mechanism="SCRAM-SHA-512",
                        username="bench",
                        password=password,
                    ),
                ),
            }
            rates: dict[str, list[float]] = {name: [] for name in ways}
            for round_ in range(opts.rounds):
                for name, (address, security) in ways.items():
                    rate, valid = drain_rate(
                        address, security, f"bench-{name}-{round_}", opts.chunk_records
                    )
                    assert valid == opts.records, f"{name}: drained {valid} of {opts.records}"
                    rates[name].append(rate)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit(
        "drain_secure",
        "records_per_second",
        ours=max(rates["SASL_SSL"]),
        reference=max(rates["PLAINTEXT"]),
        reference_name="our drain over PLAINTEXT, same broker and topic",
        unit="records/s",
        target=">= 0.8",
        ours_name="our drain over SASL_SSL SCRAM-SHA-512",
        records=opts.records,
        partitions=opts.partitions,
        rounds={name: [round(rate) for rate in each] for name, each in rates.items()},
        topic_load_seconds=round(load_seconds, 1),
    )


if __name__ == "__main__":
    main()
