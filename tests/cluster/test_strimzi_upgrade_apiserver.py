"""Strimzi upgraded under a running operator: its CRDs go from v1beta2-only (0.45.0) to
v1-only (1.2.0). The operator's cached discovery answer is stale then; the 404 it meets makes
it ask again, and it reads the Kafka in v1 without waiting for the cache to expire."""

from __future__ import annotations

import pytest

from inshape_hack.apiserver import ApiServer
from inshape_hack.kubeconfig import api_client
from inshape_hack.strimzi_crds import V1_ONLY, V1BETA2_ONLY
from inshape_operator import strimzi
from inshape_operator.kube import Kube
from tests.cluster.strimzi_setup import create_namespace, create_ready_kafka, install_crds

pytestmark = pytest.mark.integration


def test_a_crd_upgrade_is_found_on_the_first_404(api_server: ApiServer) -> None:
    admin = api_server.kubectl()
    kube = Kube(api_client(api_server.kubeconfig_path))
    namespace = create_namespace(admin, "upgrade")

    install_crds(admin, V1BETA2_ONLY)
    create_ready_kafka(admin, V1BETA2_ONLY, "events", namespace)
    before = kube.get_kafka(namespace, "events")
    assert before is not None and before["apiVersion"] == "kafka.strimzi.io/v1beta2"

    install_crds(admin, V1_ONLY)  # removes the old CRDs, and with them the old Kafka
    create_ready_kafka(admin, V1_ONLY, "events", namespace)
    assert kube.kafka_version.get() == "v1beta2"  # cached, not expired
    after = kube.get_kafka(namespace, "events")
    assert after is not None and after["apiVersion"] == "kafka.strimzi.io/v1"
    assert kube.kafka_version.get() == "v1"
    found = strimzi.resolve(after, "events", namespace, "scram-sha-512")
    assert (found.listener, found.ca_secret) == ("scram", "events-cluster-ca-cert")
