"""Smoke tests of the local cluster: real apiserver, controllers and the local kubelet."""

from __future__ import annotations

import json
import os
import textwrap
import time
from typing import Any

import pytest

from inshape_hack.testing import Kubectl, eventually

pytestmark = pytest.mark.e2e


def job(name: str, script: str, **container: Any) -> str:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11-slim",
                            "command": ["python", "-c", textwrap.dedent(script)],
                            **container,
                        }
                    ],
                }
            },
        },
    }
    return json.dumps(manifest)


def get(kubectl: Kubectl, *what: str) -> Any:
    return json.loads(kubectl("get", *what, "-o", "json"))


def test_job_that_prints_completes_and_its_logs_are_served(kubectl: Kubectl) -> None:
    kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret")
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=job(
            "hello",
            """
        import os
        print("hello from", os.environ["POD_NAME"], "at", os.environ["POD_IP"])
        print(os.environ["TOKEN"], os.environ["MODE"])
    """,
            env=[
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {
                    "name": "MODE",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                },
            ],
        ),
    )
    kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
    pod = get(kubectl, "pods", "-l", "job-name=hello")["items"][0]
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    logs = kubectl("logs", "job/hello")
    assert logs.splitlines() == [f"hello from {pod['metadata']['name']} at {ip}", "s3cret fast"]
    assert kubectl("logs", "job/hello", "--tail=1").strip() == "s3cret fast"
    assert pod["status"]["phase"] == "Succeeded"


def test_failing_job_records_exit_code_and_termination_message(kubectl: Kubectl) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=job(
            "fails",
            """
        import os, sys
        with open(os.environ["INSHAPE_TERMINATION_MESSAGE_PATH"], "w") as f:
            f.write("model rejected")
        sys.exit(3)
    """,
        ),
    )
    kubectl("wait", "--for=condition=failed", "job/fails", "--timeout=60s")
    pod = get(kubectl, "pods", "-l", "job-name=fails")["items"][0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == "model rejected"
    assert pod["status"]["phase"] == "Failed"


SERVER = """
import http.server, os
print("serving", os.environ["MODEL_VERSION"], flush=True)
http.server.HTTPServer((os.environ["POD_IP"], 8080), http.server.SimpleHTTPRequestHandler) \
    .serve_forever()
"""


def deployment(model_version: str) -> str:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": "python:3.11-slim",
                            "command": ["python", "-c", SERVER],
                            "env": [
                                {"name": "MODEL_VERSION", "value": model_version},
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    return json.dumps(manifest)


def container_pid(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("inshape://"))


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_deployment_rolls_out_a_new_pod_when_its_env_changes(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=deployment("v1"))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    old = get(kubectl, "pods", "-l", "app=web")["items"][0]
    assert kubectl("logs", "deployment/web").splitlines()[0] == "serving v1"

    kubectl("set", "env", "deployment/web", "MODEL_VERSION=v2")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    eventually(
        lambda: len(get(kubectl, "pods", "-l", "app=web")["items"]) == 1, 60, "the old pod is gone"
    )
    new = get(kubectl, "pods", "-l", "app=web")["items"][0]
    assert new["metadata"]["name"] != old["metadata"]["name"]
    assert kubectl("logs", "deployment/web").splitlines()[0] == "serving v2"
    ready = {c["type"]: c["status"] for c in new["status"]["conditions"]}
    assert ready["Ready"] == "True"
    eventually(lambda: pid_gone(container_pid(old)), 30, "the old pod's process exited")


def test_deleting_an_owner_garbage_collects_its_children(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=deployment("v1"))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    pod = get(kubectl, "pods", "-l", "app=web")["items"][0]
    assert get(kubectl, "replicasets", "-l", "app=web")["items"]

    kubectl("delete", "deployment/web", "--cascade=background", "--wait=false")
    eventually(
        lambda: not get(kubectl, "replicasets", "-l", "app=web")["items"],
        60,
        "the ReplicaSet is collected",
    )
    eventually(
        lambda: not get(kubectl, "pods", "-l", "app=web")["items"], 60, "the pod is collected"
    )
    eventually(lambda: pid_gone(container_pid(pod)), 30, "the pod's process exited")


RBAC_PROBE = """
import os
from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config()  # the pod's KUBECONFIG: its service account's bound token
api = client.CoreV1Api()
for what, call in [("pods", api.list_namespaced_pod), ("secrets", api.list_namespaced_secret)]:
    try:
        call(os.environ["NAMESPACE"])
        print(what, "allowed")
    except ApiException as err:
        print(what, err.status)
"""


def test_a_pods_service_account_is_subject_to_rbac(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "reader")
    kubectl("create", "role", "pod-reader", "--verb=list", "--resource=pods")
    kubectl(
        "create",
        "rolebinding",
        "reader-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    spec = json.loads(
        job(
            "rbac",
            RBAC_PROBE,
            env=[
                {
                    "name": "NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
            ],
        )
    )
    spec["spec"]["template"]["spec"]["serviceAccountName"] = "reader"
    kubectl("apply", "-f", "-", stdin=json.dumps(spec))
    kubectl("wait", "--for=condition=complete", "job/rbac", "--timeout=60s")
    assert kubectl("logs", "job/rbac").split("\n")[:2] == ["pods allowed", "secrets 403"]


def test_no_token_when_automount_is_off(kubectl: Kubectl) -> None:
    spec = json.loads(
        job(
            "notoken",
            """
        import os
        print("KUBECONFIG" in os.environ)
    """,
        )
    )
    spec["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    kubectl("apply", "-f", "-", stdin=json.dumps(spec))
    kubectl("wait", "--for=condition=complete", "job/notoken", "--timeout=60s")
    assert kubectl("logs", "job/notoken").strip() == "False"


def pod(name: str, script: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11-slim",
                        "command": ["python", "-c", textwrap.dedent(script)],
                    }
                ],
                **spec,
            },
        }
    )


def test_on_failure_restarts_in_place_and_keeps_the_previous_log(kubectl: Kubectl) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=pod(
            "flaky",
            """
        import os, sys
        if not os.path.exists("marker"):  # cwd is the pod's directory, kept across restarts
            open("marker", "w").close()
            print("first run fails")
            sys.exit(5)
        print("second run succeeds")
    """,
            restartPolicy="OnFailure",
        ),
    )
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/flaky", "--timeout=60s")
    status = get(kubectl, "pod/flaky")["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 5
    assert kubectl("logs", "flaky").strip() == "second run succeeds"
    assert kubectl("logs", "flaky", "--previous").strip() == "first run fails"


def test_deletion_sends_sigterm_then_sigkill_after_the_grace_period(kubectl: Kubectl) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=pod(
            "stubborn",
            """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, ignoring it", flush=True))
        print("started", flush=True)
        while True:
            time.sleep(0.1)
    """,
            restartPolicy="Never",
            terminationGracePeriodSeconds=2,
        ),
    )
    kubectl("wait", "--for=condition=Ready", "pod/stubborn", "--timeout=60s")
    eventually(lambda: "started" in kubectl("logs", "stubborn"), 30, "the pod started")
    pid = container_pid(get(kubectl, "pod/stubborn"))
    started = time.monotonic()
    kubectl("delete", "pod/stubborn", "--wait=true", "--timeout=60s")
    elapsed = time.monotonic() - started
    assert pid_gone(pid)
    assert 1.5 < elapsed < 15, f"deletion took {elapsed:.1f}s with a 2s grace period"


def test_init_containers_run_first_in_the_same_pod_directory(kubectl: Kubectl) -> None:
    spec = json.loads(
        pod(
            "inits",
            """
        print(open("prepared").read())
    """,
            restartPolicy="Never",
        )
    )
    spec["spec"]["initContainers"] = [
        {
            "name": "prepare",
            "image": "python:3.11-slim",
            "command": ["python", "-c", "open('prepared', 'w').write('data ready')"],
        }
    ]
    kubectl("apply", "-f", "-", stdin=json.dumps(spec))
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/inits", "--timeout=60s")
    status = get(kubectl, "pod/inits")["status"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert kubectl("logs", "inits").strip() == "data ready"
