"""The operator against the kind cluster: run as `python -m inshape_operator` on the host, as a
developer would, with the cluster's admin kubeconfig; its update Jobs run as containers of the
project's image in a namespace enforcing Pod Security `restricted`, and reach the session's
Kafka and MLflow (in the cluster) at the node's address, as the host does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import yaml

from inshape_api.names import TARGET_OPT_IN_LABEL
from inshape_api.spec import Policy, parse_policy
from inshape_hack.kindtesting import KindEnv, apply_policy_crd, eventually
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_hack.operator_process import OperatorProcess
from inshape_hack.serving import model_uri_of, serving_deployment
from tests.integration.helpers import deep_merge, fill

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())
SERVING = "digits-serving"


class OperatorRunner(Protocol):
    """How a world runs its operator: a host process here, a pod in the fault tests."""

    def start(self) -> None: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def output(self) -> str: ...


class World:
    """One test's namespace with the CRD, a serving Deployment, Kafka and MLflow."""

    def __init__(
        self, endpoints: KindEnv, namespace: str, kubectl: Kubectl, operator: OperatorRunner
    ) -> None:
        self.endpoints = endpoints
        self.namespace = namespace
        self.kubectl = kubectl
        self.operator = operator

    def policy(self, name: str, spec: dict[str, Any] | None = None) -> Policy:
        """Apply a digits policy on its own topic and model; returns it parsed."""
        override: dict[str, Any] = {
            "source": {
                "kafka": {
                    "bootstrapServers": self.endpoints.kafka_bootstrap,
                    "topic": f"{self.namespace}-{name}",
                }
            },
            "model": {"name": f"{self.namespace}-{name}"},
            "mlflow": {"trackingUri": self.endpoints.mlflow_tracking_uri, "experiment": None},
            "evaluation": {"minImprovement": 0.0, "floor": None, "significance": None},
            "trigger": {"minNewRecords": 300, "maxInterval": None},
            "target": {"deployment": SERVING, "container": "server", "env": "MODEL_URI"},
        }
        document_spec = deep_merge(EXAMPLE["spec"], deep_merge(override, spec or {}))
        for section in ("evaluation", "trigger", "mlflow"):
            document_spec[section] = {
                k: v for k, v in document_spec[section].items() if v is not None
            }
        document = {
            "apiVersion": EXAMPLE["apiVersion"],
            "kind": EXAMPLE["kind"],
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": document_spec,
        }
        target = (document_spec.get("target") or {}).get("deployment")
        if target:  # the Deployment's owner lets this policy patch it
            self.kubectl(
                "label", "deployment", target, f"{TARGET_OPT_IN_LABEL}={name}", "--overwrite"
            )
        self.kubectl("apply", "-f", "-", stdin=json.dumps(document))
        return parse_policy(document)

    def fill(self, policy: Policy, count: int, seed: int = 0) -> None:
        fill(policy, count, seed=seed)

    def jobs(self, name: str) -> list[dict[str, Any]]:
        items = json.loads(
            self.kubectl("get", "jobs", "-l", f"inshape.dev/policy={name}", "-o", "json")
        )["items"]
        return list(items)

    def status(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", "mup", name, "-o", "json")).get("status") or {})

    def get_policy(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", "mup", name, "-o", "json")))

    def serving(self, name: str = SERVING) -> None:
        """A serving Deployment (one per policy when several policies run)."""
        manifest = serving_deployment(name, self.namespace, self.endpoints.image)
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def deployment(self, name: str = SERVING) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", "deployment", name, "-o", "json")))

    def model_uri(self, deployment: str = SERVING) -> str | None:
        return model_uri_of(self.deployment(deployment))

    def replica_sets(self) -> int:
        """ReplicaSets of the serving Deployment (the operator may run in the namespace too)."""
        selector = f"app={SERVING}"
        return len(self.kubectl.json("get", "replicasets", "-l", selector).get("items", []))

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        for condition in self.status(name).get("conditions") or ():
            if condition["type"] == type_:
                return dict(condition)
        return {}

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            eventually(check, timeout, what)
        except BaseException:
            print(self.operator.output())
            raise


WorldT = TypeVar("WorldT", bound=World)


@contextmanager
def running_world(
    world_type: type[WorldT],
    endpoints: KindEnv,
    namespace: str,
    kubectl: Kubectl,
    operator: OperatorRunner,
) -> Iterator[WorldT]:
    """The CRD, the serving Deployment and a running operator in one test namespace."""
    apply_policy_crd(endpoints.kubectl())
    world = world_type(endpoints, namespace, kubectl, operator)
    world.serving()
    operator.start()
    world.wait(lambda: world.replica_sets() == 1, 30, "the serving Deployment has a ReplicaSet")
    try:
        yield world
    finally:
        operator.stop()
        # Jobs still running would outlive the namespace's deletion for a while: stop them now.
        kubectl("delete", "jobs", "--all", "--wait=false", check=False)
        time.sleep(0.1)


def host_operator(endpoints: KindEnv, namespace: str, log: Path, **env: str) -> OperatorProcess:
    """The operator on the host, on one namespace, polling every second; a failed run is not
    retried for ten minutes, and finished Jobs stay as long. ``env`` overrides."""
    settings = {
        "INSHAPE_NAMESPACES": namespace,
        "INSHAPE_POLL_SECONDS": "1",
        "INSHAPE_FAILURE_BACKOFF_SECONDS": "600",
        "INSHAPE_JOB_TTL_SECONDS": "600",
        **env,
    }
    return OperatorProcess(endpoints.kubeconfig, endpoints.image, log, settings)


@pytest.fixture
def world(kind_env: KindEnv, namespace: str, kubectl: Kubectl, tmp_path: Path) -> Iterator[World]:
    operator = host_operator(kind_env, namespace, tmp_path / "operator.log")
    with running_world(World, kind_env, namespace, kubectl, operator) as w:
        yield w
