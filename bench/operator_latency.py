"""Operator latency on the local cluster: (a) lag threshold reached -> update Job created, and
(b) update Job finished -> serving Deployment patched; p50/p95 over --runs runs.

Each run is its own policy (first run: no champion, so the real update Job promotes) with its
own topic and Deployment, run one after another. Times are taken from watch events in this
process: (a) from the moment the records crossing minNewRecords are flushed to Kafka to the
Job's ADDED event; (b) from the Job's Complete event to the Deployment's event carrying the new
MODEL_URI. The operator polls lag every INSHAPE_POLL_SECONDS (1 here) and reacts to Job events.
Reference, same run: the Kubernetes floor, i.e. (a) a bare Job create seen by the watch, (b) a
plain JSON patch of a Deployment seen by the watch. Target: p95 < 2 s for each.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes

from bench.common import emit
from bench.operator_support import (
    WatchRecorder,
    api,
    bench_namespace,
    cluster,
    percentile,
    policy_document,
    start_polling_operator,
    stop,
)
from inshape_jobs.produce import encoded, produce
from inshape_jobs.streams import digits_records
from inshape_operator.results import job_state


class Watcher(WatchRecorder):
    """When each Job appeared and finished, and when each Deployment's MODEL_URI changed."""

    def __init__(self, client: kubernetes.client.ApiClient, ns: str) -> None:
        super().__init__(client, ns)
        for target in (self._jobs, self._deployments):
            threading.Thread(target=target, daemon=True).start()

    def _jobs(self) -> None:
        def handle(job: dict[str, Any]) -> None:
            name = job["metadata"]["name"]
            self._mark(("job", name, "added"))
            if job_state(job) != "Active":
                self._mark(("job", name, "finished"))

        self._loop(kubernetes.client.BatchV1Api(self.client).list_namespaced_job, handle)

    def _deployments(self) -> None:
        def handle(deployment: dict[str, Any]) -> None:
            name = deployment["metadata"]["name"]
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                for var in container.get("env") or ():
                    if var["name"] == "MODEL_URI":
                        self._mark(("deployment", name, str(var.get("value"))))

        self._loop(kubernetes.client.AppsV1Api(self.client).list_namespaced_deployment, handle)

    def wait(self, key: tuple[str, str, str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if key in self.seen:
                    return self.seen[key]
            time.sleep(0.01)
        raise TimeoutError(f"never saw {key}")


def deployment(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "inshape:dev",
                            "command": ["python", "-c", "import time; time.sleep(3600)"],
                            "env": [{"name": "MODEL_URI", "value": "none"}],
                        }
                    ]
                },
            },
        },
    }


def as_deployment(body: dict[str, Any]) -> Any:
    return kubernetes.client.V1Deployment.from_dict(body)


def as_job(body: dict[str, Any]) -> Any:
    return kubernetes.client.V1Job.from_dict(body)


def bare_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                }
            }
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inshape-bench-operator-"))
    with cluster() as endpoints:
        ns = bench_namespace(endpoints)
        client = api(endpoints)
        apps = kubernetes.client.AppsV1Api(client)
        batch = kubernetes.client.BatchV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)
        watcher = Watcher(client, ns)
        operator = start_polling_operator(endpoints, work / "operator.log", ns)
        created: list[float] = []
        patched: list[float] = []
        ref_create: list[float] = []
        ref_patch: list[float] = []
        try:
            for run in range(args.runs):
                name = f"p{run}"
                apps.create_namespaced_deployment(ns, as_deployment(deployment(name, ns)))
                document = policy_document(
                    name, ns, endpoints, f"{ns}-{name}", target={"deployment": name}
                )
                custom.create_namespaced_custom_object(
                    "inshape.dev", "v1alpha1", ns, "modelupdatepolicies", document
                )
                produce(
                    endpoints.kafka_bootstrap,
                    f"{ns}-{name}",
                    encoded(digits_records(seed=run), 0.0, seed=run),
                    count=299,
                    partitions=1,
                    quiet=True,
                )
                time.sleep(2.5)  # the operator has seen 299 pending: below the threshold
                produce(
                    endpoints.kafka_bootstrap,
                    f"{ns}-{name}",
                    encoded(digits_records(seed=run + 1000), 0.0, seed=run),
                    count=1,
                    partitions=1,
                    quiet=True,
                )
                reached = time.monotonic()
                job = f"{name}-update-1"
                created.append(watcher.wait(("job", job, "added"), 30) - reached)
                done = watcher.wait(("job", job, "finished"), 600)
                uri = f"models:/{ns}-{name}/1"
                patched.append(watcher.wait(("deployment", name, uri), 60) - done)

                # The floor, measured the same way: a bare create and a bare patch.
                started = time.monotonic()
                batch.create_namespaced_job(ns, as_job(bare_job(f"ref-{run}")))
                ref_create.append(watcher.wait(("job", f"ref-{run}", "added"), 30) - started)
                apps.create_namespaced_deployment(ns, as_deployment(deployment(f"ref-{run}", ns)))
                started = time.monotonic()
                apps.patch_namespaced_deployment(
                    f"ref-{run}",
                    ns,
                    [
                        {
                            "op": "replace",
                            "path": "/spec/template/spec/containers/0/env/0/value",
                            "value": uri,
                        }
                    ],
                    _content_type="application/json-patch+json",
                )
                ref_patch.append(watcher.wait(("deployment", f"ref-{run}", uri), 30) - started)
                print(
                    f"# run {run}: created {created[-1]:.3f}s patched {patched[-1]:.3f}s",
                    flush=True,
                )
        finally:
            watcher.stop.set()
            stop(operator)
        for metric, ours, ref, ref_name in (
            ("threshold_to_job_created", created, ref_create, "bare Job create -> watch event"),
            ("job_finished_to_deployment_patched", patched, ref_patch, "bare patch -> watch event"),
        ):
            for q in (0.5, 0.95):
                emit(
                    "operator_latency",
                    f"{metric}_p{round(q * 100)}",
                    ours=percentile(ours, q),
                    reference=percentile(ref, q),
                    reference_name=ref_name,
                    unit="s",
                    target="p95 < 2 s",
                    runs=len(ours),
                    poll_seconds=1,
                )


if __name__ == "__main__":
    main()
