"""Memory: peak RSS of one whole update run over 2,000,000 pending records.

Ours: `python -m inshape_jobs update` as its own process (drain in chunks, capped holdout,
MLflow logging included); its peak RSS is the kernel's ru_maxrss for that child. Reference:
the original demo's shape — read every record into Python lists, then build arrays and fit —
measured on a prefix and scaled linearly (the full run would need many GiB). Target: <= 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import digits_lines, emit, load_topic, scratch_broker
from inshape_hack.mlflow_server import MlflowServer

REPO = Path(__file__).resolve().parents[1]
REFERENCE_SCRIPT = """
import json, resource, sys
import numpy as np
from kafka.consumer import KafkaConsumer
from sklearn.linear_model import SGDClassifier
from inshape_jobs.streams import DIGITS_FEATURES
bootstrap, topic, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="reference",
                         auto_offset_reset="earliest", check_crcs=False)
records = []
for message in consumer:
    records.append(json.loads(message.value))
    if len(records) >= limit:
        break
x = np.asarray([[r[n] for n in DIGITS_FEATURES] for r in records], dtype=np.float64)
y = np.asarray([r["label"] for r in records])
SGDClassifier(loss="log_loss").fit(x, y)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def child_peak_rss_mib(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run argv as a child; its own peak RSS (MiB, from wait4), wall time, and output."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed:\n{output[-3000:]}")
    return usage.ru_maxrss / 1024, time.monotonic() - started, output


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--records", type=int, default=2_000_000)
    args.add_argument("--reference-records", type=int, default=200_000)
    opts = args.parse_args()
    policy = yaml.safe_load((REPO / "manifests/examples/digits.yaml").read_text())
    with scratch_broker() as broker, tempfile.TemporaryDirectory() as work:
        workdir = Path(work)
        load_topic(broker, "bench-memory", digits_lines(opts.records), 3, workdir)
        mlflow = MlflowServer(workdir / "mlflow")
        mlflow.start()
        try:
            policy["spec"]["source"]["kafka"]["bootstrapServers"] = broker.bootstrap_servers
            policy["spec"]["source"]["kafka"]["topic"] = "bench-memory"
            policy["spec"]["mlflow"]["trackingUri"] = mlflow.tracking_uri
            env = {
                **os.environ,
                "INSHAPE_POLICY": json.dumps(policy),
                "INSHAPE_RUN_KEY": "bench-memory-1",
            }
            ref_peak, _, _ = child_peak_rss_mib(
                [
                    sys.executable,
                    "-c",
                    REFERENCE_SCRIPT,
                    broker.bootstrap_servers,
                    "bench-memory",
                    str(opts.reference_records),
                ],
                env,
            )
            ours_peak, ours_seconds, output = child_peak_rss_mib(
                [sys.executable, "-m", "inshape_jobs", "update"], env
            )
        finally:
            mlflow.stop()
    result = json.loads(output.strip().splitlines()[-1])
    assert result["records"]["read"] == opts.records, result["records"]
    # The Job logs once which record decoder it uses (compiled, or msgspec and why).
    decoder = next(
        (
            line.split("Record decoder: ", 1)[1]
            for line in output.splitlines()
            if "Record decoder: " in line
        ),
        "unknown",
    )
    scaled_reference = ref_peak * opts.records / opts.reference_records
    emit(
        "update_memory",
        "peak_rss",
        ours=ours_peak,
        reference=scaled_reference,
        reference_name=f"read-all-then-fit on {opts.reference_records} records, scaled",
        unit="MiB",
        target="ours <= 512",
        records=opts.records,
        ours_seconds=round(ours_seconds, 1),
        reference_measured_mib=round(ref_peak, 1),
        outcome=result["outcome"],
        decoder=decoder,
        drain_parse_seconds=round(
            sum(result.get("stages", {}).get(k, 0) for k in ("drain", "parse")), 1
        ),
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
