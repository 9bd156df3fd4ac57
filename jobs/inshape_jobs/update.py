"""One update run: drain -> parse -> split -> update candidate -> gate -> log -> commit.

The order is the guarantee: offsets are committed only after MLflow holds the run, the model
version and (on a win) the moved alias, so a crash anywhere before leaves the records to be
read again and serving untouched. A retried run with the same run key replays the finished
run's last steps instead of logging or registering again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator

from inshape_api.names import POLICY_TAG
from inshape_api.result import Outcome, RecordCounts, RunResult
from inshape_api.spec import Policy, SpecError, to_dict
from inshape_api.wire import from_wire, to_wire
from inshape_jobs import gate as gating
from inshape_jobs.drain import Snapshot
from inshape_jobs.estimators import (
    IncrementalCandidate,
    WindowCandidate,
    build_estimator,
    is_classification,
)
from inshape_jobs.evaluate import Score, metric_fits_task, score
from inshape_jobs.native import make_parser
from inshape_jobs.plots import update_figure
from inshape_jobs.progress import Progress
from inshape_jobs.records import (
    Chunk,
    ParsedChunk,
    RecordSchema,
    drop_reread_rejects,
    drop_unknown_labels,
)
from inshape_jobs.split import effective_holdout_fraction, holdout_mask
from inshape_jobs.start import (
    DeadLetterSink,
    Reader,
    RunOptions,
    StartedDrain,
    Timers,
    start_drain,
)
from inshape_jobs.stats import SampleStats, drift_scores, summarize_drift
from inshape_jobs.tracking import (
    PROFILE_ARTIFACT,
    RESULT_ARTIFACT,
    Champion,
    KafkaOffsetsSource,
    LoggedRun,
    RunRecord,
    Tracker,
)

log = logging.getLogger(__name__)

LINEAGE_ARTIFACT = "lineage/offsets.json"


@dataclass
class Drained:
    """What one pass over the snapshot produced.

    read = new + reread: a retrain window re-reads records before the committed offsets.
    stats and rejects cover new records only, so a bad record counts once, in the run that
    first read it.
    """

    model: BaseEstimator | None
    holdout_x: npt.NDArray[np.float64]
    holdout_y: npt.NDArray[Any]
    stats: SampleStats
    rejects: Counter[str]
    read: int
    train: int
    new: int
    reread: int


def lineage_ranges(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    return {
        str(r.partition): {"from": r.start, "newFrom": r.committed, "to": r.end}
        for r in snapshot.ranges
    }


def _classes_of(champion: Champion | None, policy: Policy) -> npt.NDArray[Any] | None:
    if policy.spec.model.classes is not None:
        return np.asarray(policy.spec.model.classes)
    if champion is not None and hasattr(champion.model, "classes_"):
        return np.asarray(champion.model.classes_)
    return None


def drain_and_train(
    policy: Policy,
    snapshot: Snapshot,
    chunks: Iterator[Chunk],
    *,
    fresh: BaseEstimator,
    champion: Champion | None,
    options: RunOptions,
    timers: Timers,
    dead_letters: DeadLetterSink | None,
) -> Drained:
    """Stream the snapshot chunk by chunk: memory holds one chunk, the capped holdout and
    (strategy retrain) the bounded window, however many records are pending.
    `fresh` is the policy's estimator, unfitted: the model when there is no champion."""
    spec = policy.spec
    kafka, ev = spec.source.kafka, spec.evaluation
    classification = is_classification(fresh)
    # The compiled decoder when installed (native.py logs which): the same rows either way.
    parser = make_parser(
        RecordSchema(tuple(kafka.features), kafka.label, kafka.maxRecordBytes, classification)
    )
    incremental = spec.model.strategy == "incremental"
    classes = _classes_of(champion, policy) if classification and incremental else None
    candidate: IncrementalCandidate | WindowCandidate
    if incremental:
        candidate = IncrementalCandidate(champion.model if champion else fresh, classes)
    else:
        assert spec.model.window is not None
        candidate = WindowCandidate(fresh, spec.model.window.maxRecords, len(kafka.features))
    edges = None
    if champion and champion.profile and champion.profile.get("features") == kafka.features:
        edges = champion.profile.get("edges")
    stats = SampleStats(list(kafka.features), edges=edges)
    fraction = effective_holdout_fraction(ev.holdoutFraction, ev.maxHoldout, snapshot.new_records)
    committed = snapshot.committed_offsets()
    first_new = np.zeros(max((r.partition for r in snapshot.ranges), default=0) + 1, dtype=np.int64)
    for r in snapshot.ranges:
        first_new[r.partition] = r.committed
    holdout_x: list[npt.NDArray[np.float64]] = []
    holdout_y: list[npt.NDArray[Any]] = []
    held = read = new = train = 0
    rejects: Counter[str] = Counter()
    progress = Progress("drain", snapshot.to_read, quiet=options.quiet)
    while True:
        with timers.stage("drain"):
            chunk = next(chunks, None)
        if chunk is None:
            break
        with timers.stage("parse"):
            parsed: ParsedChunk = parser.parse(chunk)
            if classes is None and classification and incremental and len(parsed):
                classes = np.unique(parsed.labels)
                assert isinstance(candidate, IncrementalCandidate)
                candidate.classes = classes
                log.info("Classes taken from the first chunk: %s", classes.tolist())
            if classes is not None:
                parsed = drop_unknown_labels(parsed, classes)
            # Rejects re-read by a retrain window were counted and dead-lettered already.
            parsed = drop_reread_rejects(parsed, committed)
            rejects.update(parsed.rejects)
            if dead_letters is not None and parsed.rejected:
                dead_letters.send(parsed.rejected)
            is_new = parsed.offsets >= first_new[parsed.partitions]
            to_holdout = holdout_mask(
                parsed.partitions,
                parsed.offsets,
                fraction,
                eligible=is_new,
                room=ev.maxHoldout - held,
            )
            holdout_x.append(parsed.features[to_holdout])
            holdout_y.append(parsed.labels[to_holdout])
            held += int(to_holdout.sum())
            stats.add(parsed.features[is_new], parsed.labels[is_new])
        with timers.stage("train"):
            candidate.update(parsed.features[~to_holdout], parsed.labels[~to_holdout])
        read += len(chunk)
        new += int((chunk.offsets >= first_new[chunk.partitions]).sum())
        train += int((~to_holdout).sum())
        progress.update(read)
    progress.done(read)
    with timers.stage("train"):
        model = candidate.finish() if train else None
    n_features = len(kafka.features)
    return Drained(
        model=model,
        holdout_x=np.concatenate(holdout_x) if holdout_x else np.empty((0, n_features)),
        holdout_y=np.concatenate(holdout_y) if holdout_y else np.empty(0),
        stats=stats,
        rejects=rejects,
        read=read,
        train=train,
        new=new,
        reread=read - new,
    )


def _scores(
    drained: Drained, champion: Champion | None, metric: str
) -> tuple[Score | None, Score | None]:
    if drained.model is None or len(drained.holdout_y) == 0:
        return None, None
    candidate = score(drained.model, metric, drained.holdout_x, drained.holdout_y)
    baseline = None
    if champion is not None:
        baseline = score(champion.model, metric, drained.holdout_x, drained.holdout_y)
    return candidate, baseline


def build_record(
    *,
    policy: Policy,
    options: RunOptions,
    bootstrap_servers: str,
    snapshot: Snapshot,
    champion: Champion | None,
    drained: Drained,
    candidate: Score | None,
    baseline: Score | None,
    decision: gating.Decision | None,
    result: RunResult,
) -> RunRecord:
    """Everything the MLflow run holds, from the run's outcome (pure)."""
    spec = policy.spec
    metric = spec.evaluation.metric
    profile = drained.stats.profile()
    drift = drift_scores(champion.profile, profile) if champion and champion.profile else {}
    # records_read = records_new + records_reread (a retrain window's history); valid,
    # rejected and rejected_<reason> count new records only: each bad record once.
    metrics: dict[str, float] = {
        "records_read": drained.read,
        "records_new": drained.new,
        "records_reread": drained.reread,
        "records_valid": drained.stats.n,
        "records_rejected": sum(drained.rejects.values()),
        "records_train": drained.train,
        "records_holdout": len(drained.holdout_y),
        **{f"rejected_{reason}": n for reason, n in drained.rejects.items()},
        **summarize_drift(drift),
        **{f"duration_{k}_s": v for k, v in result.stages.items()},
    }
    if candidate is not None:
        metrics[f"candidate_{metric}"] = candidate.value
    if baseline is not None:
        metrics[f"champion_{metric}"] = baseline.value
    if decision is not None and decision.improvement is not None:
        metrics["improvement"] = decision.improvement
    if decision is not None and decision.p_value is not None:
        metrics["p_value"] = decision.p_value
    kafka = spec.source.kafka
    ranges = lineage_ranges(snapshot)
    documents: dict[str, Any] = {
        PROFILE_ARTIFACT: profile,
        "sample/characteristics.json": {
            "records": {
                "read": drained.read,
                "new": drained.new,
                "reread": drained.reread,
                "valid": drained.stats.n,
                "train": drained.train,
                "holdout": len(drained.holdout_y),
                "rejected": sum(drained.rejects.values()),
            },
            "rejectedByReason": dict(drained.rejects),
            "labels": dict(drained.stats.labels),
            "features": drained.stats.feature_summary(),
            "driftPsi": drift,
        },
        LINEAGE_ARTIFACT: {
            "topic": kafka.topic,
            "consumerGroup": snapshot.group,
            "partitions": ranges,
        },
        RESULT_ARTIFACT: to_wire(result),
    }
    if decision is not None:
        documents["decision.json"] = {
            "outcome": decision.outcome,
            "checks": [vars(c) for c in decision.checks],
            "improvement": decision.improvement,
            "pValue": decision.p_value,
        }
    figures = {}
    if candidate is not None and drained.model is not None:
        predicted = drained.model.predict(drained.holdout_x)
        figures["plots/update.png"] = update_figure(
            metric=metric,
            candidate=candidate.value,
            champion=baseline.value if baseline else None,
            y_true=drained.holdout_y,
            y_pred=predicted,
            classification=is_classification(drained.model),
            drift=drift,
            outcome=result.outcome,
        )
    signature_input = signature_output = None
    if drained.model is not None and len(drained.holdout_y):
        signature_input = pd.DataFrame(drained.holdout_x[:5], columns=kafka.features)
        signature_output = drained.model.predict(drained.holdout_x[:5])
    digest = hashlib.sha256(repr(sorted(ranges.items())).encode()).hexdigest()[:16]
    return RunRecord(
        run_key=options.run_key,
        run_name=f"{policy.name}-{options.run_key[:8]}",
        params={
            "policy": f"{policy.namespace}/{policy.name}",
            "model": to_dict(spec.model),
            "evaluation": to_dict(spec.evaluation),
            "source.topic": kafka.topic,
            "source.consumerGroup": snapshot.group,
            "champion_version": champion.version if champion else "none",
            "holdout_fraction_effective": result.holdoutFraction,
            "chunk_records": options.chunk_records,
        },
        metrics=metrics,
        tags={
            POLICY_TAG: f"{policy.namespace}/{policy.name}",
            "inshape.reasons": ",".join(result.reasons),
        },
        documents=documents,
        figures=figures,
        lineage=KafkaOffsetsSource(bootstrap_servers, kafka.topic, snapshot.group, ranges),
        lineage_digest=digest,
        model=drained.model,
        signature_input=signature_input,
        signature_output=signature_output,
        outcome=result.outcome,
        compared_with=champion.version if champion else None,
    )


def _finish(
    tracker: Tracker,
    reader: Reader,
    run: LoggedRun,
    result: RunResult,
    *,
    offsets: dict[int, int],
    timers: Timers,
    dead_letters: DeadLetterSink | None,
    replaying: bool = False,
) -> RunResult:
    """Register, move the alias on a win, then commit: the steps a retry may replay."""
    run_id = run.run_id
    with timers.stage("register"):
        version = tracker.ensure_registered(run, may_exist=replaying)
        promoted = result.outcome == "Promoted"
        if (
            promoted
            and version is not None
            and not tracker.move_champion(version, result.championVersion)
        ):
            result = replace(result, outcome="Rejected", reasons=(*result.reasons, "ChampionMoved"))
    with timers.stage("commit"):
        if dead_letters is not None:
            dead_letters.flush()
        reader.commit(offsets, metadata=f"inshape run {result.runKey} mlflow {run_id}")
    result = replace(result, runId=run_id, stages={**result.stages, **timers.rounded()})
    if version is None:
        return result
    return replace(result, modelVersion=version, modelUri=f"models:/{tracker.model_name}/{version}")


def replay(tracker: Tracker, reader: Reader, run_id: str, timers: Timers) -> RunResult:
    """A retried run whose key already has a finished MLflow run: redo only what may not
    have happened (registration, alias, commit), from what that run recorded."""
    log.info("Run key already has finished MLflow run %s; replaying its last steps", run_id)
    result = from_wire(tracker.load_document(run_id, RESULT_ARTIFACT), RunResult)
    lineage = tracker.load_document(run_id, LINEAGE_ARTIFACT)
    offsets = {int(p): r["to"] for p, r in lineage["partitions"].items()}
    final = _finish(
        tracker,
        reader,
        tracker.logged_run(run_id),
        result,
        offsets=offsets,
        timers=timers,
        dead_letters=None,
        replaying=True,
    )
    return replace(final, replayed=True)


def _gate(
    drained: Drained, champion: Champion | None, policy: Policy
) -> tuple[Score | None, Score | None, gating.Decision | None]:
    """Both scores on the same holdout, and the gate's decision (None: nothing to judge)."""
    candidate, baseline = _scores(drained, champion, policy.spec.evaluation.metric)
    if candidate is None or drained.model is None:
        return candidate, baseline, None
    decision = gating.decide(
        gating.GateInput(
            candidate=candidate,
            champion=baseline,
            holdout_size=len(drained.holdout_y),
            classification=is_classification(drained.model),
        ),
        policy.spec.evaluation,
    )
    return candidate, baseline, decision


def _check_metric(policy: Policy, fresh: BaseEstimator) -> None:
    spec = policy.spec
    if not metric_fits_task(spec.evaluation.metric, is_classification(fresh)):
        kind = "a classifier" if is_classification(fresh) else "a regressor"
        raise SpecError(
            "spec.evaluation.metric",
            f"{spec.evaluation.metric} does not fit {kind} ({spec.model.estimator})",
        )


def run_update(
    policy: Policy,
    options: RunOptions,
    reader: Reader,
    tracker: Tracker,
    dead_letters: DeadLetterSink | None = None,
    *,
    started: StartedDrain | None = None,
) -> RunResult:
    """One run; `started`: its drain begun already by start.start_drain (the CLI's way)."""
    started = started or start_drain(policy, options, reader)
    try:
        return _run(policy, options, reader, tracker, dead_letters=dead_letters, started=started)
    finally:
        started.close()


def _run(
    policy: Policy,
    options: RunOptions,
    reader: Reader,
    tracker: Tracker,
    *,
    dead_letters: DeadLetterSink | None,
    started: StartedDrain,
) -> RunResult:
    timers, snapshot = started.timers, started.snapshot
    existing = tracker.find_run(options.run_key)
    if existing is not None and existing.info.status == "FINISHED":
        started.close()  # its records are the finished run's to commit, not to read again
        return replay(tracker, reader, existing.info.run_id, timers)
    if existing is not None:
        tracker.discard_run(existing)

    spec = policy.spec
    with timers.stage("champion"):
        champion = tracker.champion()
    fresh = build_estimator(spec.model)
    _check_metric(policy, fresh)
    base = RunResult(
        outcome="Skipped",
        policy=f"{policy.namespace}/{policy.name}",
        runKey=options.run_key,
        metric=spec.evaluation.metric,
        championVersion=champion.version if champion else None,
        offsets={str(r.partition): (r.committed, r.end) for r in snapshot.ranges},
    )
    if snapshot.new_records == 0:
        return replace(base, reasons=("NoNewRecords",), stages=timers.rounded())

    drained = drain_and_train(
        policy,
        snapshot,
        started.chunks(),
        fresh=fresh,
        champion=champion,
        options=options,
        timers=timers,
        dead_letters=dead_letters,
    )
    with timers.stage("evaluate"):
        candidate, baseline, decision = _gate(drained, champion, policy)
    outcome: Outcome
    if decision is None:
        outcome, reasons, message = "Skipped", ["NoValidRecords"], "no valid records to train on"
    else:
        outcome, reasons, message = decision.outcome, decision.reasons, decision.summary
    print(f"Decision: {outcome}: {message}", flush=True)
    result = replace(
        base,
        outcome=outcome,
        reasons=tuple(reasons),
        message=message,
        candidateScore=candidate.value if candidate else None,
        championScore=baseline.value if baseline else None,
        holdoutFraction=round(
            effective_holdout_fraction(
                spec.evaluation.holdoutFraction, spec.evaluation.maxHoldout, snapshot.new_records
            ),
            6,
        ),
        records=RecordCounts(  # valid and rejected: new records only (see Drained)
            read=drained.read,
            new=drained.new,
            reread=drained.reread,
            valid=drained.stats.n,
            train=drained.train,
            holdout=len(drained.holdout_y),
            rejected=sum(drained.rejects.values()),
        ),
        rejectedByReason=dict(drained.rejects),
        stages=timers.rounded(),
    )
    with timers.stage("log"):
        record = build_record(
            policy=policy,
            options=options,
            bootstrap_servers=reader.bootstrap_servers,
            snapshot=snapshot,
            champion=champion,
            drained=drained,
            candidate=candidate,
            baseline=baseline,
            decision=decision,
            result=result,
        )
        logged = tracker.log_run(record)
    final = _finish(
        tracker,
        reader,
        logged,
        result,
        offsets=snapshot.end_offsets(),
        timers=timers,
        dead_letters=dead_letters,
    )
    return replace(final, durationSeconds=round(time.monotonic() - started.started, 3))
