"""The chart's platform-team options against a real API server (etcd + kube-apiserver, no
nodes): one `helm install` creates the CRD and the example policy (a hook while the CRD is new),
an upgrade adopts the policy in place, and every object the platform values add (pull
secrets, placement, ServiceMonitor, `helm test` pod, MLflow's external stores and basic auth,
NetworkPolicies) passes server-side validation, the test pod under restricted Pod Security."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest
import yaml

from inshape_hack.apiserver import ApiServer
from inshape_hack.helm import helm_binary
from inshape_hack.kubeconfig import kube_env
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.podsecurity import ENFORCE_RESTRICTED
from tests.chart.conftest import CHART, render_text

pytestmark = pytest.mark.integration

EXAMPLE = "example.enabled=true,kafka.bootstrapServers=kafka:9092"
# Just enough of the Prometheus Operator's CRD for a ServiceMonitor to be stored.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
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


def namespace(admin: KubectlRunner, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin("create", "namespace", name)
    admin("label", "namespace", name, ENFORCE_RESTRICTED)
    return name


def helm(server: ApiServer, *args: str) -> str:
    done = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        env=kube_env(server.kubeconfig_path),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}{done.stdout}"
    return done.stdout


def policy(admin: KubectlRunner, ns: str) -> dict[str, Any]:
    return admin.in_namespace(ns).json("get", "modelupdatepolicy", "digits")


def test_one_install_creates_the_crd_and_the_example_then_upgrades_adopt_it(
    api_server: ApiServer,
) -> None:
    admin = api_server.kubectl()
    ns = namespace(admin, "install")
    notes = helm(api_server, "install", "inshape", str(CHART), "-n", ns, "--set", EXAMPLE)
    assert "The policy is a post-install hook" in notes
    created = policy(admin, ns)
    assert created, "the post-install hook created no policy"
    assert created["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    uid = created["metadata"]["uid"]

    notes = helm(
        api_server,
        "upgrade",
        "inshape",
        str(CHART),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "example.minNewRecords=10",
    )
    assert "post-install hook" not in notes

    adopted = policy(admin, ns)
    assert adopted["metadata"]["uid"] == uid, "the upgrade re-created the policy"
    assert adopted["spec"]["trigger"]["minNewRecords"] == 10
    manifest = helm(api_server, "get", "manifest", "inshape", "-n", ns)
    assert "kind: ModelUpdatePolicy" in manifest  # an ordinary object of the release now
    assert "helm.sh/hook" not in json.dumps(adopted["metadata"].get("annotations", {}))

    helm(api_server, "uninstall", "inshape", "-n", ns)
    assert not policy(admin, ns)
    assert admin.json("get", "crd", "modelupdatepolicies.inshape.dev")  # kept


PLATFORM = {
    "imagePullSecrets": ["regcred"],
    "image.digest": "sha256:" + "0" * 64,
    "operator.logFormat": "json",
    "operator.tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
    "operator.topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
        }
    ],
    "mlflow.server.podAnnotations": {"team": "ml"},
    "mlflow.server.extraEnv": [{"name": "NO_PROXY", "value": ".svc"}],
    "mlflow.server.backendStore.uriSecret.name": "mlflow-db",
    "mlflow.server.artifacts": {
        "destination": "s3://models/x",
        "credentialsSecret": {"name": "s3"},
    },
    "mlflow.server.auth": {"enabled": True, "adminSecret": {"name": "mlflow-admin"}},
    "example.serving.priorityClassName": "ml",
    "serviceMonitor.enabled": True,
    "networkPolicy.enabled": True,
    "networkPolicy.operatorEgress.enabled": True,
    "networkPolicy.operatorEgress.apiServerCidrs": ["10.96.0.1/32"],
    "networkPolicy.mlflowExtraFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
}


def test_every_platform_object_passes_server_side_validation(api_server: ApiServer) -> None:
    admin = api_server.kubectl()
    admin.apply([SERVICE_MONITOR_CRD])
    admin("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    ns = namespace(admin, "platform")
    values = {**PLATFORM, "example.enabled": True, "kafka.bootstrapServers": "kafka:9092"}
    text = render_text(values, namespace=ns)
    objects = [d for d in yaml.safe_load_all(text) if d and d["kind"] != "CustomResourceDefinition"]
    kinds = {o["kind"] for o in objects}
    assert {"NetworkPolicy", "ServiceMonitor", "ConfigMap", "Pod", "ModelUpdatePolicy"} <= kinds
    if not admin.json("get", "crd", "modelupdatepolicies.inshape.dev"):
        crd = (CHART / "files" / "modelupdatepolicies.inshape.dev.yaml").read_text()
        admin("apply", "-f", "-", stdin=crd)
    admin("wait", "--for=condition=Established", "crd/modelupdatepolicies.inshape.dev")
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    done = admin.in_namespace(ns).run("apply", "--dry-run=server", "-f", "-", stdin=document)
    assert done.returncode == 0, done.stderr
    # Restricted Pod Security admits the `helm test` pod (a Pod, so enforced, not just warned).
    assert "would violate PodSecurity" not in done.stderr, done.stderr
