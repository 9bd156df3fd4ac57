"""`make demo`: inshape on a kind cluster, end to end, in one command.

Creates (or reuses) the kind cluster `inshape` (Docker, kind and the node image are made
ready first: kindcluster.py), builds and loads the project's image and the Kafka broker's,
runs Kafka in the demo namespace, `helm install`s the chart (its own MLflow, the operator,
the example policy on the drifting hyperplane stream) into a namespace that enforces Pod
Security `restricted`, then streams a batch of records per cycle and shows each update as
the operator runs it: the Job, its outcome, the champion version and metric, and which model
the serving Deployment points at. Ends after a few promotions with where to look next.
`make demo-down` deletes the cluster.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from inshape_hack import gotools, images, kafka_kind, kindcluster
from inshape_hack.docker import stop_own_daemon
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.paths import REPO_ROOT
from inshape_hack.podsecurity import ENFORCE_RESTRICTED
from inshape_hack.polling import wait_until

CLUSTER = kindcluster.DEFAULT_CLUSTER
NAMESPACE = "inshape-demo"
RELEASE = "inshape"
POLICY = "hyperplane"
SERVING = "hyperplane-serving"
TOPIC = "demo-hyperplane-events"
MODEL = "inshape-demo-hyperplane"


@dataclass(frozen=True)
class Cluster:
    """kubectl and helm bound to the demo's kind cluster and namespace."""

    kubectl_runner: KubectlRunner
    helm_binary: Path
    image: str
    kafka: kafka_kind.KafkaOnKind

    def kubectl(self, *args: str, check: bool = True) -> str:
        try:
            return self.kubectl_runner(*args, check=check)
        except AssertionError as failed:
            raise RuntimeError(str(failed)) from None

    def helm(self, *args: str) -> str:
        return self._helm(*args, check=True).stdout

    def helm_ok(self, *args: str) -> bool:
        return self._helm(*args, check=False).returncode == 0

    def _helm(self, *args: str, check: bool) -> subprocess.CompletedProcess[str]:
        argv = [str(self.helm_binary), "-n", NAMESPACE, *args]
        env = self.kubectl_runner.env()
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=600, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args[:3])} ... failed:\n{proc.stderr}{proc.stdout}")
        return proc

    def get(self, *args: str) -> dict[str, Any]:
        return self.kubectl_runner.json("get", *args)


def ensure_cluster() -> Cluster:
    """The kind cluster with both images loaded and Kafka running in the demo namespace."""
    started = time.monotonic()
    print("Preparing Docker, kind and the node image (first time: builds them) ...", flush=True)
    tooling = kindcluster.prepare_kind()
    cluster = kindcluster.up(tooling, CLUSTER)
    print(f"kind cluster {CLUSTER} up ({time.monotonic() - started:.0f}s); images ...", flush=True)
    image = images.ensure_project_image(tooling.docker)
    kafka_image = kafka_kind.ensure_kafka_image(tooling.docker)
    for name in (image, kafka_image):
        kindcluster.load_image(tooling, name, CLUSTER)
    admin = KubectlRunner(tooling.kubectl, cluster.kubeconfig_path)
    if not admin.json("get", "namespace", NAMESPACE):
        admin("create", "namespace", NAMESPACE)
    admin("label", "--overwrite", "namespace", NAMESPACE, ENFORCE_RESTRICTED)
    node_ip = kindcluster.node_ip(tooling, CLUSTER)
    kafka = kafka_kind.deploy_kafka(admin, NAMESPACE, kafka_image, node_ip)
    helm = gotools.build(gotools.tool_named("helm"), quiet=True)
    print(f"Kafka ready ({time.monotonic() - started:.0f}s since start)", flush=True)
    return Cluster(admin.in_namespace(NAMESPACE), helm, image, kafka)


def install(cluster: Cluster) -> None:
    repository, tag = cluster.image.rsplit(":", 1)
    values = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",
        "kafka.bootstrapServers": cluster.kafka.in_cluster_bootstrap,
        "example.policy": "regressor",
        "example.topic": TOPIC,
        "example.modelName": MODEL,
        "example.minNewRecords": 2000,
        "operator.pollSeconds": 2,
    }
    sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    chart = str(REPO_ROOT / "charts" / "inshape")
    print(f"helm upgrade --install {RELEASE} charts/inshape -n {NAMESPACE} ...", flush=True)
    # One command creates the CRD and the example policy (a post-install hook while the CRD is
    # new; see charts/inshape/templates/example.yaml). --take-ownership: the CRD may be there
    # already from `kubectl apply -f manifests/crd`.
    example = ["--set", "example.enabled=true"]
    cluster.helm("upgrade", "--install", "--take-ownership", RELEASE, chart, *sets, *example)


def operator_running(cluster: Cluster) -> bool:
    pods = cluster.get("pods", "-l", "app.kubernetes.io/component=operator").get("items", [])
    return any(p.get("status", {}).get("phase") == "Running" for p in pods)


def stream(cluster: Cluster, count: int, seed: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "inshape_jobs", "produce",
         "--bootstrap-servers", cluster.kafka.host_bootstrap, "--topic", TOPIC,
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


def serving_is(cluster: Cluster, uri: str) -> bool:
    return serving_uri(cluster) == uri


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

    cluster = ensure_cluster()
    install(cluster)
    wait_until(lambda: operator_running(cluster), 300, "the operator pod runs", interval=1)
    print(f"Operator running; streaming {opts.batch} drifting records per cycle into {TOPIC}\n")
    print(
        "time      policy     job                      outcome   champion metric   records"
        " serving MODEL_URI"
    )
    promotions = 0
    seen_job = (cluster.get("mup", POLICY).get("status") or {}).get("lastRun", {}).get("job")
    for cycle in range(1, opts.cycles + 1):
        stream(cluster, opts.batch, seed=cycle)

        status = wait_until(
            partial(finished_after, cluster, seen_job),
            300,
            f"update run {cycle} finishes",
            interval=1,
        )
        seen_job = status["lastRun"]["job"]
        if status["lastRun"].get("outcome") == "Promoted":
            promotions += 1
            champion = status["champion"]["uri"]
            rolled = partial(serving_is, cluster, champion)
            wait_until(rolled, 60, "the Deployment rolls", interval=1)
        print(row(status, serving_uri(cluster)), flush=True)
        if promotions >= opts.promotions:
            break

    spec = cluster.get("mup", POLICY).get("spec", {})
    experiment = spec.get("mlflow", {}).get("experiment") or f"{NAMESPACE}-{POLICY}"
    print(f"""
{promotions} promotion(s). The serving Deployment {SERVING} follows the champion.
Where to look next:
  First point kubectl, helm and docker at the cluster:
             eval "$(make -s env)"
  MLflow UI (runs, metrics, sample characteristics, plots, lineage, model versions):
             kubectl -n {NAMESPACE} port-forward svc/inshape-mlflow 5000
             then http://localhost:5000   experiment {experiment}, model {MODEL}
  Pods:      kubectl get pods -A -o wide
             kubectl get pods -A -o custom-columns=POD:.metadata.name,\\
CONTAINER:.status.containerStatuses[0].containerID
  Policies:  kubectl -n {NAMESPACE} get modelupdatepolicies
             kubectl -n {NAMESPACE} describe mup {POLICY}
  Jobs:      kubectl -n {NAMESPACE} get jobs
  Logs:      kubectl -n {NAMESPACE} logs job/{seen_job}
  More data: make demo  (again; the cluster and release are reused)   Clean up: make demo-down""")
    return 0


def down() -> int:
    """Delete the demo's kind cluster; stop the project's own Docker daemon if nothing else
    of the project runs on it."""
    tooling = kindcluster.prepare_kind(with_node_image=False)
    if kindcluster.cluster_exists(tooling, CLUSTER):
        kindcluster.kind_cluster(tooling, CLUSTER).delete()
    kindcluster.kubeconfig_path(CLUSTER).unlink(missing_ok=True)
    if tooling.docker.owned and not kindcluster.clusters(tooling):
        stop_own_daemon()
        print("Stopped the project's Docker daemon (its images stay cached)")
    return 0


if __name__ == "__main__":
    raise SystemExit(down() if sys.argv[1:2] == ["down"] else main())
