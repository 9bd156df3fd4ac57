"""The integration tier's policies: the example on the session's Kafka and MLflow."""

from __future__ import annotations

from typing import Any

import pytest

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
