"""Operator latency on the local cluster: (a) lag threshold reached -> update Job created, and
(b) update Job finished -> serving Deployment patched; p50/p95 over --runs runs.

Each run is its own policy (first run: no champion, so the real update Job promotes) with its
own topic and Deployment, run one after another. Times are taken from watch events in this
process: (a) from the moment the record crossing minNewRecords is flushed to Kafka (once the
operator has reported the ones before it pending) to the Job's ADDED event; (b) from the Job's
Complete event to the Deployment's event carrying the new MODEL_URI. The operator polls lag
every INSHAPE_POLL_SECONDS (1 here) and reacts to Job events.
Reference, same run: the Kubernetes floor, i.e. (a) a bare Job create seen by the watch, (b) a
plain JSON patch of a Deployment seen by the watch. Target: p95 < 2 s for each.
"""

from __future__ import annotations

import argparse
import time

from bench.operator_support import (
    BENCH_CLUSTER,
    bare_job,
    emit_percentiles,
    operator_bench,
    policy_document,
)
from inshape_hack.kindtesting import kind_session
from inshape_hack.serving import serving_deployment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    created: list[float] = []
    patched: list[float] = []
    ref_create: list[float] = []
    ref_patch: list[float] = []
    with kind_session(BENCH_CLUSTER) as endpoints, operator_bench(endpoints) as bench:
        ns, watcher = bench.ns, bench.watcher
        for run in range(args.runs):
            name = f"p{run}"
            topic = f"{ns}-{name}"
            bench.create_deployment(
                serving_deployment(name, ns, endpoints.image, replicas=0, policy=name)
            )
            bench.create_policy(
                policy_document(name, ns, endpoints, topic, target={"deployment": name})
            )
            reached = bench.cross_threshold(name, topic, 300, seed=run, partitions=1)
            job = f"{name}-update-1"
            created.append(watcher.wait(("job", job, "added"), 30) - reached)
            done = watcher.wait(("job", job, "finished"), 600)
            uri = f"models:/{ns}-{name}/1"
            patched.append(watcher.wait(("deployment", name, uri), 60) - done)

            # The floor, measured the same way: a bare create and a bare patch.
            started = time.monotonic()
            bench.create_job(bare_job(f"ref-{run}", endpoints.image))
            ref_create.append(watcher.wait(("job", f"ref-{run}", "added"), 30) - started)
            reference = f"ref-{run}"
            bench.create_deployment(serving_deployment(reference, ns, endpoints.image, replicas=0))
            started = time.monotonic()
            bench.patch_model_uri(reference, uri)
            ref_patch.append(watcher.wait(("deployment", reference, uri), 30) - started)
            print(
                f"# run {run}: created {created[-1]:.3f}s patched {patched[-1]:.3f}s",
                flush=True,
            )
        for metric, ours, ref, ref_name in (
            ("threshold_to_job_created", created, ref_create, "bare Job create -> watch event"),
            ("job_finished_to_deployment_patched", patched, ref_patch, "bare patch -> watch event"),
        ):
            emit_percentiles(
                "operator_latency",
                metric,
                ours,
                ref,
                reference_name=ref_name,
                unit="s",
                target="p95 < 2 s",
                runs=len(ours),
                poll_seconds=1,
            )


if __name__ == "__main__":
    main()
