"""`make demo-local`: the update Job alone, without Kubernetes, on real
Kafka and MLflow. Each cycle streams new records, runs one update (the same command the
update Job runs), and prints what happened.

Usage: python -m inshape_hack.demo_local [--cycles N] [--batch N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from inshape_api.names import POLICY_ENV, RUN_KEY_ENV
from inshape_api.result import RunResult, decode
from inshape_api.spec import dumps_policy, parse_policy
from inshape_hack.kafka import KafkaBroker
from inshape_hack.mlflow_server import MlflowServer
from inshape_hack.paths import run_dir
from inshape_jobs.streams import hyperplane_features

FEATURES = 10


def demo_policy(bootstrap: str, tracking_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "inshape.dev/v1alpha1",
        "kind": "ModelUpdatePolicy",
        "metadata": {"name": "hyperplane", "namespace": "demo"},
        "spec": {
            "source": {
                "kafka": {
                    "bootstrapServers": bootstrap,
                    "topic": "hyperplane-events",
                    "features": hyperplane_features(FEATURES),
                    "label": "label",
                }
            },
            "model": {
                "name": "hyperplane-classifier",
                "estimator": "sklearn.linear_model.SGDClassifier",
                "params": {"loss": "log_loss", "random_state": 0},
                "strategy": "incremental",
                "classes": [0, 1],
            },
            "evaluation": {
                "metric": "accuracy",
                "holdoutFraction": 0.2,
                "minImprovement": 0.002,
                "significance": 0.1,
                "floor": 0.6,
            },
            "mlflow": {"trackingUri": tracking_uri, "experiment": "demo-hyperplane"},
        },
    }


def stream(bootstrap: str, count: int, seed: int, bad_fraction: float) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "inshape_jobs",
            "produce",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            "hyperplane-events",
            "--stream",
            "hyperplane",
            "--count",
            str(count),
            "--features",
            str(FEATURES),
            "--drift",
            "0.0003",
            "--noise",
            "0.05",
            "--seed",
            str(seed),
            "--bad-fraction",
            str(bad_fraction),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def update(policy_json: str, run_key: str) -> RunResult:
    env = {**os.environ, POLICY_ENV: policy_json, RUN_KEY_ENV: run_key}
    proc = subprocess.run(
        [sys.executable, "-m", "inshape_jobs", "update"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"update {run_key} failed:\n{proc.stderr[-2000:]}")
    return decode(proc.stdout)


def row(cycle: int, result: RunResult, champion: str) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    return (
        f"{cycle:>5}  {result.outcome:<9} {champion:>8}  {fmt(result.candidateScore)}"
        f"  {fmt(result.championScore)}  {result.records.read:>6}"
        f"  {result.records.rejected:>5}  {result.durationSeconds or 0:>6.1f}s"
        f"  {', '.join(result.reasons) or _short(result.message)}"
    )


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m inshape_hack.demo_local", description=__doc__)
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--bad-fraction", type=float, default=0.02)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave Kafka and MLflow running to browse (Ctrl-C stops them)",
    )
    opts = parser.parse_args()
    root = run_dir() / "demo"
    shutil.rmtree(root, ignore_errors=True)
    broker = KafkaBroker(root / "kafka")
    mlflow = MlflowServer(root / "mlflow")
    print("Starting Kafka (KRaft) and the MLflow server ...", flush=True)
    broker.start()
    mlflow.start()
    try:
        document = demo_policy(broker.bootstrap_servers, mlflow.tracking_uri)
        policy_json = dumps_policy(parse_policy(document))
        print(f"Kafka {broker.bootstrap_servers}   MLflow {mlflow.tracking_uri}\n")
        print("cycle  outcome   champion  candidate champion  records  bad   took  why")
        champion = "-"
        outcomes: dict[str, int] = {}
        for cycle in range(1, opts.cycles + 1):
            stream(broker.bootstrap_servers, opts.batch, seed=cycle, bad_fraction=opts.bad_fraction)
            result = update(policy_json, run_key=f"demo-{cycle}")
            if result.outcome == "Promoted":
                champion = f"v{result.modelVersion}"
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            print(row(cycle, result, champion), flush=True)
        print(
            f"\n{opts.cycles} cycles: "
            + ", ".join(f"{n} {k}" for k, n in outcomes.items())
            + f"; serving {champion} (alias 'champion' of hyperplane-classifier)"
        )
        print(
            f"Every run, its metrics, sample characteristics, plots and lineage are in MLflow:"
            f" {mlflow.tracking_uri} (experiment demo-hyperplane)"
        )
        if opts.keep:
            print("Services kept running; Ctrl-C stops them.", flush=True)
            while True:
                time.sleep(3600)
        else:
            print("Run `make demo-local DEMO_ARGS=--keep` to keep them up and browse.")
    except KeyboardInterrupt:
        pass
    finally:
        mlflow.stop()
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
