"""Session-wide real services for the integration tiers: one Kafka broker, one MLflow server.

They are started by the project's own launchers (hack/inshape_hack) the first time a test
asks for them, and stopped when the session ends. They never skip: if they cannot start, the
tests that need them error with the service's log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inshape_hack.kafka import KafkaBroker
from inshape_hack.mlflow_server import MlflowServer

# The kind fixtures (kind_env, namespace, kubectl) for every tier that needs a cluster.
pytest_plugins = ["inshape_hack.kindtesting"]


@pytest.fixture(scope="session")
def services_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="inshape-services-"))
    yield path
    if not os.environ.get("INSHAPE_KEEP_TEST_DATA"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker(services_dir: Path) -> Iterator[KafkaBroker]:
    with KafkaBroker(services_dir / "kafka") as broker:
        yield broker


@pytest.fixture(scope="session")
def mlflow_server(services_dir: Path) -> Iterator[MlflowServer]:
    with MlflowServer(services_dir / "mlflow") as server:
        yield server


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses: topics, groups, experiments and models share the services."""
    return f"t{uuid.uuid4().hex[:10]}"
