"""Shared pieces of the operator benchmarks: a cluster, the operator process, API clients.

They run on a kind cluster with the session's Kafka and MLflow inside it (kindtesting): the
cluster `inshape-bench`, created and deleted by the run, or with INSHAPE_KIND_CLUSTER=<name>
an existing one, reused and kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from inshape_hack.kindtesting import KindEnv, apply_policy_crd, kind_session
from inshape_hack.ports import free_port

REPO = Path(__file__).resolve().parents[1]

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


@contextmanager
def cluster() -> Iterator[KindEnv]:
    with kind_session("inshape-bench") as env:
        yield env


def api(endpoints: KindEnv) -> kubernetes.client.ApiClient:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(endpoints.kubeconfig), client_configuration=config
    )
    config.connection_pool_maxsize = 16
    return kubernetes.client.ApiClient(config)


def apply_crd(endpoints: KindEnv) -> None:
    apply_policy_crd(endpoints.kubectl())


def kubectl(endpoints: KindEnv, *args: str, stdin: str | None = None) -> str:
    return endpoints.kubectl()(*args, stdin=stdin)


def namespace(endpoints: KindEnv, name: str) -> None:
    kubectl(endpoints, "create", "namespace", name)


def bench_namespace(endpoints: KindEnv, prefix: str = "bench") -> str:
    """The CRD applied, and a fresh namespace for one benchmark run."""
    apply_crd(endpoints)
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    namespace(endpoints, name)
    return name


def start_polling_operator(endpoints: KindEnv, log: Path, ns: str) -> subprocess.Popen[bytes]:
    """Our operator on one namespace, polling every second; returns once /healthz answers."""
    health = free_port()
    proc = start_operator(
        endpoints,
        log,
        {"INSHAPE_NAMESPACES": ns, "INSHAPE_POLL_SECONDS": "1", "INSHAPE_HEALTH_PORT": str(health)},
    )
    wait_healthy(health)
    return proc


def start_operator(
    endpoints: KindEnv, log: Path, env: dict[str, str], idle: bool = False
) -> subprocess.Popen[bytes]:
    argv = (
        [sys.executable, "-c", IDLE_OPERATOR]
        if idle
        else [sys.executable, "-m", "inshape_operator"]
    )
    full = {
        **os.environ,
        "KUBECONFIG": str(endpoints.kubeconfig),
        # Update Jobs run the project's image, loaded into the kind node.
        "INSHAPE_JOB_IMAGE": endpoints.image,
        "INSHAPE_JOB_IMAGE_PULL_POLICY": "Never",
        "INSHAPE_METRICS_PORT": str(free_port()),
        "INSHAPE_HEALTH_PORT": str(free_port()),
        **env,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_healthy(port: int, timeout: float = 60) -> None:
    """Until Kopf's liveness endpoint answers (the operator has started its watches)."""
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the operator's /healthz on port {port} never answered")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def policy_document(
    name: str, ns: str, endpoints: KindEnv, topic: str, **spec: Any
) -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    example = yaml.safe_load((REPO / "manifests/examples/digits.yaml").read_text())
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


def dumps(document: Any) -> str:
    return json.dumps(document)


class WatchRecorder:
    """First local time each (kind, name, key) was seen, from watches in one namespace.
    Subclasses start one `_loop` thread per resource kind with a handler that `_mark`s."""

    def __init__(self, client: kubernetes.client.ApiClient, ns: str) -> None:
        self.seen: dict[tuple[str, str, str], float] = {}
        self.lock = threading.Lock()
        self.ns = ns
        self.client = client
        self.stop = threading.Event()

    def watch(self, list_fn: Any, handle: Any) -> None:
        threading.Thread(target=self._loop, args=(list_fn, handle), daemon=True).start()

    def _mark(self, key: tuple[str, str, str]) -> None:
        with self.lock:
            self.seen.setdefault(key, time.monotonic())

    def _loop(self, list_fn: Any, handle: Any) -> None:
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
