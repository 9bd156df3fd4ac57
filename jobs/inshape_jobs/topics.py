"""Creating topics (Kafka admin I/O) for the producer and the dead-letter sink."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from inshape_api.kafka_security import PLAINTEXT_SECURITY, KafkaSecurity, client_kwargs


def ensure_topic(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    security: KafkaSecurity = PLAINTEXT_SECURITY,
) -> None:
    """Create the topic unless it exists; replication 1 suits the one-broker dev cluster,
    and on Strimzi the KafkaTopic resource creates it first, so this is a no-op there."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_kwargs(security))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
