"""The integration tier's policies: the example on the session's Kafka and MLflow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient

from inshape_api.kafka_security import KafkaSecurity, client_kwargs
from inshape_api.spec import Policy
from inshape_hack.kafka import KafkaBroker
from inshape_hack.mlflow_server import MlflowServer
from tests.integration.helpers import NewPolicy, digits_policy


@pytest.fixture
def new_policy(
    kafka_broker: KafkaBroker, mlflow_server: MlflowServer, unique_name: str
) -> NewPolicy:
    def make(spec: dict[str, Any] | None = None) -> Policy:
        bootstrap, tracking = kafka_broker.bootstrap_servers, mlflow_server.tracking_uri
        return digits_policy(unique_name, bootstrap, tracking, spec)

    return make


@pytest.fixture
def admin_for() -> Iterator[Callable[[str, KafkaSecurity], KafkaAdminClient]]:
    """Admin clients through a given listener, closed after the test."""
    from tests.integration.test_kafka_security import TIMEOUTS

    made: list[KafkaAdminClient] = []

    def make(address: str, how: KafkaSecurity) -> KafkaAdminClient:
        made.append(KafkaAdminClient(bootstrap_servers=address, **client_kwargs(how), **TIMEOUTS))
        return made[-1]

    yield make
    for admin in made:
        admin.close()
