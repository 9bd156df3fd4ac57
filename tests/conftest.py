"""Session-wide real services for the integration tiers: one Kafka broker, one MLflow server;
and, for the tests that ask, a second broker with TLS, mutual-TLS and SCRAM listeners.

They are started by the project's own launchers (hack/inshape_hack) the first time a test
asks for them, and stopped when the session ends. They never skip: if they cannot start, the
tests that need them error with the service's log.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inshape_hack.kafka import KafkaBroker
from inshape_hack.kafka_certs import KafkaPki, write_test_pki
from inshape_hack.kafka_scram import create_scram_user
from inshape_hack.mlflow_server import MlflowServer, new_user

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


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SecureKafka:
    """A broker with the TLS, MTLS and SCRAM listeners of kafka_listeners.py besides
    PLAINTEXT (``broker.address(Role.SCRAM)``); the PEM files of its CA, its certificate, the
    client certificate of ``user`` and an unrelated CA; and a SCRAM-SHA-512 and -256 user."""

    broker: KafkaBroker
    pki: KafkaPki
    user: ScramUser


@pytest.fixture(scope="session")
def secure_kafka(services_dir: Path) -> Iterator[SecureKafka]:
    """A broker of its own (kafka_broker stays plain), certificates made anew each session,
    and the user made through Kafka's admin API."""
    user = ScramUser("alice", secrets.token_urlsafe(18))
    pki = write_test_pki(services_dir / "pki", users=[user.name])
    with KafkaBroker(services_dir / "kafka-secure", heap="512m", pki=pki) as broker:
        create_scram_user(broker.bootstrap_servers, user.name, user.password)
        yield SecureKafka(broker, pki, user)


@pytest.fixture(scope="session")
def mlflow_server(services_dir: Path) -> Iterator[MlflowServer]:
    with MlflowServer(services_dir / "mlflow") as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_auth_server(services_dir: Path) -> Iterator[MlflowServer]:
    """A second MLflow server behind MLflow's basic-auth app (``server.admin``; everyone else
    may read only); mlflow_server stays open."""
    with MlflowServer(services_dir / "mlflow-auth", admin=new_user("admin")) as server:
        yield server


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses: topics, groups, experiments and models share the services."""
    return f"t{uuid.uuid4().hex[:10]}"
