"""The listener (and address) a policy uses on a Strimzi Kafka resource, by its authentication."""

from __future__ import annotations

from typing import Any

import pytest

from inshape_api.spec import KafkaSourceSpec, parse_spec
from inshape_operator.observe import asked_authentication
from inshape_operator.strimzi import Authentication, Bootstrap, StrimziError, matching, resolve
from tests.unit.test_operator_crd import MTLS as MTLS_AUTH
from tests.unit.test_operator_crd import SCRAM as SCRAM_AUTH
from tests.unit.test_operator_crd import example_spec

HOST = "my-cluster-kafka-bootstrap.ml.svc"


def listener(
    name: str,
    port: int,
    *,
    tls: bool = False,
    auth: str | None = None,
    type_: str = "internal",
) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "port": port, "type": type_, "tls": tls}
    if auth is not None:
        item["authentication"] = {"type": auth}
    return item


# What production clusters carry: one listener per way in, as Strimzi's examples name them.
PLAIN = listener("plain", 9092)
TLS = listener("tls", 9093, tls=True)
SCRAM = listener("scram", 9094, tls=True, auth="scram-sha-512")
MTLS = listener("mtls", 9095, tls=True, auth="tls")
EXTERNAL = listener("external", 9096, type_="nodeport")


def status_of(spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status listeners as Strimzi 0.27+ writes them (v1beta2 and v1 alike)."""
    return [
        {
            "name": item["name"],
            "addresses": [{"host": HOST, "port": item["port"]}],
            "bootstrapServers": f"{HOST}:{item['port']}",
            **({"certificates": ["-----BEGIN CERTIFICATE-----"]} if item["tls"] else {}),
        }
        for item in spec
    ]


def kafka(
    *spec: dict[str, Any],
    ready: str = "True",
    status: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "spec": {"kafka": {"listeners": list(spec)}},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "message": "rolling"}],
            "listeners": status_of(list(spec)) if status is None else status,
        },
    }


def chosen(found: dict[str, Any], authentication: Authentication | None) -> str:
    return resolve(found, "my-cluster", "ml", authentication).listener


ALL = (PLAIN, TLS, SCRAM, MTLS, EXTERNAL)


@pytest.mark.parametrize(
    ("authentication", "expected"),
    [
        (
            None,
            Bootstrap(f"{HOST}:9092", "plain", tls=False, authentication=None, ca_secret=None),
        ),
        (
            "scram-sha-512",
            Bootstrap(
                f"{HOST}:9094",
                "scram",
                tls=True,
                authentication="scram-sha-512",
                ca_secret="my-cluster-cluster-ca-cert",
            ),
        ),
        (
            "tls",
            Bootstrap(
                f"{HOST}:9095",
                "mtls",
                tls=True,
                authentication="tls",
                ca_secret="my-cluster-cluster-ca-cert",
            ),
        ),
    ],
)
def test_each_authentication_gets_its_listener(
    authentication: Authentication | None, expected: Bootstrap
) -> None:
    assert resolve(kafka(*ALL), "my-cluster", "ml", authentication) == expected


def test_authentication_is_matched_exactly() -> None:
    # A password-less client cannot use a SCRAM listener, nor a SCRAM client a plain one.
    assert matching(kafka(SCRAM, MTLS), None) == []
    assert matching(kafka(PLAIN, TLS, MTLS), "scram-sha-512") == []
    assert matching(kafka(PLAIN, TLS, SCRAM), "tls") == []


def test_no_authentication_prefers_plain_then_tls_with_the_cluster_ca() -> None:
    assert chosen(kafka(TLS, PLAIN), None) == "plain"
    found = resolve(kafka(TLS, SCRAM), "my-cluster", "ml", None)
    assert (found.listener, found.tls, found.ca_secret) == (
        "tls",
        True,
        "my-cluster-cluster-ca-cert",
    )


def test_scram_prefers_tls_over_plain() -> None:
    plain_scram = listener("scram", 9092, auth="scram-sha-512")
    tls_scram = listener("secure", 9093, tls=True, auth="scram-sha-512")
    assert chosen(kafka(plain_scram, tls_scram), "scram-sha-512") == "secure"
    found = resolve(kafka(plain_scram), "my-cluster", "ml", "scram-sha-512")
    assert (found.tls, found.ca_secret) == (False, None)


def test_mutual_tls_needs_a_tls_listener() -> None:
    # Strimzi refuses this combination; the operator does not pick it either.
    clear = listener("mtls", 9095, auth="tls")
    with pytest.raises(StrimziError) as caught:
        resolve(kafka(clear), "my-cluster", "ml", "tls")
    assert caught.value.reason == "NoMatchingListener"


@pytest.mark.parametrize(
    ("authentication", "names", "expected"),
    [
        (None, ["a", "plain", "b"], "plain"),
        (None, ["b", "a"], "a"),
        ("scram-sha-512", ["a", "scram", "b"], "scram"),
        ("tls", ["a", "mtls", "b"], "mtls"),
        ("tls", ["mtls", "tls", "a"], "tls"),
    ],
)
def test_among_equals_the_conventional_name_then_the_alphabet_wins(
    authentication: Authentication | None, names: list[str], expected: str
) -> None:
    tls = authentication is not None
    spec = [
        listener(name, 9092 + index, tls=tls, auth=authentication)
        for index, name in enumerate(names)
    ]
    assert chosen(kafka(*spec), authentication) == expected
    assert chosen(kafka(*reversed(spec)), authentication) == expected


def test_cluster_ip_listeners_count_and_external_ones_do_not() -> None:
    cluster_ip = listener("ci", 9092, type_="cluster-ip")
    assert chosen(kafka(EXTERNAL, cluster_ip), None) == "ci"
    for kind in ("nodeport", "loadbalancer", "route", "ingress"):
        assert matching(kafka(listener("plain", 9092, type_=kind)), None) == []


def test_no_matching_listener_says_what_there_is_and_what_was_asked() -> None:
    with pytest.raises(StrimziError) as caught:
        resolve(kafka(PLAIN, MTLS), "c", "ml", "scram-sha-512")
    error = caught.value
    assert error.reason == "NoMatchingListener" and not error.retryable
    message = str(error)
    assert "Kafka ml/c" in message
    assert "authentication type scram-sha-512" in message
    assert "plain (internal, tls: false, authentication: none)" in message
    assert "mtls (internal, tls: true, authentication: tls)" in message


def test_addresses_when_there_are_no_bootstrap_servers() -> None:
    status = [
        {"name": "plain", "addresses": [{"host": "a", "port": 9092}, {"host": "b", "port": 9092}]}
    ]
    found = resolve(kafka(PLAIN, status=status), "c", "ml")
    assert found.servers == "a:9092,b:9092"


def test_old_status_listeners_named_by_type() -> None:
    found = resolve(
        kafka(PLAIN, status=[{"type": "plain", "bootstrapServers": "h:9092"}]), "c", "ml"
    )
    assert found.servers == "h:9092"


def test_the_next_match_with_an_address_is_used() -> None:
    other = listener("other", 9097)
    status = [{"name": "other", "bootstrapServers": "h:9097"}]
    assert chosen(kafka(PLAIN, other, status=status), None) == "other"


def test_missing_kafka_is_retryable() -> None:
    with pytest.raises(StrimziError, match="ml/c does not exist") as caught:
        resolve(None, "c", "ml")
    assert caught.value.reason == "KafkaNotFound" and caught.value.retryable


def test_not_ready_is_retryable() -> None:
    with pytest.raises(StrimziError, match="not ready: rolling") as caught:
        resolve(kafka(PLAIN, ready="False"), "c", "ml")
    assert caught.value.reason == "KafkaNotReady" and caught.value.retryable
    with pytest.raises(StrimziError, match="no Ready condition yet") as caught:
        resolve({"spec": kafka(PLAIN)["spec"]}, "c", "ml")
    assert caught.value.reason == "KafkaNotReady"


def test_ready_without_address_is_retryable() -> None:
    with pytest.raises(StrimziError, match="no address for listener 'scram'") as caught:
        resolve(kafka(SCRAM, PLAIN, status=status_of([PLAIN])), "c", "ml", "scram-sha-512")
    assert caught.value.reason == "ListenerNotReported" and caught.value.retryable


def test_the_policy_asks_for_its_authentication_type() -> None:
    def source(authentication: dict[str, Any] | None) -> KafkaSourceSpec:
        raw = example_spec()
        kafka = raw["source"]["kafka"]
        kafka.pop("bootstrapServers")
        kafka.update(strimziCluster="c", tls={})
        if authentication is not None:
            kafka["authentication"] = authentication
        return parse_spec(raw).source.kafka

    assert asked_authentication(source(None)) is None
    assert asked_authentication(source(SCRAM_AUTH)) == "scram-sha-512"
    assert asked_authentication(source(MTLS_AUTH)) == "tls"
