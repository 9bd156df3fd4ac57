"""Typed values the tests share: a full run result and a full status (every field set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inshape_api.result import RecordCounts, RunResult
from inshape_api.status import Champion, Condition, KafkaStatus, LastRun, OffsetRange, PolicyStatus

PROMOTED = RunResult(
    outcome="Promoted",
    reasons=("Improved",),
    message="f1_macro 0.93 beats 0.91 by 0.02",
    policy="ml/digits",
    runKey="job-uid",
    runId="abc123",
    metric="f1_macro",
    championVersion="6",
    candidateScore=0.93,
    championScore=0.91,
    holdoutFraction=0.2,
    modelVersion="7",
    modelUri="models:/digits-classifier/7",
    records=RecordCounts(read=2000, new=2000, valid=1990, train=1592, holdout=398, rejected=10),
    rejectedByReason={"not_json": 10},
    offsets={"0": (100, 1100), "1": (0, 1000)},
    stages={"drain": 1.5, "log": 0.3},
    durationSeconds=12.5,
)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
V6 = Champion(uri="models:/digits/6", version="6", metric=0.9, metricName="f1_macro")
V7 = Champion(
    uri="models:/digits/7",
    version="7",
    metric=0.93,
    metricName="f1_macro",
    runId="run-7",
    job="digits-update-7",
    promotedAt=T0,
)
FULL_STATUS = PolicyStatus(
    observedGeneration=4,
    conditions=(
        Condition("Ready", "True", "ChampionServing", "served", T0, 4),
        Condition("Progressing", "False", "BelowThreshold", "3 of 2000", T0, 4),
        Condition("Degraded", "False", "AsExpected", "", T0 - timedelta(days=1)),
    ),
    champion=V7,
    previousChampion=V6,
    pendingRecords=3,
    lastRun=LastRun(
        outcome="Promoted",
        job="digits-update-7",
        sequence=7,
        trigger="Lag",
        runId="run-7",
        reasons=("Improved",),
        message="better",
        records=RecordCounts(read=10, new=10, valid=9, train=7, holdout=2, rejected=1),
        offsets={"0": OffsetRange(0, 10), "1": OffsetRange(5, 5)},
        candidateMetric=0.93,
        championMetric=0.9,
        modelVersion="7",
        finishedAt=T0,
    ),
    lastScheduleTime=T0 - timedelta(hours=1),
    kafka=KafkaStatus("my-cluster-kafka-bootstrap.ml.svc:9093", "SASL_SSL", "scram"),
)
