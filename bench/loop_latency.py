"""End-to-end loop latency on kind: the record that crosses minNewRecords is
produced -> the serving pod running the new model is Ready; p50/p95 over --loops loops, with
the breakdown

  trigger   threshold record flushed -> update Job created (operator lag poll)
  job_start Job created -> its pod's container running (Job controller, kubelet)
  startup   container running -> run started (Python/MLflow imports; Job time not in stages)
  champion, snapshot, drain, parse, train, evaluate, log, register, commit
            the Job's own stage times (its result's `stages`)
  job_end   container running -> Job seen finished, minus startup and stages
  patch     Job finished -> Deployment's MODEL_URI changed (operator)
  rollout   MODEL_URI changed -> a pod with the new URI is Ready (Deployment, kubelet, probe)

Each loop is its own policy with no champion (so the run always promotes) and the same serving
Deployment as target; the previous loop's policy is deleted first. The serving container is
`python -m http.server` bound to $(POD_IP) (downward API) behind an httpGet readiness probe.
Times are from watch events in this process. Reference, same run: the loop's floor, i.e. a bare
Job (`sleep 1`, less that second) created -> finished, plus the Job's own stage sum, plus a
bare env patch of a second identical Deployment -> its new pod Ready.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
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

SERVING = "serving"
BARE_JOB_SECONDS = 1.0
REFERENCE = "serving-ref"
STAGES = (
    "champion",
    "snapshot",
    "drain",
    "parse",
    "train",
    "evaluate",
    "log",
    "register",
    "commit",
)


class Watcher(WatchRecorder):
    """When Jobs, Deployments and pods reached each step; the Jobs' results."""

    def __init__(self, client: kubernetes.client.ApiClient, ns: str) -> None:
        super().__init__(client, ns)
        self.results: dict[str, dict[str, Any]] = {}
        self.watch(kubernetes.client.BatchV1Api(client).list_namespaced_job, self._job)
        self.watch(kubernetes.client.AppsV1Api(client).list_namespaced_deployment, self._deployment)
        self.watch(kubernetes.client.CoreV1Api(client).list_namespaced_pod, self._pod)

    def _job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        self._mark(("job", name, "added"))
        if job_state(job) != "Active":
            self._mark(("job", name, "finished"))

    def _deployment(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        for var in deployment["spec"]["template"]["spec"]["containers"][0].get("env") or ():
            if var["name"] == "MODEL_URI":
                self._mark(("deployment", name, str(var.get("value"))))

    def _pod(self, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        status = pod.get("status") or {}
        containers = status.get("containerStatuses") or ()
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
        app = labels.get("app")
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or ()
        )
        if app and ready and not pod["metadata"].get("deletionTimestamp"):
            for var in pod["spec"]["containers"][0].get("env") or ():
                if var["name"] == "MODEL_URI":
                    self._mark(("ready", app, str(var.get("value"))))

    def wait(self, key: tuple[str, str, str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if key in self.seen:
                    return self.seen[key]
            time.sleep(0.01)
        raise TimeoutError(f"never saw {key}")

    def result(self, job: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if job in self.results:
                    return self.results[job]
            time.sleep(0.05)
        raise TimeoutError(f"no result of Job {job}")


def serving(name: str, ns: str, port: int, image: str) -> dict[str, Any]:
    """A small HTTP server bound to the pod's IP; Ready once it answers."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python", "-m", "http.server", str(port)],
                            "args": ["--bind", "$(POD_IP)"],
                            "env": [
                                {"name": "MODEL_URI", "value": "none"},
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                            ],
                            "ports": [{"name": "http", "containerPort": port}],
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


def bare_job(name: str, image: str) -> dict[str, Any]:
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


def env_patch(uri: str) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": uri}]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=5)
    parser.add_argument("--records", type=int, default=5000, help="minNewRecords of each loop")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inshape-bench-loop-"))
    with cluster() as endpoints:
        ns = bench_namespace(endpoints)
        client = api(endpoints)
        apps = kubernetes.client.AppsV1Api(client)
        batch = kubernetes.client.BatchV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)
        watcher = Watcher(client, ns)
        for name in (SERVING, REFERENCE):
            apps.create_namespaced_deployment(ns, serving(name, ns, 8080, endpoints.image))  # type: ignore[arg-type]  # the client takes plain dicts too
            watcher.wait(("ready", name, "none"), 90)
        operator = start_polling_operator(endpoints, work / "operator.log", ns)
        loops: list[dict[str, float]] = []
        floors: list[dict[str, float]] = []
        previous: str | None = None
        try:
            for loop in range(args.loops):
                name = f"loop{loop}"
                topic = f"{ns}-{name}"
                if previous:
                    custom.delete_namespaced_custom_object(
                        "inshape.dev", "v1alpha1", ns, "modelupdatepolicies", previous
                    )
                document = policy_document(
                    name,
                    ns,
                    endpoints,
                    topic,
                    target={"deployment": SERVING, "container": "server", "env": "MODEL_URI"},
                    trigger={"minNewRecords": args.records},
                )
                custom.create_namespaced_custom_object(
                    "inshape.dev", "v1alpha1", ns, "modelupdatepolicies", document
                )
                previous = name
                records = encoded(digits_records(seed=loop), 0.0, seed=loop)
                produce(
                    endpoints.kafka_bootstrap, topic, records, count=args.records - 1, quiet=True
                )
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # the operator has seen one short
                    policy = dict(
                        custom.get_namespaced_custom_object(  # type: ignore[call-overload]
                            "inshape.dev", "v1alpha1", ns, "modelupdatepolicies", name
                        )
                    )
                    if (policy.get("status") or {}).get("pendingRecords") == args.records - 1:
                        break
                    time.sleep(0.2)
                else:
                    raise TimeoutError(f"{name}: pendingRecords never reached {args.records - 1}")
                produce(endpoints.kafka_bootstrap, topic, records, count=1, quiet=True)
                crossed = time.monotonic()

                job = f"{name}-update-1"
                uri = f"models:/{ns}-{name}/1"
                added = watcher.wait(("job", job, "added"), 60)
                running = watcher.wait(("job", job, "running"), 120)
                finished = watcher.wait(("job", job, "finished"), 600)
                patched = watcher.wait(("deployment", SERVING, uri), 120)
                ready = watcher.wait(("ready", SERVING, uri), 120)
                result = watcher.result(job)
                if result.get("outcome") != "Promoted":
                    raise RuntimeError(f"{job}: {result}")
                stages = {k: float(v) for k, v in (result.get("stages") or {}).items()}
                stage_sum = sum(stages.values())
                startup = max(0.0, (finished - running) - stage_sum)
                breakdown = {
                    "trigger": added - crossed,
                    "job_start": running - added,
                    **{s: stages.get(s, 0.0) for s in STAGES},
                    "job_overhead": startup,
                    "patch": patched - finished,
                    "rollout": ready - patched,
                    "total": ready - crossed,
                }
                loops.append(breakdown)

                # The floor of the same loop: a bare Job round trip, the Job's own stage sum,
                # a bare patch of an identical Deployment until its new pod is Ready.
                begun = time.monotonic()
                batch.create_namespaced_job(ns, bare_job(f"ref-{loop}", endpoints.image))  # type: ignore[arg-type]
                bare_running = watcher.wait(("job", f"ref-{loop}", "running"), 120)
                bare_done = watcher.wait(("job", f"ref-{loop}", "finished"), 120)
                begun_patch = time.monotonic()
                apps.patch_namespaced_deployment(
                    REFERENCE, ns, env_patch(uri), _content_type="application/json-patch+json"
                )
                ref_ready = watcher.wait(("ready", REFERENCE, uri), 120)
                floor = {
                    "job_start": bare_running - begun,
                    "bare_job": bare_done - begun - BARE_JOB_SECONDS,
                    "stages": stage_sum,
                    "rollout": ref_ready - begun_patch,
                }
                floor["total"] = floor["bare_job"] + floor["stages"] + floor["rollout"]
                floors.append(floor)
                print(
                    f"# loop {loop}: total {breakdown['total']:.2f}s (floor {floor['total']:.2f}s) "
                    + " ".join(f"{k}={v:.2f}" for k, v in breakdown.items() if k != "total"),
                    flush=True,
                )
        finally:
            watcher.stop.set()
            stop(operator)
        totals = [b["total"] for b in loops]
        floor_totals = [f["total"] for f in floors]
        medians = {k: round(median([b[k] for b in loops]), 3) for k in loops[0]}
        for q in (0.5, 0.95):
            emit(
                "loop_latency",
                f"threshold_to_serving_ready_p{round(q * 100)}",
                ours=percentile(totals, q),
                reference=percentile(floor_totals, q),
                reference_name="bare Job round trip + the Job's stage sum + bare patch -> Ready",
                unit="s",
                target="overhead over the floor < 5 s",
                loops=len(loops),
                records=args.records,
                breakdown_p50=medians,
            )
        for stage, ref_key, ref_name in (
            ("job_start", "job_start", "bare Job create -> container running"),
            ("rollout", "rollout", "bare env patch -> new pod Ready"),
        ):
            emit(
                "loop_latency",
                f"{stage}_p50",
                ours=median([b[stage] for b in loops]),
                reference=median([f[ref_key] for f in floors]),
                reference_name=ref_name,
                unit="s",
                target="within 1 s of the reference",
                loops=len(loops),
            )


if __name__ == "__main__":
    main()
