"""Job start: seconds from spawning `python -m inshape_jobs update` to its first Kafka fetch.

Real runs against a host broker and `mlflow server`: each run is a new process on a topic of
digits records, under a consumer group of its own (so every run has records to read; from the
second on, a champion too). The Job prints a line as its first fetch request goes out
(start.FIRST_FETCH); this process times spawn -> that line on the child's pipe, and the run
goes on to its end (it must promote or reject). The Job's own figure (its age from
/proc/self/stat as it prints) is reported beside it. Reference, same run: a bare interpreter,
`python -c pass`, spawn -> exit; and, for scale, the imports the Job made before its first
fetch until it read first: `python -c "import inshape_jobs.update"` (scikit-learn, MLflow,
matplotlib, scipy, pandas). Best of N each. Target: <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import digits_lines, emit, load_topic, scratch_broker
from inshape_api.result import decode
from inshape_hack.mlflow_server import MlflowServer
from inshape_jobs.start import FIRST_FETCH

REPO = Path(__file__).resolve().parents[1]
TOPIC = "bench-start"
AGE = re.compile(r"(\d+\.\d+)s after process start")


def spawn_seconds(argv: list[str]) -> float:
    """Spawn -> exit of a process that prints nothing."""
    started = time.monotonic()
    subprocess.run(argv, check=True)
    return time.monotonic() - started


def job_start(policy: dict[str, object], run_key: str) -> tuple[float, float | None]:
    """One real update run: seconds from spawn to its first-fetch line, and its own figure."""
    env = {**os.environ, "INSHAPE_POLICY": json.dumps(policy), "INSHAPE_RUN_KEY": run_key}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inshape_jobs", "update"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: float | None = None
    own: float | None = None
    lines = []
    for line in proc.stdout:
        if seen is None and FIRST_FETCH in line:
            seen = time.monotonic() - started
            age = AGE.search(line)
            own = float(age.group(1)) if age else None
        lines.append(line)
    if proc.wait() != 0 or seen is None:
        raise RuntimeError("update run failed:\n" + "".join(lines[-40:]))
    outcome = decode(lines[-1]).outcome
    if outcome not in ("Promoted", "Rejected"):
        raise RuntimeError(f"update run ended {outcome}:\n" + "".join(lines[-20:]))
    return seen, own


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--runs", type=int, default=5, help="N: update runs (and references)")
    args.add_argument("--records", type=int, default=20_000, help="in the topic")
    opts = args.parse_args()
    document = yaml.safe_load((REPO / "manifests/examples/digits.yaml").read_text())
    with scratch_broker() as broker, tempfile.TemporaryDirectory() as work:
        load_topic(broker, TOPIC, digits_lines(opts.records), 3, Path(work))
        with MlflowServer(Path(work) / "mlflow") as mlflow:
            kafka = document["spec"]["source"]["kafka"]
            kafka["bootstrapServers"], kafka["topic"] = broker.bootstrap_servers, TOPIC
            document["spec"]["mlflow"] = {"trackingUri": mlflow.tracking_uri}
            seen, own, bare, eager = [], [], [], []
            for i in range(opts.runs):  # interleaved: the machine's load hits all alike
                document["metadata"]["name"] = f"start-{i}"  # a group of its own: all to read
                first, age = job_start(document, f"bench-start-{i}")
                seen.append(first)
                if age is not None:
                    own.append(age)
                bare.append(spawn_seconds([sys.executable, "-c", "pass"]))
                eager.append(spawn_seconds([sys.executable, "-c", "import inshape_jobs.update"]))
    emit(
        "job_start",
        "job_start_seconds",
        ours=min(seen),
        reference=min(bare),
        reference_name="bare interpreter start, python -c pass (spawn -> exit)",
        unit="s",
        target="<= 1.5 s",
        runs=opts.runs,
        best_of=opts.runs,
        ours_median=round(statistics.median(seen), 3),
        ours_own_figure=round(min(own), 3) if own else None,
        eager_imports_seconds=round(min(eager), 3),
        records=opts.records,
    )


if __name__ == "__main__":
    main()
