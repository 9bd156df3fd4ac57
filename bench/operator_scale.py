"""Operator footprint: --policies policies on one operator; RSS and average CPU while it keeps
them reconciled (lag read from Kafka every INSHAPE_POLL_SECONDS, status written when it changes).

The policies share one topic (each has its own consumer group) and a threshold never reached,
so no Jobs start: this is the steady state. After all are created and a settle period, CPU is
averaged over --window seconds and RSS sampled at the end. Reference, same run: an idle Kopf
operator on the same CRD with no-op handlers and the same timer interval. Target: <= 300 MiB,
<= 0.5 core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import emit
from bench.operator_support import (
    BENCH_CLUSTER,
    bench_namespace,
    create_policy,
    operator,
    policy_document,
)
from inshape_hack.kindtesting import KindEnv, kind_session
from inshape_hack.kubeconfig import api_client
from inshape_jobs.produce import encoded, produce
from inshape_jobs.streams import digits_records

MIB = 1024 * 1024


def tree_usage(pid: int, window: float) -> tuple[float, float]:
    """(RSS MiB at the end, average cores over the window) of a process and its children."""
    root = psutil.Process(pid)

    def cpu() -> float:
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    before, started = cpu(), time.monotonic()
    time.sleep(window)
    cores = (cpu() - before) / (time.monotonic() - started)
    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / MIB
    return rss, cores


def measure(
    endpoints: KindEnv,
    ns: str,
    work: Path,
    *,
    idle: bool,
    poll: float,
    settle: float,
    window: float,
) -> tuple[float, float]:
    env = {"INSHAPE_NAMESPACES": ns, "INSHAPE_POLL_SECONDS": str(poll), "INTERVAL": str(poll)}
    process = operator(endpoints, work / f"operator-{'idle' if idle else 'ours'}.log", env, idle)
    process.start()
    try:
        time.sleep(settle)
        return tree_usage(process.pid, window)
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", type=int, default=500)
    parser.add_argument("--poll-seconds", type=float, default=30)
    parser.add_argument("--settle", type=float, default=45)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inshape-bench-scale-"))
    with kind_session(BENCH_CLUSTER) as endpoints:
        ns = bench_namespace(endpoints, prefix="scale")
        topic = f"{ns}-events"
        produce(
            endpoints.kafka_bootstrap,
            topic,
            encoded(digits_records(seed=0), 0.0, seed=0),
            count=100,
            partitions=3,
            quiet=True,
        )
        client = api_client(endpoints.kubeconfig)
        for index in range(args.policies):
            document = policy_document(
                f"p{index}", ns, endpoints, topic, trigger={"minNewRecords": 1_000_000_000}
            )
            document["spec"].pop("target", None)
            create_policy(client, document)
        timing = {"poll": args.poll_seconds, "settle": args.settle, "window": args.window}
        ours = measure(endpoints, ns, work, idle=False, **timing)
        reference = measure(endpoints, ns, work, idle=True, **timing)
    extra = {"policies": args.policies, "poll_seconds": args.poll_seconds, "window_s": args.window}
    for metric, index, unit, target in (
        ("rss", 0, "MiB", "<= 300 MiB"),
        ("cpu", 1, "cores", "<= 0.5 core"),
    ):
        emit(
            "operator_scale",
            metric,
            ours=ours[index],
            reference=reference[index],
            reference_name="idle kopf operator, no-op handlers",
            unit=unit,
            target=target,
            **extra,
        )


if __name__ == "__main__":
    main()
