"""The chart against the local cluster's real kube-apiserver: every rendered object passes
`kubectl apply --dry-run=server`, and the operator's RBAC, checked by impersonating its
ServiceAccount, allows exactly what the operator calls."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from inshape_hack.kindtesting import KindEnv, apply_established, scratch_namespace
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_operator import crd
from tests.chart.conftest import ROOT, render_text

pytestmark = pytest.mark.integration

RBAC_ONLY = ["--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"]
STRIMZI_KINDS = {"Kafka": "kafkas", "KafkaNodePool": "kafkanodepools", "KafkaTopic": "kafkatopics"}


def strimzi_crd(kind: str, plural: str) -> dict[str, Any]:
    """A stand-in for Strimzi's CRD: the real group/version/names, any content accepted."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kafka.strimzi.io"},
        "spec": {
            "group": "kafka.strimzi.io",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1beta2",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def crds(kind_env: KindEnv) -> None:
    """The policy CRD (from manifests/) and the minimal Strimzi ones, established."""
    admin = kind_env.kubectl()
    apply_established(admin, ROOT / crd.MANIFEST, [crd.NAME])
    for kind, plural in STRIMZI_KINDS.items():
        stand_in = json.dumps(strimzi_crd(kind, plural))
        apply_established(admin, stand_in, [f"{plural}.kafka.strimzi.io"])


@pytest.fixture
def other_namespace(kind_env: KindEnv) -> Iterator[str]:
    with scratch_namespace(kind_env.kubectl(), prefix="t-other") as name:
        yield name


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": {
        "strimzi.enabled": True,
        "example.enabled": True,
        "serviceAccount.annotations": {"example.com/role": "inshape"},
        "operator.nodeSelector": {"kubernetes.io/os": "linux"},
        "mlflow.server.persistence.storageClassName": "standard",
        "mlflow.server.extraAllowedHosts": ["mlflow.example.com"],
    },
    "clusterWide-external-regressor": {
        "rbac.clusterWide": True,
        "crds.keep": False,
        "mlflow.external.uri": "http://mlflow.elsewhere:5000",
        "example.enabled": True,
        "example.policy": "regressor",
        "kafka.bootstrapServers": "kafka.elsewhere:9092",
    },
}


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_every_rendered_object_is_accepted_by_the_apiserver(
    case: str, crds: None, namespace: str, kubectl: Kubectl
) -> None:
    manifest = render_text(
        VALUE_SETS[case], release=f"r{uuid.uuid4().hex[:6]}", namespace=namespace
    )
    out = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest)
    lines = [line for line in out.splitlines() if line.strip()]
    documents = [d for d in manifest.split("\n---") if "\nkind:" in d or d.startswith("kind:")]
    assert len(lines) == len(documents), out
    assert all(line.endswith("(server dry run)") for line in lines), out
    if case == "everything":
        for kind in ("kafka.kafka.strimzi.io", "modelupdatepolicy.inshape.dev"):
            assert any(line.startswith(kind) for line in lines), out


def can_i(kubectl: Kubectl, account: str, *args: str) -> bool:
    answer = kubectl("auth", "can-i", *args, f"--as={account}", check=False).strip()
    assert answer.splitlines()[0] in ("yes", "no"), answer
    return answer.splitlines()[0] == "yes"


NEEDED = [
    ("get", "modelupdatepolicies.inshape.dev"),
    ("list", "modelupdatepolicies.inshape.dev"),
    ("watch", "modelupdatepolicies.inshape.dev"),
    ("patch", "modelupdatepolicies.inshape.dev"),
    ("patch", "modelupdatepolicies.inshape.dev", "--subresource=status"),
    ("get", "modelupdatepolicies.inshape.dev", "--subresource=status"),
    ("create", "jobs.batch"),
    ("get", "jobs.batch"),
    ("list", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("get", "pods"),
    ("list", "pods"),
    ("get", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("create", "events"),
    ("get", "kafkas.kafka.strimzi.io"),
    ("get", "secrets"),  # by name: the Kafka credentials a policy names (rbac.readKafkaSecrets)
]
FORBIDDEN = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("update", "secrets"),
    ("create", "pods", "--subresource=exec"),
    ("get", "pods", "--subresource=log"),  # the operator reads results from Job status
    ("create", "pods"),
    ("delete", "jobs.batch"),
    ("create", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("update", "deployments.apps"),
    ("create", "modelupdatepolicies.inshape.dev"),
    ("delete", "modelupdatepolicies.inshape.dev"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("patch", "kafkas.kafka.strimzi.io"),
    ("get", "configmaps"),
]


def test_namespaced_rbac_allows_what_the_operator_calls_there_and_nothing_else(
    crds: None, namespace: str, kubectl: Kubectl, other_namespace: str
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=render_text(
            release="inshape",
            namespace=namespace,
            extra=RBAC_ONLY,
        ),
    )
    account = f"system:serviceaccount:{namespace}:inshape"
    allowed = [" ".join(c) for c in NEEDED if not can_i(kubectl, account, *c)]
    assert not allowed, f"{account} may not: {allowed}"
    granted = [" ".join(c) for c in FORBIDDEN if can_i(kubectl, account, *c)]
    assert not granted, f"{account} may: {granted}"
    elsewhere = [" ".join(c) for c in NEEDED if can_i(kubectl, account, *c, "-n", other_namespace)]
    assert not elsewhere, f"{account} may, in another namespace: {elsewhere}"
    assert not can_i(kubectl, account, "list", "secrets", "--all-namespaces")
    assert not can_i(kubectl, account, "list", "modelupdatepolicies.inshape.dev", "-A")
    assert not can_i(kubectl, account, "list", "customresourcedefinitions")


def test_cluster_wide_rbac_reaches_every_namespace_but_lists_no_secrets(
    kind_env: KindEnv, crds: None, namespace: str, kubectl: Kubectl, other_namespace: str
) -> None:
    release = f"rbac-{namespace}"
    manifest = render_text(
        {"rbac.clusterWide": True},
        release=release,
        namespace=namespace,
        extra=RBAC_ONLY,
    )
    kubectl("apply", "-f", "-", stdin=manifest)
    try:
        account = f"system:serviceaccount:{namespace}:{release}-inshape"
        for other in (namespace, other_namespace):
            missing = [" ".join(c) for c in NEEDED if not can_i(kubectl, account, *c, "-n", other)]
            assert not missing, f"{account} may not, in {other}: {missing}"
            granted = [" ".join(c) for c in FORBIDDEN if can_i(kubectl, account, *c, "-n", other)]
            assert not granted, f"{account} may, in {other}: {granted}"
        assert can_i(kubectl, account, "watch", "modelupdatepolicies.inshape.dev", "-A")
        assert can_i(kubectl, account, "watch", "customresourcedefinitions")
        assert not can_i(kubectl, account, "list", "secrets", "--all-namespaces")
        assert not can_i(kubectl, account, "delete", "customresourcedefinitions")
    finally:
        kind_env.kubectl()(
            "delete",
            "clusterrole,clusterrolebinding",
            f"{release}-inshape-operator",
            "--ignore-not-found",
        )
