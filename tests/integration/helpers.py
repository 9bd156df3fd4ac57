"""Building blocks for the integration tests: policies, topics filled with records, runs."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import yaml
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from inshape_api.result import RunResult
from inshape_api.spec import Policy, dumps_policy, parse_policy
from inshape_jobs.drain import DeadLetters, TopicReader
from inshape_jobs.produce import encoded, produce
from inshape_jobs.streams import digits_records
from inshape_jobs.tracking import Tracker
from inshape_jobs.update import RunOptions, run_update

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "digits.yaml"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Override nested keys; estimator params are replaced whole, as they belong together."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "params":
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def digits_policy(
    name: str, bootstrap: str, tracking_uri: str, spec: dict[str, Any] | None = None
) -> Policy:
    """The example digits policy, pointed at the test services, on its own topic and model."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"] = {"name": name, "namespace": "it"}
    base_override = {
        "source": {"kafka": {"bootstrapServers": bootstrap, "topic": f"{name}-events"}},
        "model": {"name": f"{name}-model"},
        "mlflow": {"trackingUri": tracking_uri, "experiment": name},
        # Small runs: no significance or floor unless a test asks for them.
        "evaluation": {
            "minImprovement": 0.0,
            "floor": None,
            "significance": None,
            "metric": "accuracy",
        },
    }
    document["spec"] = deep_merge(document["spec"], base_override)
    if spec:
        document["spec"] = deep_merge(document["spec"], spec)
    document["spec"]["evaluation"] = {
        k: v for k, v in document["spec"]["evaluation"].items() if v is not None
    }
    return parse_policy(document)


class NewPolicy(Protocol):
    """The `new_policy` fixture: digits_policy on the session's services, under the test's own
    name, with ``spec`` merged over it."""

    def __call__(self, spec: dict[str, Any] | None = None) -> Policy: ...


def fill(
    policy: Policy, count: int, seed: int = 0, bad_fraction: float = 0.0, noise: float = 0.0
) -> None:
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    produce(
        kafka.bootstrapServers,
        kafka.topic,
        encoded(digits_records(seed=seed, noise=noise), bad_fraction, seed=seed),
        count=count,
        partitions=3,
        quiet=True,
    )


def run(
    policy: Policy,
    run_key: str,
    reader: TopicReader | None = None,
    chunk_records: int = 2000,
    dead_letters: DeadLetters | None = None,
) -> RunResult:
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    own_reader = reader is None
    reader = reader or TopicReader(kafka.bootstrapServers, kafka.topic, policy.consumer_group)
    try:
        return run_update(
            policy,
            RunOptions(run_key=run_key, chunk_records=chunk_records, quiet=True),
            reader,
            tracker(policy),
            dead_letters,
        )
    finally:
        if own_reader:
            reader.close()


def tracker(policy: Policy) -> Tracker:
    return Tracker(policy.spec.mlflow.trackingUri, policy.experiment, policy.spec.model.name)


def committed(policy: Policy) -> dict[int, int]:
    """The group's committed offsets, read through the admin API as the operator will."""
    kafka = policy.spec.source.kafka
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrapServers)
    try:
        offsets = admin.list_group_offsets({policy.consumer_group: None})[policy.consumer_group]
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == kafka.topic
    }


def update_cli(policy: Policy, run_key: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m inshape_jobs update` as a Job's container runs it: the policy and the run
    key in its environment, and nothing else of this process's (but its PYTHONPATH, which
    says whose code runs when a shared venv installs another checkout's)."""
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    return subprocess.run(
        [sys.executable, "-m", "inshape_jobs", "update"],
        env={
            "INSHAPE_POLICY": dumps_policy(policy),
            "INSHAPE_RUN_KEY": run_key,
            "PATH": "/usr/bin:/bin",
            **path,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
