"""Strimzi's published CRDs on a real API server, one release after the other: 0.45.0 serves
kafka.strimzi.io/v1beta2 only, 1.2.0 v1 only. The operator's own discovery and read
(Kube.get_kafka) and strimzi.resolve pick the listener and the CA Secret for each
authentication from a Kafka whose status is shaped as Strimzi writes it; the chart's Strimzi
objects, rendered by helm against that server, pass its validation; and the chart's RBAC is
enough for the operator's discovery and read."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from inshape_api.spec import Policy, parse_spec
from inshape_hack.apiserver import ApiServer
from inshape_hack.helm import helm_binary
from inshape_hack.kubeconfig import api_client, kube_env
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.strimzi_crds import RELEASES, Release
from inshape_operator import strimzi
from inshape_operator.kube import Kube
from inshape_operator.lag import LagReader
from inshape_operator.observe import Readers, connection_of
from tests.chart.conftest import CHART
from tests.cluster.strimzi_setup import (
    create_namespace,
    create_ready_kafka,
    install_crds,
    kafka_version,
)
from tests.unit.test_operator_crd import MTLS, SCRAM, example_spec

pytestmark = pytest.mark.integration

CLUSTER = "events"
CA_SECRET = f"{CLUSTER}-cluster-ca-cert"


@dataclass(frozen=True)
class Installed:
    release: Release
    server: ApiServer
    admin: KubectlRunner
    namespace: str


@pytest.fixture(scope="module", params=RELEASES, ids=lambda r: f"strimzi-{r.version}")
def installed(request: pytest.FixtureRequest, api_server: ApiServer) -> Iterator[Installed]:
    """The release's CRDs, and a Ready Kafka `events` in a namespace of its own."""
    release: Release = request.param
    admin = api_server.kubectl()
    install_crds(admin, release)
    namespace = create_namespace(admin, f"s{release.served}")
    create_ready_kafka(admin, release, CLUSTER, namespace)
    yield Installed(release, api_server, admin, namespace)


def operator_kube(server: ApiServer, as_user: str | None = None) -> Kube:
    client = api_client(server.kubeconfig_path)
    if as_user:
        client.set_default_header("Impersonate-User", as_user)
    return Kube(client)


def test_discovery_finds_the_served_version(installed: Installed) -> None:
    kube = operator_kube(installed.server)
    assert kube.discover_kafka_version() == installed.release.served
    found = kube.get_kafka(installed.namespace, CLUSTER)
    assert found is not None
    assert found["apiVersion"] == f"kafka.strimzi.io/{installed.release.served}"


@pytest.mark.parametrize(
    ("authentication", "listener", "port", "ca_secret"),
    [
        (None, "plain", 9092, None),
        ("scram-sha-512", "scram", 9094, CA_SECRET),
        ("tls", "mtls", 9095, CA_SECRET),
    ],
)
def test_each_authentication_resolves_to_its_listener(
    installed: Installed,
    authentication: strimzi.Authentication | None,
    listener: str,
    port: int,
    ca_secret: str | None,
) -> None:
    found = operator_kube(installed.server).get_kafka(installed.namespace, CLUSTER)
    bootstrap = strimzi.resolve(found, CLUSTER, installed.namespace, authentication)
    assert bootstrap == strimzi.Bootstrap(
        servers=f"{CLUSTER}-kafka-bootstrap.{installed.namespace}.svc:{port}",
        listener=listener,
        tls=ca_secret is not None,
        authentication=authentication,
        ca_secret=ca_secret,
    )


@pytest.mark.parametrize(
    ("authentication", "protocol", "listener"),
    [(None, "PLAINTEXT", "plain"), (SCRAM, "SASL_SSL", "scram"), (MTLS, "SSL", "mtls")],
    ids=["none", "scram-sha-512", "tls"],
)
def test_a_policy_gets_the_connection_its_jobs_use(
    installed: Installed,
    authentication: dict[str, object] | None,
    protocol: str,
    listener: str,
) -> None:
    """The operator's own path from a parsed policy to the Job's connection: the listener that
    matches, TLS from it, and the cluster CA trusted by name."""
    raw = example_spec()
    kafka = raw["source"]["kafka"]
    kafka.pop("bootstrapServers")
    kafka["strimziCluster"] = CLUSTER
    if authentication is not None:
        kafka["authentication"] = authentication
    policy = Policy("digits", installed.namespace, parse_spec(raw))
    readers = Readers(operator_kube(installed.server), LagReader())
    connection = connection_of(readers, policy)
    assert (connection.protocol, connection.listener) == (protocol, listener)
    trusted = [t.secretName for t in connection.trustedCertificates]
    assert trusted == ([] if protocol == "PLAINTEXT" else [CA_SECRET])


def test_a_missing_kafka_is_not_found(installed: Installed) -> None:
    found = operator_kube(installed.server).get_kafka(installed.namespace, "absent")
    with pytest.raises(strimzi.StrimziError) as caught:
        strimzi.resolve(found, "absent", installed.namespace)
    assert caught.value.reason == "KafkaNotFound"


def helm_render(installed: Installed, authentication: str) -> list[dict[str, object]]:
    """The chart as `helm install --dry-run=server` renders it: with this API server's
    capabilities, so .Capabilities.APIVersions is what the cluster serves."""
    version, metadata = kafka_version(installed.release)
    argv = [
        helm_binary(),
        "install",
        "inshape",
        str(CHART),
        "--dry-run=server",
        # Other tests of the session may have applied the policy CRD with kubectl: adopt it.
        "--take-ownership",
        "-n",
        installed.namespace,
        "--set",
        f"strimzi.enabled=true,strimzi.clusterName=chart,strimzi.authentication={authentication}",
        "--set",
        f"strimzi.kafkaVersion={version},strimzi.metadataVersion={metadata}",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=kube_env(installed.server.kubeconfig_path),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    manifest = done.stdout.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    return [d for d in yaml.safe_load_all(manifest) if d]


@pytest.mark.parametrize("authentication", ["none", "scram-sha-512", "tls"])
def test_the_charts_strimzi_objects_are_valid_for_the_served_version(
    installed: Installed, authentication: str
) -> None:
    objects = [
        o for o in helm_render(installed, authentication) if "strimzi" in str(o["apiVersion"])
    ]
    kinds = {str(o["kind"]) for o in objects}
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic"} | (
        set() if authentication == "none" else {"KafkaUser"}
    )
    assert {o["apiVersion"] for o in objects} == {f"kafka.strimzi.io/{installed.release.served}"}
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    output = installed.admin.in_namespace(installed.namespace)(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=document, check=False
    )
    assert output.count("(server dry run)") == len(objects), output


def test_the_charts_rbac_lets_the_operator_discover_and_read(installed: Installed) -> None:
    rbac = [
        o
        for o in helm_render(installed, "none")
        if o["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
    ]
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac})
    installed.admin.in_namespace(installed.namespace)("apply", "-f", "-", stdin=document)
    operator = f"system:serviceaccount:{installed.namespace}:inshape"
    kube = operator_kube(installed.server, as_user=operator)
    assert kube.discover_kafka_version() == installed.release.served
    found = kube.get_kafka(installed.namespace, CLUSTER)
    assert found is not None and found["metadata"]["name"] == CLUSTER
    with pytest.raises(ApiException) as refused:  # the Role is the namespace's only
        kube.get_kafka("default", CLUSTER)
    assert refused.value.status == 403
