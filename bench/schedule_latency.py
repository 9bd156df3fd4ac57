"""Schedules on time: how late after its cron slot an update Job is created.

Policies with `schedule: "* * * * *"` (a slot every minute) and a lag threshold never reached,
on an operator polling only every --poll-seconds (the chart's default, 30 s): a Job can only
start on time if the operator wakes for the slot itself. Each policy's topic holds a few
records (a slot with nothing pending is skipped). The update image is one the node does not
have, so each Job fails at its deadline (30 s) and the next slot starts the next one
(failure back-off 0): one Job per policy per minute, without training load.

Lateness is the time a Job is first listed by the bench (every 0.2 s) minus its slot, for our
Jobs and, as the reference from the same run, for a Kubernetes CronJob on the same schedule in
the same namespace (the cluster's own cron controller). Target: p95 <= 2 s, whatever the
poll interval.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes

from bench.operator_support import (
    BENCH_CLUSTER,
    bench_namespace,
    create_policy,
    emit_percentiles,
    operator,
    policy_document,
)
from inshape_hack.kindtesting import KindEnv, kind_session
from inshape_hack.kubeconfig import api_client
from inshape_jobs.produce import encoded, produce
from inshape_jobs.streams import digits_records

CRONJOB = "reference-cron"
SLOT_SECONDS = 60
POLL_SECONDS = 0.2


def lateness(received: float) -> float:
    """Seconds from the latest minute boundary to `received` (a wall-clock time)."""
    return received - (received // SLOT_SECONDS) * SLOT_SECONDS


def cron_job(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": CRONJOB},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {
                "spec": {
                    "activeDeadlineSeconds": 30,
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "c", "image": image, "imagePullPolicy": "Never"}
                            ],
                        }
                    },
                }
            },
        },
    }


def watch_jobs(
    client: kubernetes.client.ApiClient, ns: str, seen: dict[str, float], stop: threading.Event
) -> None:
    """Record when each Job is first listed (wall clock; listed every POLL_SECONDS)."""
    batch = kubernetes.client.BatchV1Api(client)
    while not stop.is_set():
        for job in batch.list_namespaced_job(ns).items:
            if job.metadata is not None and job.metadata.name:
                seen.setdefault(job.metadata.name, time.time())
        stop.wait(POLL_SECONDS)


def run(endpoints: KindEnv, work: Path, policies: int, slots: int, poll: float) -> dict[str, float]:
    ns = bench_namespace(endpoints, prefix="cron")
    client = api_client(endpoints.kubeconfig)
    missing_image = "localhost/inshape/absent:bench"
    for index in range(policies):
        topic = f"{ns}-t{index}"
        records = encoded(digits_records(seed=index), 0.0, seed=index)
        produce(endpoints.kafka_bootstrap, topic, records, count=20, partitions=1, quiet=True)
        document = policy_document(
            f"p{index}",
            ns,
            endpoints,
            topic,
            trigger={"minNewRecords": 1_000_000, "schedule": "* * * * *"},
            job={"activeDeadlineSeconds": 30, "backoffLimit": 0},
        )
        document["spec"].pop("target", None)
        create_policy(client, document)
    endpoints.kubectl(ns)("apply", "-f", "-", stdin=json.dumps(cron_job(missing_image)))
    seen: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_jobs, args=(client, ns, seen, stop), daemon=True)
    watcher.start()
    env = {
        "INSHAPE_NAMESPACES": ns,
        "INSHAPE_POLL_SECONDS": str(poll),
        "INSHAPE_FAILURE_BACKOFF_SECONDS": "0",
        "INSHAPE_JOB_IMAGE": missing_image,
    }
    process = operator(endpoints, work / "operator.log", env)
    process.start()
    try:
        now = datetime.now(UTC).timestamp()
        first_slot = (now // SLOT_SECONDS + 1) * SLOT_SECONDS
        time.sleep(max(0.0, first_slot + slots * SLOT_SECONDS + 15 - time.time()))
    finally:
        process.stop()
        stop.set()
        watcher.join(timeout=30)  # no client thread left running at interpreter exit
    return {name: at for name, at in seen.items() if at >= first_slot - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", type=int, default=10)
    parser.add_argument("--slots", type=int, default=3, help="minute slots measured")
    parser.add_argument("--poll-seconds", type=float, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inshape-bench-cron-"))
    with kind_session(BENCH_CLUSTER) as endpoints:
        seen = run(endpoints, work, args.policies, args.slots, args.poll_seconds)
    ours = [lateness(at) for name, at in seen.items() if not name.startswith(CRONJOB)]
    reference = [lateness(at) for name, at in seen.items() if name.startswith(CRONJOB)]
    if not ours or not reference:
        raise SystemExit(f"no Jobs seen (ours {len(ours)}, CronJob {len(reference)}): {work}")
    emit_percentiles(
        "schedule_latency",
        "job_after_slot_seconds",
        ours,
        reference,
        reference_name="Kubernetes CronJob, same schedule, same cluster",
        unit="s",
        target="p95 <= 2 s",
        poll_seconds=args.poll_seconds,
        jobs=len(ours),
    )


if __name__ == "__main__":
    main()
