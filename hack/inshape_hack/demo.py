"""`make demo`: inshape on the local cluster, end to end, in one command.

Starts (or reuses) the local cluster, `helm install`s the chart with the example policy on
the drifting hyperplane stream, then streams a batch of records per cycle and shows each
update as the operator runs it: the Job, its outcome, the champion version and metric, and
which model the serving Deployment points at. Ends after a few promotions with where to
look next. `make demo-down` removes the release and stops the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inshape_hack.cluster import Endpoints, pid_alive, read_state
from inshape_hack.paths import REPO_ROOT, run_dir
from inshape_hack.ports import free_port

NAMESPACE = "inshape-demo"
RELEASE = "inshape"
POLICY = "hyperplane"
SERVING = "hyperplane-serving"
TOPIC = "demo-hyperplane-events"
MODEL = "demo-hyperplane"


class Cluster:
    """kubectl and helm bound to the running local cluster."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.env = {
            **os.environ,
            **endpoints.env(),
            "KUBECACHEDIR": str(Path(endpoints.kubeconfig).parent / "kubectl-cache"),
        }

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self._run([self.endpoints.kubectl, "-n", NAMESPACE, *args], check)

    def helm(self, *args: str) -> str:
        return self._run([self.endpoints.helm, "-n", NAMESPACE, *args], check=True)

    def helm_ok(self, *args: str) -> bool:
        argv = [self.endpoints.helm, "-n", NAMESPACE, *args]
        return subprocess.run(argv, capture_output=True, env=self.env, check=False).returncode == 0

    def get(self, *args: str) -> dict[str, Any]:
        out = self.kubectl("get", *args, "-o", "json", check=False)
        try:
            return dict(json.loads(out))
        except json.JSONDecodeError:
            return {}

    def _run(self, argv: list[str], check: bool) -> str:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=300, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} ... failed:\n{proc.stderr}{proc.stdout}")
        return proc.stdout


def ensure_cluster() -> Endpoints:
    state_dir = run_dir() / "cluster"
    state = read_state(state_dir)
    if state is None or not pid_alive(int(state["supervisor_pid"])):
        print(
            "Starting the local cluster (first time: builds the Kubernetes binaries) ...",
            flush=True,
        )
        subprocess.run([sys.executable, "-m", "inshape_hack.cluster", "up"], check=True)
        state = read_state(state_dir)
    assert state is not None
    return Endpoints(**state["endpoints"])


def install(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    values = {
        "kafka.bootstrapServers": cluster.endpoints.kafka_bootstrap,
        "mlflow.external.uri": cluster.endpoints.mlflow_tracking_uri,
        "example.policy": "regressor",
        "example.topic": TOPIC,
        "example.modelName": MODEL,
        "example.minNewRecords": 2000,
        "operator.pollSeconds": 2,
        # Pods are host processes here: ports nobody else on the machine uses.
        "operator.healthPort": free_port(),
        "operator.metricsPort": free_port(),
    }
    sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    chart = str(REPO_ROOT / "charts" / "inshape")
    installed = bool(cluster.helm_ok("status", RELEASE))
    print(f"helm upgrade --install {RELEASE} charts/inshape -n {NAMESPACE} ...", flush=True)
    # The example policy needs its CRD installed first (Helm maps every kind up front), so a
    # first install leaves it out and an upgrade adds it. A re-run keeps it in throughout:
    # dropping it would delete the policy, its status and its Jobs.
    first = ["--set", f"example.enabled={'true' if installed else 'false'}"]
    # --take-ownership: the CRD may be there already from `kubectl apply -f manifests/crd`.
    cluster.helm("upgrade", "--install", "--take-ownership", RELEASE, chart, *sets, *first)
    if not installed:
        cluster.helm("upgrade", RELEASE, chart, "--reuse-values", "--set", "example.enabled=true")


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(1)


def operator_running(cluster: Cluster) -> bool:
    pods = cluster.get("pods", "-l", "app.kubernetes.io/component=operator").get("items", [])
    return any(p.get("status", {}).get("phase") == "Running" for p in pods)


def stream(cluster: Cluster, count: int, seed: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "inshape_jobs", "produce",
         "--bootstrap-servers", cluster.endpoints.kafka_bootstrap, "--topic", TOPIC,
         "--stream", "hyperplane", "--count", str(count), "--features", "10",
         "--drift", "0.0005", "--noise", "0.05", "--seed", str(seed), "--bad-fraction", "0.01"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def serving_uri(cluster: Cluster) -> str:
    spec = cluster.get("deployment", SERVING).get("spec", {})
    for container in spec.get("template", {}).get("spec", {}).get("containers", []):
        for env in container.get("env") or []:
            if env["name"] == "MODEL_URI":
                return str(env.get("value", ""))
    return ""


def finished_after(cluster: Cluster, job: str | None) -> dict[str, Any] | None:
    """The policy's status once a run other than `job` has finished, else None."""
    status = cluster.get("mup", POLICY).get("status") or {}
    last = (status.get("lastRun") or {}).get("job")
    return status if last and last != job else None


def row(status: dict[str, Any], uri: str) -> str:
    last = status.get("lastRun") or {}
    champion = status.get("champion") or {}
    metric = champion.get("metric")
    records = last.get("records") or {}
    return (
        f"{time.strftime('%H:%M:%S')}  {POLICY:<10} {last.get('job', '-'):<24} "
        f"{last.get('outcome', '-'):<9} v{champion.get('version', '-'):<4} "
        f"{'-' if metric is None else f'{metric:.4f}':<8} {records.get('read', '-')!s:<7}"
        f" {uri}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m inshape_hack.demo", description=__doc__)
    parser.add_argument("--promotions", type=int, default=3, help="stop after this many")
    parser.add_argument("--cycles", type=int, default=8, help="at most this many batches")
    parser.add_argument("--batch", type=int, default=3000, help="records per batch")
    opts = parser.parse_args()

    endpoints = ensure_cluster()
    cluster = Cluster(endpoints)
    install(cluster)
    wait(lambda: operator_running(cluster), 180, "the operator pod runs")
    print(f"Operator running; streaming {opts.batch} drifting records per cycle into {TOPIC}\n")
    print(
        "time      policy     job                      outcome   champion metric   records"
        " serving MODEL_URI"
    )
    promotions = 0
    seen_job = (cluster.get("mup", POLICY).get("status") or {}).get("lastRun", {}).get("job")
    for cycle in range(1, opts.cycles + 1):
        stream(cluster, opts.batch, seed=cycle)

        status = wait(
            lambda after=seen_job: finished_after(cluster, after),
            300,
            f"update run {cycle} finishes",
        )
        seen_job = status["lastRun"]["job"]
        if status["lastRun"].get("outcome") == "Promoted":
            promotions += 1
            champion = status["champion"]["uri"]
            wait(lambda c=champion: serving_uri(cluster) == c, 60, "the Deployment rolls")
        print(row(status, serving_uri(cluster)), flush=True)
        if promotions >= opts.promotions:
            break

    spec = cluster.get("mup", POLICY).get("spec", {})
    experiment = spec.get("mlflow", {}).get("experiment") or f"{NAMESPACE}-{POLICY}"
    print(f"""
{promotions} promotion(s). The serving Deployment {SERVING} follows the champion.
Where to look next:
  MLflow UI (runs, metrics, sample characteristics, plots, lineage, model versions):
      {endpoints.mlflow_tracking_uri}   experiment {experiment}, model {MODEL}
  First point kubectl and helm at the cluster:
             eval "$(.venv/bin/python -m inshape_hack.cluster env)"
  Policies:  kubectl -n {NAMESPACE} get modelupdatepolicies
             kubectl -n {NAMESPACE} describe mup {POLICY}
  Jobs:      kubectl -n {NAMESPACE} get jobs
  Logs:      kubectl -n {NAMESPACE} logs job/{seen_job}
  More data: make demo  (again; the cluster and release are reused)   Clean up: make demo-down""")
    return 0


def down() -> int:
    state = read_state(run_dir() / "cluster")
    if state is not None and pid_alive(int(state["supervisor_pid"])):
        cluster = Cluster(Endpoints(**state["endpoints"]))
        cluster._run([cluster.endpoints.helm, "-n", NAMESPACE, "uninstall", RELEASE], check=False)
    return subprocess.run(
        [sys.executable, "-m", "inshape_hack.cluster", "down"], check=False
    ).returncode


if __name__ == "__main__":
    raise SystemExit(down() if sys.argv[1:2] == ["down"] else main())
