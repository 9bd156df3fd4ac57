"""End-to-end loop latency on kind: the record that crosses minNewRecords is
produced -> the serving pod running the new model is Ready; p50/p95 over --loops loops, with
the breakdown

  trigger   threshold record flushed -> update Job created (operator lag poll)
  job_start Job created -> its pod's container running (Job controller, kubelet)
  imports   the Job's imports of MLflow and scikit-learn, after its first fetch (a stage)
  champion, snapshot, drain, parse, train, evaluate, log, register, commit
            the Job's own stage times (its result's `stages`)
  job_overhead  container running -> Job finished, minus the stages (interpreter start,
            light imports, exit)
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
import statistics
import time

from bench.common import emit
from bench.operator_support import (
    BARE_JOB_SECONDS,
    BENCH_CLUSTER,
    bare_job,
    emit_percentiles,
    operator_bench,
    policy_document,
)
from inshape_hack.kindtesting import kind_session
from inshape_hack.serving import INITIAL_URI, serving_deployment

SERVING = "serving"
REFERENCE = "serving-ref"
STAGES = (
    "imports",
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


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=5)
    parser.add_argument("--records", type=int, default=5000, help="minNewRecords of each loop")
    args = parser.parse_args()
    with kind_session(BENCH_CLUSTER) as endpoints, operator_bench(endpoints, pods=True) as bench:
        ns, watcher = bench.ns, bench.watcher
        for name in (SERVING, REFERENCE):
            bench.create_deployment(serving_deployment(name, ns, endpoints.image, http_port=8080))
            watcher.wait(("ready", name, INITIAL_URI), 90)
        loops: list[dict[str, float]] = []
        floors: list[dict[str, float]] = []
        previous: str | None = None
        for loop in range(args.loops):
            name = f"loop{loop}"
            topic = f"{ns}-{name}"
            if previous:
                bench.delete_policy(previous)
            bench.opt_in(SERVING, name)
            bench.create_policy(
                policy_document(
                    name,
                    ns,
                    endpoints,
                    topic,
                    target={"deployment": SERVING, "container": "server", "env": "MODEL_URI"},
                    trigger={"minNewRecords": args.records},
                )
            )
            previous = name
            crossed = bench.cross_threshold(name, topic, args.records, seed=loop)

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
            bench.create_job(bare_job(f"ref-{loop}", endpoints.image))
            bare_running = watcher.wait(("job", f"ref-{loop}", "running"), 120)
            bare_done = watcher.wait(("job", f"ref-{loop}", "finished"), 120)
            begun_patch = time.monotonic()
            bench.patch_model_uri(REFERENCE, uri)
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
        totals = [b["total"] for b in loops]
        floor_totals = [f["total"] for f in floors]
        medians = {k: round(median([b[k] for b in loops]), 3) for k in loops[0]}
        emit_percentiles(
            "loop_latency",
            "threshold_to_serving_ready",
            totals,
            floor_totals,
            reference_name="bare Job round trip + the Job's stage sum + bare patch -> Ready",
            unit="s",
            target="<= floor + 1.5 s",
            loops=len(loops),
            records=args.records,
            overhead_p50=round(median(totals) - median(floor_totals), 3),
            floor_p50=round(median(floor_totals), 3),
            floor_stages_p50=round(median([f["stages"] for f in floors]), 3),
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
