"""Fault tests on kind, with real-runtime faults: the operator in its pod (rendered from the
chart), update Jobs as containers, Kafka and MLflow as pods, with one thing broken mid-run (a
container SIGKILLed on the node, a pod deleted, a Deployment scaled to zero). Every test ends
with the same two audits:

- nothing lost: the MLflow runs of the policy's experiment whose results were accepted
  (finished, outcome Promoted/Rejected/Skipped) tile [0, end) of every partition with their
  [newFrom, to) lineage ranges, with no gap and no overlap; their valid + rejected counts add
  up to what was produced; the group's committed offsets stand at the end offsets;
- serving always has a model: every value the Deployment's MODEL_URI took (watched, not
  sampled) is the initial one until a first promotion, then a models:/ URI in the registry.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from inshape_api.names import OUTCOME_TAG, RUN_KEY_TAG
from inshape_api.spec import Policy
from inshape_hack import kafka_kind, kind_mlflow
from inshape_hack.kafka_kind import KafkaOnKind
from inshape_hack.kindtesting import KindEnv, eventually
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_hack.serving import INITIAL_URI, pod_ready
from inshape_jobs.produce import encoded
from inshape_jobs.streams import MALFORMED_KINDS, digits_records, malformed_record
from inshape_jobs.topics import ensure_topic
from tests.chart.conftest import render_text
from tests.integration.helpers import committed
from tests.operator.conftest import SERVING, World, running_world

ACCEPTED = ("Promoted", "Rejected", "Skipped")
LINEAGE = "lineage/offsets.json"


# --- the world: namespace, CRD, serving Deployment(s), the operator -------------------------


class OperatorPod:
    """The operator as the chart runs it (its Deployment, ServiceAccount and namespaced RBAC,
    rendered from the chart) in the test's namespace. `kill()` scales it to zero and deletes
    its pod at once (no grace: as a crash), `start()` scales it back to one."""

    def __init__(self, env: KindEnv, kubectl: Kubectl, namespace: str, **values: object) -> None:
        repository, tag = env.image.rsplit(":", 1)
        self.kubectl = kubectl
        self.manifest = render_text(
            {
                "image.repository": repository,
                "image.tag": tag,
                "image.pullPolicy": "Never",
                "operator.pollSeconds": 1,
                "operator.job.ttlSecondsAfterFinished": 600,
                "mlflow.external.uri": env.mlflow_tracking_uri,
                **values,
            },
            release="inshape",
            namespace=namespace,
            extra=[
                *("--show-only", "templates/serviceaccount.yaml"),
                *("--show-only", "templates/rbac.yaml"),
                *("--show-only", "templates/operator.yaml"),
            ],
        )
        self.applied = False

    def start(self) -> None:
        if not self.applied:
            self.kubectl("apply", "-f", "-", stdin=self.manifest)
            self.applied = True
        self.kubectl("scale", "deployment/inshape-operator", "--replicas=1")
        eventually(lambda: self.running() is not None, 120, "the operator pod runs")

    def running(self) -> str | None:
        pods = self.kubectl.json("get", "pods", "-l", "app.kubernetes.io/component=operator")
        ready = [pod["metadata"]["name"] for pod in pods.get("items", []) if pod_ready(pod)]
        return str(ready[0]) if ready else None

    def kill(self) -> None:
        self.kubectl("scale", "deployment/inshape-operator", "--replicas=0")
        selector = "app.kubernetes.io/component=operator"
        self.kubectl("delete", "pods", "-l", selector, "--grace-period=0", "--force", check=False)
        eventually(
            lambda: not self.kubectl.json("get", "pods", "-l", selector).get("items"),
            60,
            "the operator pod is gone",
        )

    def stop(self) -> None:
        self.kubectl("scale", "deployment/inshape-operator", "--replicas=0", check=False)

    def output(self) -> str:
        return self.kubectl("logs", "deployment/inshape-operator", "--tail=200", check=False)


class FaultWorld(World):
    def pods(self, job: str) -> list[dict[str, Any]]:
        items = json.loads(self.kubectl("get", "pods", "-l", f"job-name={job}", "-o", "json"))
        return list(items["items"])

    def job(self, name: str) -> dict[str, Any] | None:
        out = self.kubectl("get", "job", name, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def outcome(self, name: str) -> str | None:
        return (self.status(name).get("lastRun") or {}).get("outcome")


@pytest.fixture
def world(kind_env: KindEnv, namespace: str, kubectl: Kubectl) -> Iterator[FaultWorld]:
    # A failed run is retried after 15 s rather than the default back-off: the MLflow test
    # waits for the run after the failure.
    operator = OperatorPod(kind_env, kubectl, namespace, **{"operator.failureBackoffSeconds": 15})
    with running_world(FaultWorld, kind_env, namespace, kubectl, operator) as w:
        yield w


@dataclass(frozen=True)
class Restartable:
    """A workload of the test's own (its broker, its MLflow), to stop and start again."""

    kubectl: Kubectl
    kind: str  # statefulset | deployment
    name: str

    def stop(self) -> None:
        """Scale to zero and delete its pod at once: the server is gone, as in a crash."""
        self.kubectl("scale", f"{self.kind}/{self.name}", "--replicas=0")
        selector = f"app.kubernetes.io/name={self.name}"
        self.kubectl("delete", "pods", "-l", selector, "--grace-period=0", "--force", check=False)
        eventually(
            lambda: not self.kubectl.json("get", "pods", "-l", selector).get("items"),
            60,
            f"the {self.name} pod is gone",
        )

    def start(self) -> None:
        """Scale back to one; the same Service address and volume, so clients reconnect."""
        self.kubectl("scale", f"{self.kind}/{self.name}", "--replicas=1")

        def ready() -> bool:
            status = self.kubectl.json("get", self.kind, self.name).get("status", {})
            return int(status.get("readyReplicas") or 0) >= 1

        eventually(ready, 300, f"{self.kind} {self.name} is ready again")


@pytest.fixture
def own_kafka(
    kind_env: KindEnv, namespace: str, kubectl: Kubectl
) -> tuple[KafkaOnKind, Restartable]:
    """A broker of the test's own, in its namespace: the shared one must stay up."""
    admin = kind_env.kubectl()
    kafka = kafka_kind.deploy_kafka(admin, namespace, kind_env.kafka_image, kind_env.node_ip)
    return kafka, Restartable(kubectl, "statefulset", "kafka")


@pytest.fixture
def own_mlflow(kind_env: KindEnv, namespace: str, kubectl: Kubectl) -> tuple[str, Restartable]:
    """An MLflow server of the test's own, in its namespace: its URI, and its Deployment."""
    server = kind_mlflow.deploy_mlflow(
        kind_env.kubectl(), namespace, kind_env.node_ip, kind_env.image
    )
    return server.uri, Restartable(kubectl, "deployment", kind_mlflow.NAME)


# --- data ------------------------------------------------------------------------------------


def kcat_fill(
    bootstrap: str, topic: str, lines: Iterator[bytes], workdir: Path, partitions: int = 3
) -> int:
    """Produce lines fast with kcat (kafka-python's producer takes ~10 s per 100k records)."""
    ensure_topic(bootstrap, topic, partitions)
    path = workdir / f"{topic}-{time.monotonic_ns()}.jsonl"
    count = 0
    with path.open("wb") as out:
        for line in lines:
            assert b"\n" not in line
            out.write(line + b"\n")
            count += 1
    subprocess.run(
        [
            *("kcat", "-P", "-b", bootstrap, "-t", topic, "-z", "none"),
            *("-X", "linger.ms=20", "-X", "batch.num.messages=10000", "-l", str(path)),
        ],
        check=True,
        timeout=300,
    )
    path.unlink()
    return count


def good_lines(count: int, seed: int = 0) -> Iterator[bytes]:
    values = encoded(digits_records(seed=seed), 0.0, seed=seed)
    for _ in range(count):
        yield next(values)


def mixed_lines(good: int, bad: int, seed: int = 0) -> Iterator[bytes]:
    """Exactly `good` valid records and `bad` malformed ones (every kind), interleaved."""
    records = digits_records(seed=seed)
    every = (good + bad) / bad
    bad_done = 0
    for index in range(good + bad):
        record = next(records)
        if bad_done < bad and index >= (bad_done + 1) * every - 1:
            yield malformed_record(MALFORMED_KINDS[bad_done % len(MALFORMED_KINDS)], record)
            bad_done += 1
        else:
            yield json.dumps(record, separators=(",", ":")).encode()
    assert bad_done == bad


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


# --- the Job's container on the kind node ----------------------------------------------------


@dataclass
class JobContainer:
    """The running container of one of a Job's pods, seen from the node it runs on."""

    pod: str
    container_id: str
    pid: int  # in the node's PID namespace
    kubectl: Kubectl
    env: KindEnv

    def log(self) -> str:
        return self.kubectl("logs", self.pod, check=False)

    def alive(self) -> bool:
        """The container's process still runs (checked on the node, not through the API)."""
        template = ("-o", "go-template", "--template", "{{.status.state}}")
        state = self.env.node_exec("crictl", "inspect", *template, self.container_id)
        return state.returncode == 0 and state.stdout.strip() == "CONTAINER_RUNNING"

    def kill(self) -> None:
        """SIGKILL the container's process on the node, as the OOM killer or a crash would."""
        done = self.env.node_exec("kill", "-9", str(self.pid))
        assert done.returncode == 0, done.stderr


def running_process(world: FaultWorld, job: str, exclude: tuple[str, ...] = ()) -> JobContainer:
    """The running container of the Job's pod (its containerID is containerd://<id>)."""
    found: list[JobContainer] = []

    def check() -> bool:
        for pod in world.pods(job):
            name = pod["metadata"]["name"]
            if name in exclude:
                continue
            for status in (pod.get("status") or {}).get("containerStatuses") or ():
                cid = status.get("containerID") or ""
                if "running" in (status.get("state") or {}) and cid.startswith("containerd://"):
                    container = cid.removeprefix("containerd://")
                    pid = world.endpoints.node_exec(
                        "crictl", "inspect", "-o", "go-template", "--template", "{{.info.pid}}",
                        container,
                    ).stdout.strip()  # fmt: skip
                    if pid.isdigit():
                        found.append(JobContainer(name, container, int(pid), world.kubectl,
                                                  world.endpoints))  # fmt: skip
                        return True
        return False

    world.wait(check, 120, f"a pod of Job {job} runs")
    return found[0]


def wait_mid_drain(world: FaultWorld, process: JobContainer, timeout: float = 180) -> None:
    """Until the run has taken its snapshot and started draining."""
    world.wait(
        lambda: "Snapshot of" in process.log() or not process.alive(),
        timeout,
        f"pod {process.pod} started draining",
    )
    log = process.log()
    assert "Snapshot of" in log, f"the pod ended before draining:\n{log[-3000:]}"
    assert "Decision:" not in log, f"the drain was over before the fault:\n{log[-3000:]}"


# --- audits ----------------------------------------------------------------------------------


@dataclass
class Ledger:
    runs: list[dict[str, Any]] = field(default_factory=list)
    valid: int = 0
    rejected: int = 0
    read: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def accepted_runs(tracking_uri: str, experiment: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs(
        [exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000
    )
    return [
        r for r in runs if r.info.status == "FINISHED" and r.data.tags.get(OUTCOME_TAG) in ACCEPTED
    ]


def nothing_lost(policy: Policy, produced: int) -> Ledger:
    """Every record trained on (or rejected) exactly once across the accepted runs."""
    kafka, tracking = policy.spec.source.kafka, policy.spec.mlflow.trackingUri
    assert kafka.bootstrapServers
    ends = end_offsets(kafka.bootstrapServers, kafka.topic)
    assert sum(ends.values()) == produced, f"topic holds {ends}, produced {produced}"
    ledger = Ledger()
    mlflow.set_tracking_uri(tracking)
    ranges: dict[int, list[tuple[int, int, str]]] = {p: [] for p in ends}
    keys = []
    for run in accepted_runs(tracking, policy.experiment):
        lineage = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{LINEAGE}")
        assert lineage["topic"] == kafka.topic and lineage["consumerGroup"] == policy.consumer_group
        for partition, r in lineage["partitions"].items():
            if r["to"] > r["newFrom"]:
                ranges[int(partition)].append((r["newFrom"], r["to"], run.info.run_id))
        metrics = run.data.metrics
        ledger.valid += int(metrics.get("records_valid", 0))
        ledger.rejected += int(metrics.get("records_rejected", 0))
        # New records only: a retrain run also re-reads its window (records_reread).
        ledger.read += int(metrics.get("records_new", 0))
        for key, value in metrics.items():
            if key.startswith("rejected_"):
                reason = key.removeprefix("rejected_")
                ledger.rejected_by_reason[reason] = ledger.rejected_by_reason.get(reason, 0) + int(
                    value
                )
        keys.append(run.data.tags.get(RUN_KEY_TAG))
        ledger.runs.append(
            {
                "run_id": run.info.run_id,
                "run_key": run.data.tags.get(RUN_KEY_TAG),
                "outcome": run.data.tags.get(OUTCOME_TAG),
                "partitions": lineage["partitions"],
            }
        )
    assert len(keys) == len(set(keys)), f"a run key was logged twice: {ledger.runs}"
    for partition, end in ends.items():
        spans = sorted(ranges[partition])
        at = 0
        for start, stop, run_id in spans:
            assert start <= at, f"partition {partition}: offsets [{at}, {start}) never trained on"
            assert start >= at, (
                f"partition {partition}: [{start}, {min(at, stop)}) trained on twice "
                f"(again by run {run_id}); runs: {ledger.runs}"
            )
            at = stop
        assert at == end, f"partition {partition}: offsets [{at}, {end}) never trained on"
    assert ledger.valid + ledger.rejected == produced, (
        f"valid {ledger.valid} + rejected {ledger.rejected} != produced {produced}"
    )
    assert ledger.read == produced
    assert sum(ledger.rejected_by_reason.values()) == ledger.rejected
    assert committed(policy) == ends, "the group's committed offsets are not at the end"
    return ledger


class ServingWatch:
    """Every value the Deployment's MODEL_URI takes, from a `kubectl get -w` stream."""

    TEMPLATE = (
        '{.spec.template.spec.containers[0].env[?(@.name=="MODEL_URI")].value}'
        '{"|"}{.metadata.generation}{"\\n"}'
    )

    def __init__(self, endpoints: KindEnv, namespace: str, deployment: str) -> None:
        self.values: list[str] = []
        self.generations: list[int] = []
        kubectl = endpoints.kubectl(namespace)
        self.proc = subprocess.Popen(
            [
                *(str(kubectl.binary), "-n", namespace, "get", "deployment", deployment, "-w"),
                *("-o", f"jsonpath={self.TEMPLATE}"),
            ],
            env=kubectl.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            value, _, generation = line.rstrip("\n").rpartition("|")
            if not self.values or self.values[-1] != value:
                self.values.append(value)
            if generation.isdigit() and (
                not self.generations or self.generations[-1] != int(generation)
            ):
                self.generations.append(int(generation))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.thread.join(5)

    def check(self, tracking_uri: str, model_name: str) -> list[str]:
        """Never empty; the initial URI only before the first promotion; then registered."""
        values = list(self.values)
        assert values, "the watch saw no value of MODEL_URI"
        client = MlflowClient(tracking_uri)
        promoted = False
        for value in values:
            assert value, f"MODEL_URI was empty at some point: {values}"
            if value == INITIAL_URI:
                assert not promoted, f"serving went back to the initial URI: {values}"
                continue
            promoted = True
            prefix = f"models:/{model_name}/"
            assert value.startswith(prefix), f"unexpected MODEL_URI {value!r}: {values}"
            version = value.removeprefix(prefix)
            assert client.get_model_version(model_name, version).version == version
        return values


@pytest.fixture
def serving_watch(world: FaultWorld) -> Iterator[Callable[[str], ServingWatch]]:
    watches: list[ServingWatch] = []

    def start(deployment: str = SERVING) -> ServingWatch:
        watch = ServingWatch(world.endpoints, world.namespace, deployment)
        watches.append(watch)
        eventually(lambda: bool(watch.values), 30, f"the watch of {deployment} started")
        return watch

    yield start
    for watch in watches:
        watch.stop()
