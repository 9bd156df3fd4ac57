"""Shared pieces of the operator benchmarks: the cluster, the operator process, watches.

They run on a kind cluster with the session's Kafka and MLflow inside it (kindtesting): the
cluster `inshape-bench`, created and deleted by the run, or with INSHAPE_KIND_CLUSTER=<name>
an existing one, reused and kept. The operator runs on the host (operator_process.py).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from bench.common import emit
from inshape_hack.kindtesting import KindEnv, apply_policy_crd
from inshape_hack.kubeconfig import api_client
from inshape_hack.operator_process import OPERATOR_ARGV, OperatorProcess
from inshape_hack.paths import REPO_ROOT
from inshape_hack.polling import wait_until
from inshape_hack.serving import model_uri_of, model_uri_patch, opt_in_patch, pod_ready
from inshape_jobs.produce import encoded, produce
from inshape_jobs.streams import digits_records
from inshape_operator.results import job_state

BENCH_CLUSTER = "inshape-bench"
POLICIES = ("inshape.dev", "v1alpha1")  # group, version; plural: modelupdatepolicies
BARE_JOB_SECONDS = 1.0

# A Kopf operator doing nothing on the same CRD: the reference for the scale benchmark.
IDLE_OPERATOR = """
import os
import kopf

@kopf.on.startup()
def configure(settings, **_):
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="idle.bench")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="idle.bench")

@kopf.on.resume("inshape.dev", "v1alpha1", "modelupdatepolicies")
@kopf.on.create("inshape.dev", "v1alpha1", "modelupdatepolicies")
@kopf.on.update("inshape.dev", "v1alpha1", "modelupdatepolicies")
def changed(**_):
    return None

INTERVAL = float(os.environ["INTERVAL"])

@kopf.timer("inshape.dev", "v1alpha1", "modelupdatepolicies", interval=INTERVAL)
def poll(**_):
    return None

kopf.run(standalone=True, clusterwide=True)
"""


def bench_namespace(endpoints: KindEnv, prefix: str = "bench") -> str:
    """The CRD applied, and a fresh namespace for one benchmark run."""
    admin = endpoints.kubectl()
    apply_policy_crd(admin)
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin("create", "namespace", name)
    return name


def operator(
    endpoints: KindEnv, log: Path, env: dict[str, str], idle: bool = False
) -> OperatorProcess:
    """Our operator (or the idle Kopf reference) on the host, not yet started."""
    argv = [sys.executable, "-c", IDLE_OPERATOR] if idle else OPERATOR_ARGV
    return OperatorProcess(endpoints.kubeconfig, endpoints.image, log, env, argv)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def emit_percentiles(
    bench: str, metric: str, ours: list[float], reference: list[float], **fields: Any
) -> None:
    """p50 and p95 of ours and of the reference's, one result line each."""
    for q in (0.5, 0.95):
        emit(
            bench,
            f"{metric}_p{round(q * 100)}",
            ours=percentile(ours, q),
            reference=percentile(reference, q),
            **fields,
        )


def policy_document(
    name: str, ns: str, endpoints: KindEnv, topic: str, **spec: Any
) -> dict[str, Any]:
    example = yaml.safe_load((REPO_ROOT / "manifests/examples/digits.yaml").read_text())
    body = example["spec"]
    body["source"]["kafka"].update(bootstrapServers=endpoints.kafka_bootstrap, topic=topic)
    body["model"]["name"] = f"{ns}-{name}"
    body["mlflow"] = {"trackingUri": endpoints.mlflow_tracking_uri}
    body["evaluation"] = {"metric": "accuracy", "minImprovement": 0.0}
    body["trigger"] = {"minNewRecords": 300}
    body.update(spec)
    if body.get("target") is None:
        body.pop("target", None)
    return {
        "apiVersion": example["apiVersion"],
        "kind": example["kind"],
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def bare_job(name: str, image: str) -> dict[str, Any]:
    """A Job that only runs for BARE_JOB_SECONDS: the Kubernetes floor of an update Job."""
    return {
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
                            "name": "c",
                            "image": image,
                            "imagePullPolicy": "Never",
                            # Runs for BARE_JOB_SECONDS, so a watch sees it running on a real
                            # runtime (a `pass` starts and ends between two status updates).
                            "command": ["sleep", str(BARE_JOB_SECONDS)],
                        }
                    ],
                }
            },
        },
    }


def create_policy(client: kubernetes.client.ApiClient, document: dict[str, Any]) -> None:
    """Create a policy document in the namespace its metadata names."""
    custom = kubernetes.client.CustomObjectsApi(client)
    ns = document["metadata"]["namespace"]
    custom.create_namespaced_custom_object(*POLICIES, ns, "modelupdatepolicies", document)


Key = tuple[str, str, str]


class Watcher:
    """First local time each (kind, name, key) was seen, from watches in one namespace:
    ("job", name, "added" | "running" | "finished"), ("deployment", name, MODEL_URI), and with
    ``pods`` ("ready", app, MODEL_URI) when a serving pod with that URI is Ready, and each
    Job's result (its pod's termination message)."""

    def __init__(self, client: kubernetes.client.ApiClient, ns: str, pods: bool) -> None:
        self.seen: dict[Key, float] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.ns = ns
        self.stop = threading.Event()
        self._watch(kubernetes.client.BatchV1Api(client).list_namespaced_job, self._job)
        apps = kubernetes.client.AppsV1Api(client)
        self._watch(apps.list_namespaced_deployment, self._deployment)
        if pods:
            self._watch(kubernetes.client.CoreV1Api(client).list_namespaced_pod, self._pod)

    def wait(self, key: Key, timeout: float) -> float:
        """When ``key`` was first seen, once it has been."""
        wait_until(lambda: self._has(key), timeout, f"a watch sees {key}", interval=0.01)
        return self.seen[key]

    def result(self, job: str, timeout: float = 30) -> dict[str, Any]:
        wait_until(lambda: job in self.results, timeout, f"Job {job} has a result", interval=0.05)
        return self.results[job]

    def _has(self, key: Key) -> bool:
        with self.lock:
            return key in self.seen

    def _mark(self, key: Key) -> None:
        with self.lock:
            self.seen.setdefault(key, time.monotonic())

    def _job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        self._mark(("job", name, "added"))
        if job_state(job) != "Active":
            self._mark(("job", name, "finished"))

    def _deployment(self, deployment: dict[str, Any]) -> None:
        uri = model_uri_of(deployment)
        if uri is not None:
            self._mark(("deployment", deployment["metadata"]["name"], uri))

    def _pod(self, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        containers = (pod.get("status") or {}).get("containerStatuses") or ()
        job = labels.get("job-name")
        if job:
            if any("running" in (c.get("state") or {}) for c in containers):
                self._mark(("job", job, "running"))
            for c in containers:
                message = ((c.get("state") or {}).get("terminated") or {}).get("message")
                if message and message.strip().startswith("{"):
                    try:
                        with self.lock:
                            self.results[job] = json.loads(message)
                    except ValueError:
                        pass
        app, uri = labels.get("app"), model_uri_of(pod)
        if app and uri is not None and pod_ready(pod):
            self._mark(("ready", app, uri))

    def _watch(self, list_fn: Any, handle: Callable[[dict[str, Any]], None]) -> None:
        threading.Thread(target=self._loop, args=(list_fn, handle), daemon=True).start()

    def _loop(self, list_fn: Any, handle: Callable[[dict[str, Any]], None]) -> None:
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in watch.stream(list_fn, self.ns, timeout_seconds=60):  # type: ignore[no-untyped-call]
                    handle(event["raw_object"])
                    if self.stop.is_set():
                        watch.stop()  # type: ignore[no-untyped-call]
            except (ProtocolError, ApiException, OSError):
                # The cluster going away at the end of a run ends the watch; otherwise retry.
                if self.stop.is_set():
                    return
                time.sleep(1)


@dataclass
class OperatorBench:
    """One latency run: a namespace with our operator polling it every second, under watch."""

    endpoints: KindEnv
    ns: str
    client: kubernetes.client.ApiClient
    watcher: Watcher

    def create_policy(self, document: dict[str, Any]) -> None:
        create_policy(self.client, document)

    def delete_policy(self, name: str) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.client)
        custom.delete_namespaced_custom_object(*POLICIES, self.ns, "modelupdatepolicies", name)

    def pending_records(self, name: str) -> int | None:
        custom = kubernetes.client.CustomObjectsApi(self.client)
        policy = dict(
            custom.get_namespaced_custom_object(  # type: ignore[call-overload]
                *POLICIES, self.ns, "modelupdatepolicies", name
            )
        )
        return (policy.get("status") or {}).get("pendingRecords")

    def create_deployment(self, body: dict[str, Any]) -> None:
        apps = kubernetes.client.AppsV1Api(self.client)
        apps.create_namespaced_deployment(self.ns, body)  # type: ignore[arg-type]  # the client takes plain dicts too

    def create_job(self, body: dict[str, Any]) -> None:
        batch = kubernetes.client.BatchV1Api(self.client)
        batch.create_namespaced_job(self.ns, body)  # type: ignore[arg-type]

    def opt_in(self, deployment: str, policy: str) -> None:
        """The Deployment's owner lets ``policy`` patch it (the operator refuses otherwise)."""
        apps = kubernetes.client.AppsV1Api(self.client)
        apps.patch_namespaced_deployment(deployment, self.ns, opt_in_patch(policy))

    def patch_model_uri(self, deployment: str, uri: str) -> None:
        """The bare patch of a Deployment's MODEL_URI: the floor of the operator's rollout."""
        apps = kubernetes.client.AppsV1Api(self.client)
        apps.patch_namespaced_deployment(
            deployment, self.ns, model_uri_patch(uri), _content_type="application/json-patch+json"
        )

    def cross_threshold(
        self, policy: str, topic: str, threshold: int, seed: int, partitions: int = 3
    ) -> float:
        """Produce one record short of ``threshold`` (minNewRecords), wait until the operator
        has seen them pending, then produce the one that crosses it; returns when it was
        flushed."""
        records = encoded(digits_records(seed=seed), 0.0, seed=seed)
        bootstrap = self.endpoints.kafka_bootstrap
        produce(bootstrap, topic, records, count=threshold - 1, partitions=partitions, quiet=True)
        wait_until(
            lambda: self.pending_records(policy) == threshold - 1,
            60,
            f"{policy}: the operator sees {threshold - 1} pending records",
        )
        produce(bootstrap, topic, records, count=1, partitions=partitions, quiet=True)
        return time.monotonic()


@contextmanager
def operator_bench(endpoints: KindEnv, pods: bool = False) -> Iterator[OperatorBench]:
    """A fresh namespace under watch (pods too with ``pods``) and our operator on it, polling
    every second; stopped on the way out."""
    ns = bench_namespace(endpoints)
    client = api_client(endpoints.kubeconfig)
    watcher = Watcher(client, ns, pods=pods)
    work = Path(tempfile.mkdtemp(prefix="inshape-bench-operator-"))
    env = {"INSHAPE_NAMESPACES": ns, "INSHAPE_POLL_SECONDS": "1"}
    process = operator(endpoints, work / "operator.log", env)
    process.start()
    try:
        process.wait_healthy()
        yield OperatorBench(endpoints, ns, client, watcher)
    finally:
        watcher.stop.set()
        process.stop()
