"""The Kafka image under plain docker, as kind will run it: non-root, read-only root, no
capabilities, the data on a volume. A host client reaches it through the EXTERNAL listener
(advertised as the container's bridge IP), writes and reads back 1000 records; a new container
on the same volume keeps them, the cluster id and the group's committed offsets.

Skips where no Docker daemon answers (the image and the daemon are docker.py's business).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

from inshape_hack.docker import DockerEndpoint, docker_cli, find_running
from inshape_hack.kafka_config import BrokerConfig, ExternalListener, config_env
from inshape_hack.kafka_image import ensure_kafka_image
from inshape_hack.kafka_kind import broker_answers
from inshape_hack.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 1000
PARTITIONS = 3
GROUP = "restart-check"
IP_PLACEHOLDER = "CONTAINER_IP"
# The container learns its bridge IP only once it runs: this wrapper puts it in the
# advertised listeners, then hands over to the image's own entrypoint.
ADVERTISED = "KAFKA_CFG_ADVERTISED_LISTENERS"
ADVERTISE_OWN_IP = (
    f'export {ADVERTISED}="${{{ADVERTISED}//{IP_PLACEHOLDER}/$(hostname -i)}}"; '
    "exec /opt/kafka/bin/kafka-entrypoint"
)


@dataclass(frozen=True)
class Broker:
    container: str
    bootstrap: str
    ready_seconds: float


def docker(endpoint: DockerEndpoint, *args: str) -> str:
    done = subprocess.run(
        [docker_cli(), *args], env=endpoint.env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def logs(endpoint: DockerEndpoint, container: str) -> str:
    """The container's stdout and stderr (the entrypoint reports on stderr)."""
    done = subprocess.run(
        [docker_cli(), "logs", container],
        env=endpoint.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def endpoint() -> DockerEndpoint:
    running = find_running()
    if running is None:
        pytest.skip("no Docker daemon answers (python -m inshape_hack.docker up starts one)")
    return running


@pytest.fixture(scope="module")
def image(endpoint: DockerEndpoint) -> str:
    return ensure_kafka_image(endpoint)


@pytest.fixture
def volume(endpoint: DockerEndpoint) -> Iterator[str]:
    name = f"inshape-kafka-test-{uuid.uuid4().hex[:8]}"
    docker(endpoint, "volume", "create", name)
    yield name
    containers = docker(endpoint, "ps", "-aq", "--filter", f"volume={name}").split()
    if containers:
        docker(endpoint, "rm", "-f", *containers)
    docker(endpoint, "volume", "rm", name)


def start_broker(endpoint: DockerEndpoint, image: str, volume: str) -> Broker:
    config = BrokerConfig(
        advertised_host=IP_PLACEHOLDER, external=ExternalListener(IP_PLACEHOLDER, 9094)
    )
    env = [arg for key, value in config_env(config).items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    container = docker(
        endpoint,
        "run", "-d",
        "--name", f"{volume}-{uuid.uuid4().hex[:4]}",
        "--volume", f"{volume}:/var/lib/kafka",
        # What the pod's securityContext asks for (kafka_manifests.py).
        "--read-only", "--tmpfs", "/tmp:exec,mode=1777",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--memory", "1g",
        *env,
        image, "bash", "-c", ADVERTISE_OWN_IP,
    )  # fmt: skip
    inspected = json.loads(docker(endpoint, "inspect", container))[0]
    bootstrap = f"{inspected['NetworkSettings']['IPAddress']}:9094"

    def ready() -> bool:
        state = json.loads(docker(endpoint, "inspect", container))[0]["State"]
        assert state["Running"], logs(endpoint, container)[-4000:]
        return broker_answers(bootstrap, timeout_ms=3000)

    wait_until(ready, 120, f"the broker in {container} answers at {bootstrap}", interval=0.5)
    return Broker(container, bootstrap, time.monotonic() - started)


def cluster_id(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return str(admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


def read_all(bootstrap: str, topic: str, group: str | None) -> list[str]:
    """Every record of ``topic`` from the start, committing under ``group`` if given."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: list[str] = []

        def all_read() -> bool:
            for records in consumer.poll(timeout_ms=1000).values():
                values.extend(r.value.decode() for r in records)
            return len(values) >= RECORDS

        wait_until(all_read, 60, f"{RECORDS} records of {topic} are read", interval=0)
        if group is not None:
            consumer.commit()
        return values
    finally:
        consumer.close()


def committed_total(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    finally:
        consumer.close()


def test_records_survive_a_new_container_on_the_same_volume(
    endpoint: DockerEndpoint, image: str, volume: str
) -> None:
    topic = "restart-check"
    expected = {f"record-{i}" for i in range(RECORDS)}
    first = start_broker(endpoint, image, volume)
    admin = KafkaAdminClient(bootstrap_servers=first.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=first.bootstrap, acks="all")
    for i in range(RECORDS):
        producer.send(topic, key=str(i).encode(), value=f"record-{i}".encode())
    producer.flush(timeout=60)
    producer.close()
    assert set(read_all(first.bootstrap, topic, GROUP)) == expected
    assert committed_total(first.bootstrap, topic) == RECORDS
    first_id = cluster_id(first.bootstrap)

    stopped = time.monotonic()
    docker(endpoint, "stop", "--time", "30", first.container)
    stop_seconds = time.monotonic() - stopped
    first_log = logs(endpoint, first.container)
    docker(endpoint, "rm", first.container)

    second = start_broker(endpoint, image, volume)
    assert cluster_id(second.bootstrap) == first_id
    again = read_all(second.bootstrap, topic, None)
    assert len(again) == RECORDS and set(again) == expected
    assert committed_total(second.bootstrap, topic) == RECORDS
    # The entrypoint formatted the volume once, and found it formatted the second time.
    assert f"formatting /var/lib/kafka/data for cluster.id={first_id}" in first_log
    assert f"is formatted (cluster.id={first_id})" in logs(endpoint, second.container)
    print(
        f"\nkafka container: first start to ready {first.ready_seconds:.1f}s, "
        f"stop {stop_seconds:.1f}s, restart on the same volume to ready "
        f"{second.ready_seconds:.1f}s"
    )
