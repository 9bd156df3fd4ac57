"""One update run against the real Kafka broker and MLflow server (no mocks)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from kafka.consumer import KafkaConsumer
from kafka.structs import TopicPartition

from inshape_api.names import RUN_KEY_TAG
from inshape_api.result import RecordCounts, RunResult, decode
from inshape_api.spec import Policy
from inshape_hack.kafka import KafkaBroker
from inshape_hack.mlflow_server import MlflowServer
from inshape_jobs.drain import DeadLetters, TopicReader
from inshape_jobs.produce import encoded
from inshape_jobs.records import ChunkParser, RawChunk, RecordSchema
from inshape_jobs.streams import MALFORMED_KINDS, digits_records
from inshape_jobs.tracking import Tracker
from tests.integration.helpers import (
    NewPolicy,
    committed,
    digits_policy,
    fill,
    run,
    tracker,
    update_cli,
)

pytestmark = pytest.mark.integration


class CrashBeforeCommit(TopicReader):
    """A reader whose commit dies, as a Job killed right after MLflow finished would."""

    def commit(self, offsets: dict[int, int], metadata: str) -> None:
        raise RuntimeError("simulated crash before the offsets commit")


def _runs_with_key(t: Tracker, key: str) -> list[Any]:
    return list(
        t.client.search_runs([t.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'")
    )


def test_bootstrap_run_promotes_logs_everything_and_commits(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 3000)

    result = run(policy, "boot-1")

    assert result.outcome == "Promoted"
    assert result.championVersion is None
    assert result.modelVersion == "1"
    assert result.modelUri == f"models:/{policy.spec.model.name}/1"
    assert result.records.read == 3000
    assert result.records.train + result.records.holdout == 3000
    assert sum(committed(policy).values()) == 3000
    t = tracker(policy)
    assert t.champion_version() == "1"
    assert result.runId is not None
    mlrun = t.get_run(result.runId)
    assert mlrun.data.metrics["records_valid"] == 3000
    assert "candidate_accuracy" in mlrun.data.metrics
    assert mlrun.data.params["model.estimator"] == "sklearn.linear_model.SGDClassifier"
    artifacts = {a.path for a in t.client.list_artifacts(result.runId, "plots")}
    assert "plots/update.png" in artifacts
    characteristics = t.load_document(result.runId, "sample/characteristics.json")
    assert set(characteristics["features"]["px10"]) == {"mean", "std", "min", "max"}
    assert sum(characteristics["labels"].values()) == 3000
    # Lineage: the exact offsets read, as the run's dataset input.
    (dataset_input,) = mlrun.inputs.dataset_inputs
    source = json.loads(dataset_input.dataset.source)
    assert source["topic"] == policy.spec.source.kafka.topic
    assert sum(r["to"] - r["from"] for r in source["partitions"].values()) == 3000


def test_winning_run_moves_alias_and_losing_run_keeps_it(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 300, seed=1)
    assert run(policy, "r1").outcome == "Promoted"  # bootstrap on very little data

    fill(policy, 6000, seed=2, noise=1.0)
    win = run(policy, "r2")
    assert win.outcome == "Promoted", win
    assert win.candidateScore > win.championScore
    assert tracker(policy).champion_version() == win.modelVersion == "2"

    strict = new_policy({"evaluation": {"minImprovement": 0.5}})
    fill(strict, 2000, seed=3, noise=1.0)
    lose = run(strict, "r3")
    assert lose.outcome == "Rejected"
    assert "ImprovementTooSmall" in lose.reasons or "NoImprovement" in lose.reasons
    assert lose.modelVersion == "3"  # every candidate is registered
    assert tracker(policy).champion_version() == "2"  # but the alias stays
    assert sum(committed(policy).values()) == 8300  # a losing run still commits


def test_crash_before_commit_leaves_records_for_the_next_run_and_retry_is_idempotent(
    new_policy: NewPolicy,
) -> None:
    policy = new_policy()
    fill(policy, 2000)
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    crashing = CrashBeforeCommit(kafka.bootstrapServers, kafka.topic, policy.consumer_group)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(policy, "job-uid-1", reader=crashing)
    crashing.close()
    assert committed(policy) == {}  # nothing committed

    # The Job controller retries the same Job (same UID): the finished run is replayed.
    retried = run(policy, "job-uid-1")
    assert retried.replayed is True
    assert retried.records.read == 2000
    t = tracker(policy)
    assert len(_runs_with_key(t, "job-uid-1")) == 1
    versions = t.client.search_model_versions(f"name = '{policy.spec.model.name}'")
    assert len(versions) == 1
    assert sum(committed(policy).values()) == 2000

    # A second retry changes nothing at all.
    again = run(policy, "job-uid-1")
    assert again.modelVersion == retried.modelVersion
    assert len(t.client.search_model_versions(f"name = '{policy.spec.model.name}'")) == 1


def test_crash_then_new_job_sees_the_same_records(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 1500)
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    crashing = CrashBeforeCommit(kafka.bootstrapServers, kafka.topic, policy.consumer_group)
    with pytest.raises(RuntimeError):
        run(policy, "first", reader=crashing)
    first_offsets = crashing.snapshot().committed_offsets()
    crashing.close()

    second = run(policy, "second")
    assert second.records.read == 1500
    assert {int(p): r[0] for p, r in second.offsets.items()} == first_offsets


def test_unfinished_run_of_a_dead_attempt_is_replaced(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 1000)
    t = tracker(policy)
    # An attempt that died while logging leaves a RUNNING run with the key.
    dead = t.client.create_run(t.experiment_id, tags={RUN_KEY_TAG: "uid-x"})

    result = run(policy, "uid-x")
    assert result.outcome == "Promoted"
    assert t.client.get_run(dead.info.run_id).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in _runs_with_key(t, "uid-x")] == [result.runId]


def test_malformed_records_are_counted_skipped_and_dead_lettered(
    new_policy: NewPolicy, unique_name: str
) -> None:
    dlq = f"{unique_name}-dlq"
    policy = new_policy({"source": {"kafka": {"deadLetterTopic": dlq}}})
    fill(policy, 4000, bad_fraction=0.1)

    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers
    from inshape_jobs.drain import DeadLetters
    from inshape_jobs.update import RunOptions, run_update

    reader = TopicReader(kafka.bootstrapServers, kafka.topic, policy.consumer_group)
    dead = DeadLetters(kafka.bootstrapServers, dlq, kafka.topic)
    try:
        result = run_update(
            policy, RunOptions(run_key="bad-1", quiet=True), reader, tracker(policy), dead
        )
    finally:
        reader.close()
        dead.close()

    rejected = result.records.rejected
    assert 300 < rejected < 500  # about 10%
    assert result.records.valid + rejected == 4000
    assert sum(result.rejectedByReason.values()) == rejected
    assert set(result.rejectedByReason) <= set(MALFORMED_KINDS)
    assert result.outcome == "Promoted"
    metrics = tracker(policy).get_run(result.runId).data.metrics
    assert metrics["records_rejected"] == rejected

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrapServers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    consumer.assign([TopicPartition(dlq, 0)])
    letters = list(consumer)
    consumer.close()
    assert len(letters) == rejected
    reasons = {dict(m.headers)["inshape-reason"].decode() for m in letters}
    assert reasons == set(result.rejectedByReason)


def test_no_new_records_is_skipped_without_a_run(new_policy: NewPolicy) -> None:
    policy = new_policy()
    fill(policy, 500)
    assert run(policy, "a").outcome == "Promoted"
    skipped = run(policy, "b")
    assert skipped.outcome == "Skipped"
    assert skipped.reasons == ("NoNewRecords",)
    assert _runs_with_key(tracker(policy), "b") == []


def test_retrain_strategy_refits_on_a_bounded_window(new_policy: NewPolicy) -> None:
    policy = new_policy(
        {
            "model": {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20, "random_state": 0},
                "strategy": "retrain",
                "window": {"maxRecords": 1500},
            }
        },
    )
    fill(policy, 1200, seed=4)
    first = run(policy, "w1")
    assert first.outcome == "Promoted"
    fill(policy, 600, seed=5)
    second = run(policy, "w2")
    # The window re-reads history before the committed offsets, up to maxRecords in all.
    assert second.records.read <= 1500 + 3
    assert second.records.read > 600
    assert second.records.holdout <= 600  # only new records are held out


def _rejects_in_fill(policy: Policy, count: int, seed: int, bad_fraction: float) -> Counter[str]:
    """The reject reasons of what fill(policy, count, seed, bad_fraction) produced: the same
    values, regenerated and parsed here, away from Kafka."""
    kafka = policy.spec.source.kafka
    values: list[bytes | None] = list(
        islice(encoded(digits_records(seed=seed), bad_fraction, seed=seed), count)
    )
    schema = RecordSchema(tuple(kafka.features), kafka.label, kafka.maxRecordBytes, True)
    n = len(values)
    raw = RawChunk(np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64), values)
    return ChunkParser(schema).parse(raw).rejects


def _run_dead_lettering(policy: Policy, run_key: str) -> RunResult:
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers and kafka.deadLetterTopic
    dead = DeadLetters(kafka.bootstrapServers, kafka.deadLetterTopic, kafka.topic)
    try:
        return run(policy, run_key, dead_letters=dead)
    finally:
        dead.close()


def _dead_letter_sources(policy: Policy) -> list[tuple[int, int]]:
    """(partition, offset) of the source record of every dead letter, in topic order."""
    kafka = policy.spec.source.kafka
    assert kafka.bootstrapServers and kafka.deadLetterTopic
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrapServers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    consumer.assign([TopicPartition(kafka.deadLetterTopic, 0)])
    letters = list(consumer)
    consumer.close()
    sources = []
    for letter in letters:
        topic, partition, offset = dict(letter.headers)["inshape-source"].decode().rsplit("/", 2)
        assert topic == kafka.topic
        sources.append((int(partition), int(offset)))
    return sources


def test_retrain_window_counts_and_dead_letters_each_bad_record_once(
    kafka_broker: KafkaBroker, mlflow_server: MlflowServer, unique_name: str
) -> None:
    policy = digits_policy(
        unique_name,
        kafka_broker.bootstrap_servers,
        mlflow_server.tracking_uri,
        spec={
            "source": {"kafka": {"deadLetterTopic": f"{unique_name}-dlq"}},
            "model": {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 20, "random_state": 0},
                "strategy": "retrain",
                # 1000 a partition: more than the second fill, so every partition the first
                # run read is read again in part, whatever the producer's spread.
                "window": {"maxRecords": 3000},
            },
        },
    )
    fill(policy, 1200, seed=4, bad_fraction=0.1)
    first = _run_dead_lettering(policy, "wb1")
    fill(policy, 600, seed=5, bad_fraction=0.1)
    second = _run_dead_lettering(policy, "wb2")
    bad_first = _rejects_in_fill(policy, 1200, seed=4, bad_fraction=0.1)
    bad_second = _rejects_in_fill(policy, 600, seed=5, bad_fraction=0.1)
    assert sum(bad_first.values()) > 0 and sum(bad_second.values()) > 0

    # Each run counts the bad records it was the first to read, and those only.
    assert first.rejectedByReason == dict(bad_first)
    assert second.rejectedByReason == dict(bad_second)
    assert first.records.rejected == sum(bad_first.values())
    assert second.records.rejected == sum(bad_second.values())
    # The dead-letter topic holds each bad record once.
    sources = _dead_letter_sources(policy)
    assert len(set(sources)) == len(sources) == sum((bad_first + bad_second).values())

    # The first run read everything as new; the second re-read part of it for the window.
    assert first.records.new == first.records.read == 1200
    assert first.records.reread == 0
    records = second.records
    assert records.new == 600
    assert records.reread > 0
    assert records.new + records.reread == records.read <= 3000 + 3
    assert records.valid + records.rejected == records.new
    # The window did reach back over bad records of the first run: still not trained on.
    lineage = tracker(policy).load_document(second.runId, "lineage/offsets.json")
    ranges = {int(p): r for p, r in lineage["partitions"].items()}
    reread_bad = [(p, o) for p, o in sources if ranges[p]["from"] <= o < ranges[p]["newFrom"]]
    assert reread_bad
    assert records.train + records.holdout == (records.read - records.rejected - len(reread_bad))

    # MLflow holds the same counts.
    t = tracker(policy)
    metrics = t.get_run(second.runId).data.metrics
    assert metrics["records_read"] == records.read
    assert metrics["records_new"] + metrics["records_reread"] == metrics["records_read"]
    assert metrics["records_new"] == 600
    assert metrics["records_reread"] == records.reread
    assert metrics["records_valid"] + metrics["records_rejected"] == metrics["records_new"]
    by_reason = {
        k.removeprefix("rejected_"): v for k, v in metrics.items() if k.startswith("rejected_")
    }
    assert by_reason == dict(bad_second)
    characteristics = t.load_document(second.runId, "sample/characteristics.json")
    assert RecordCounts(**characteristics["records"]) == records
    assert characteristics["rejectedByReason"] == second.rejectedByReason
    first_metrics = t.get_run(first.runId).data.metrics
    assert first_metrics["records_rejected"] + metrics["records_rejected"] == len(sources)
    print(  # the numbers, for -s
        f"rejects per run: {first.records.rejected}, {records.rejected}; "
        f"second run read {records.read} = {records.new} new + {records.reread} "
        f"re-read ({len(reread_bad)} bad, not counted again); dead letters {len(sources)}"
    )


def test_regressor_gate_uses_paired_bootstrap(new_policy: NewPolicy) -> None:
    policy = new_policy(
        {
            "model": {
                "estimator": "sklearn.linear_model.SGDRegressor",
                "params": {"random_state": 0},
                "classes": None,
            },
            "evaluation": {"metric": "rmse", "significance": 0.05},
        },
    )
    fill(policy, 400, seed=6)
    assert run(policy, "g1").outcome == "Promoted"
    fill(policy, 4000, seed=7)
    second = run(policy, "g2")
    assert second.metric == "rmse"
    decision = tracker(policy).load_document(second.runId, "decision.json")
    (significance,) = [c for c in decision["checks"] if c["rule"] == "significance"]
    assert "paired bootstrap" in significance["message"]
    assert 0 < decision["pValue"] <= 1


def test_cli_reads_policy_from_env_and_writes_termination_message(
    new_policy: NewPolicy, tmp_path: Path
) -> None:
    policy = new_policy()
    fill(policy, 1000)
    termination = tmp_path / "termination-log"
    proc = update_cli(policy, "cli-1", INSHAPE_TERMINATION_LOG=str(termination))
    assert proc.returncode == 0, proc.stderr
    assert "drain" in proc.stdout and "rec/s" in proc.stdout  # progress lines
    result = decode(termination.read_text())
    assert result.outcome == "Promoted"
    assert result.runKey == "cli-1"
    assert decode(proc.stdout) == result


def test_cli_rejects_an_invalid_policy_naming_the_field(tmp_path: Path) -> None:
    bad = yaml.safe_load(Path("manifests/examples/digits.yaml").read_text())
    bad["spec"]["evaluation"]["holdoutFraction"] = 1.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "inshape_jobs", "update", "--policy", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "spec.evaluation.holdoutFraction" in proc.stderr


def test_mlflow_down_fails_the_run_and_commits_nothing(
    kafka_broker: KafkaBroker, unique_name: str, tmp_path: Path
) -> None:
    down = MlflowServer(tmp_path / "mlflow-down")  # never started: nothing listens there
    policy = digits_policy(unique_name, kafka_broker.bootstrap_servers, down.tracking_uri)
    fill(policy, 500)
    proc = update_cli(
        policy, "down-1", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5"
    )
    assert proc.returncode != 0
    assert committed(policy) == {}
    assert mlflow.get_tracking_uri()  # the test process itself is untouched
