"""The shared scaffolding of the tests and benches, without a cluster: the serving Deployment,
the kubeconfig environment, and the operator launcher (run with a stand-in program)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jsonpatch
import pytest

from inshape_hack.kubeconfig import kube_env
from inshape_hack.operator_process import OperatorProcess
from inshape_hack.podsecurity import RESTRICTED_CONTAINER
from inshape_hack.serving import (
    INITIAL_URI,
    model_uri_of,
    model_uri_patch,
    pod_ready,
    serving_deployment,
)


@pytest.mark.parametrize("http_port", [None, 8080])
def test_the_serving_deployment_serves_the_initial_uri_and_a_bare_patch_changes_it(
    http_port: int | None,
) -> None:
    deployment = serving_deployment("s", "ns", "inshape:dev", http_port=http_port)
    assert deployment["metadata"] == {"name": "s", "namespace": "ns"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    assert container["imagePullPolicy"] == "Never"
    assert model_uri_of(deployment) == INITIAL_URI
    patched = jsonpatch.apply_patch(deployment, model_uri_patch("models:/m/2"))
    assert model_uri_of(patched) == "models:/m/2"
    assert ("readinessProbe" in container) == (http_port is not None)


def test_model_uri_of_reads_a_pod_by_container_name() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "sidecar", "env": [{"name": "MODEL_URI", "value": "other"}]},
                {"name": "server", "env": [{"name": "X", "value": "1"}, {"name": "MODEL_URI"}]},
            ]
        },
    }
    assert model_uri_of(pod) is None
    pod["spec"]["containers"][1]["env"][1]["value"] = "models:/m/1"
    assert model_uri_of(pod) == "models:/m/1"
    assert model_uri_of(pod, container="sidecar") == "other"


def test_a_pod_is_ready_while_not_being_deleted() -> None:
    pod: dict[str, object] = {
        "metadata": {"name": "p"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert pod_ready(pod)
    assert not pod_ready({**pod, "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert not pod_ready({"metadata": {}, "status": {}})


def test_kube_env_points_at_the_kubeconfig_with_its_own_discovery_cache(tmp_path: Path) -> None:
    env = kube_env(tmp_path / "c.kubeconfig", {"PATH": "/bin", "KUBECONFIG": "/elsewhere"})
    assert env == {
        "PATH": "/bin",
        "KUBECONFIG": str(tmp_path / "c.kubeconfig"),
        "KUBECACHEDIR": str(tmp_path / "kubectl-cache"),
    }
    assert kube_env(tmp_path / "k")["PATH"] == os.environ["PATH"]


# Stands in for the operator: serves /healthz where the launcher says, and shows its settings.
HEALTH_ONLY = """
import http.server, os, sys
for key in sorted(os.environ):
    if key.startswith(("INSHAPE_", "KUBE")):
        print(f"{key}={os.environ[key]}", flush=True)
class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
port = int(os.environ["INSHAPE_HEALTH_PORT"])
http.server.HTTPServer(("127.0.0.1", port), Healthy).serve_forever()
"""


def test_the_operator_launcher_sets_its_env_waits_for_health_and_stops(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    kubeconfig = tmp_path / "cluster.kubeconfig"
    argv = [sys.executable, "-c", HEALTH_ONLY]
    operator = OperatorProcess(kubeconfig, "inshape:dev", log, {"INSHAPE_NAMESPACES": "a"}, argv)
    operator.start()
    try:
        operator.wait_healthy(timeout=30)
        output = operator.output()
        assert f"KUBECONFIG={kubeconfig}" in output
        assert "INSHAPE_JOB_IMAGE=inshape:dev" in output
        assert "INSHAPE_JOB_IMAGE_PULL_POLICY=Never" in output
        assert "INSHAPE_NAMESPACES=a" in output
        assert f"INSHAPE_HEALTH_PORT={operator.health_port}" in output
    finally:
        operator.stop(grace=5)
    assert not operator.process.running()


def test_an_operator_that_dies_ends_the_health_wait_at_once(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    operator = OperatorProcess(tmp_path / "k", "inshape:dev", tmp_path / "operator.log", {}, argv)
    operator.start()
    with pytest.raises(RuntimeError, match="process exited"):
        operator.wait_healthy(timeout=60)
    operator.kill()
