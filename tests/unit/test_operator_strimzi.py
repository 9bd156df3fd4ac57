"""Bootstrap servers from a Strimzi Kafka resource."""

from __future__ import annotations

from typing import Any

import pytest

from inshape_operator.strimzi import StrimziError, resolve

PLAIN = "my-cluster-kafka-bootstrap.ml.svc:9092"
TLS = "my-cluster-kafka-bootstrap.ml.svc:9093"


def kafka(
    ready: str = "True",
    listeners: list[dict[str, Any]] | None = None,
    status_listeners: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "spec": {
            "kafka": {
                "listeners": listeners
                if listeners is not None
                else [
                    {"name": "tls", "port": 9093, "type": "internal", "tls": True},
                    {"name": "plain", "port": 9092, "type": "internal", "tls": False},
                    {"name": "external", "port": 9094, "type": "nodeport", "tls": False},
                ]
            }
        },
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "message": "rolling"}],
            "listeners": status_listeners
            if status_listeners is not None
            else [
                {"name": "tls", "bootstrapServers": TLS},
                {"name": "plain", "bootstrapServers": PLAIN},
                {"name": "external", "bootstrapServers": "10.0.0.1:31234"},
            ],
        },
    }


def test_the_plain_internal_listener_is_chosen() -> None:
    found = resolve(kafka(), "my-cluster", "ml")
    assert (found.servers, found.listener) == (PLAIN, "plain")


def test_another_internal_listener_without_tls_is_used() -> None:
    spec = [{"name": "internal1", "port": 9095, "type": "internal", "tls": False}]
    status = [
        {
            "name": "internal1",
            "addresses": [{"host": "a", "port": 9095}, {"host": "b", "port": 9095}],
        }
    ]
    found = resolve(kafka(listeners=spec, status_listeners=status), "c", "ml")
    assert found.servers == "a:9095,b:9095"


def test_old_status_listeners_named_by_type() -> None:
    found = resolve(
        kafka(status_listeners=[{"type": "plain", "bootstrapServers": PLAIN}]), "c", "ml"
    )
    assert found.servers == PLAIN


def test_missing_kafka_is_retryable() -> None:
    with pytest.raises(StrimziError, match="ml/c does not exist") as caught:
        resolve(None, "c", "ml")
    assert caught.value.reason == "KafkaNotFound" and caught.value.retryable


def test_not_ready_is_retryable() -> None:
    with pytest.raises(StrimziError, match="not ready: rolling") as caught:
        resolve(kafka(ready="False"), "c", "ml")
    assert caught.value.reason == "KafkaNotReady" and caught.value.retryable
    no_status = {"spec": kafka()["spec"]}
    with pytest.raises(StrimziError) as caught:
        resolve(no_status, "c", "ml")
    assert caught.value.reason == "KafkaNotReady"


def test_tls_or_authenticated_only_is_permanent() -> None:
    spec = [
        {"name": "tls", "port": 9093, "type": "internal", "tls": True},
        {
            "name": "scram",
            "port": 9092,
            "type": "internal",
            "tls": False,
            "authentication": {"type": "scram-sha-512"},
        },
    ]
    with pytest.raises(StrimziError, match="no internal listener") as caught:
        resolve(kafka(listeners=spec), "c", "ml")
    assert caught.value.reason == "NoPlainListener" and not caught.value.retryable


def test_ready_without_address_is_retryable() -> None:
    with pytest.raises(StrimziError, match="no address") as caught:
        resolve(kafka(status_listeners=[{"name": "tls", "bootstrapServers": TLS}]), "c", "ml")
    assert caught.value.reason == "ListenerNotReported" and caught.value.retryable
