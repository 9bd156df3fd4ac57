"""The ModelUpdatePolicy status: typed, and the source of the CRD's status schema.

Only the operator writes it. Field names are the JSON names; `doc(...)` carries the
description and OpenAPI keywords the CRD generator (inshape_operator.crd) puts in the schema.
`PolicyStatus.from_wire` reads a stored status field by field, so one field of an older or
hand-edited shape is dropped (and rewritten by the next pass) instead of blocking the policy.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args, get_type_hints

from inshape_api.result import Outcome, RecordCounts
from inshape_api.spec import doc
from inshape_api.wire import WireError, from_wire, to_wire

log = logging.getLogger(__name__)

ConditionStatus = Literal["True", "False", "Unknown"]
# metav1.Condition's validation of reason and its length limits.
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
REASON_MAX = 1024
MESSAGE_MAX = 32768
TYPE_MAX = 316


def _opt(text: str, **schema: Any) -> Any:
    return field(default=None, metadata=doc(text, **schema))


@dataclass(frozen=True)
class Condition:
    """One aspect of the policy, after the Kubernetes API conventions (metav1.Condition)."""

    type: str = field(metadata=doc("Ready, Progressing or Degraded.", maxLength=TYPE_MAX))
    status: ConditionStatus = field(metadata=doc("True, False or Unknown."))
    reason: str = field(
        metadata=doc("One CamelCase word.", maxLength=REASON_MAX, pattern=REASON.pattern)
    )
    message: str = field(metadata=doc("For humans.", maxLength=MESSAGE_MAX))
    lastTransitionTime: datetime = field(metadata=doc("When status last changed."))  # noqa: N815
    observedGeneration: int | None = _opt(  # noqa: N815
        "metadata.generation the condition was computed from.", minimum=0
    )

    def __post_init__(self) -> None:
        if self.status not in get_args(ConditionStatus):
            raise ValueError(f"condition {self.type}: status {self.status!r} is not True/False")
        if len(self.reason) > REASON_MAX or not REASON.match(self.reason):
            raise ValueError(f"condition {self.type}: reason {self.reason!r} is not CamelCase")


@dataclass(frozen=True)
class Champion:
    """A model version the target serves (or served)."""

    uri: str = field(metadata=doc("Model URI the target serves, models:/<name>/<version>."))
    version: str | None = _opt("Registered model version.")
    metric: float | None = _opt("Its score on the run's holdout.")
    metricName: str | None = _opt("The metric the score is in.")  # noqa: N815
    runId: str | None = _opt("MLflow run that produced it.")  # noqa: N815
    job: str | None = _opt("Update Job that produced it.")
    promotedAt: datetime | None = _opt("When it became champion.")  # noqa: N815


@dataclass(frozen=True)
class OffsetRange:
    start: int = field(metadata=doc("First offset new to the run.", minimum=0))
    end: int = field(metadata=doc("Offset after the last record it trained on.", minimum=0))


@dataclass(frozen=True)
class LastRun:
    """The newest finished update run."""

    outcome: Outcome = field(metadata=doc("Promoted, Rejected, Failed or Skipped."))
    job: str | None = _opt("Update Job name.")
    sequence: int | None = _opt("Run number of this policy.", minimum=1)
    trigger: str | None = _opt("What started it: Lag, Schedule or MaxInterval.")
    runId: str | None = _opt("MLflow run ID.")  # noqa: N815
    reasons: tuple[str, ...] = field(default=(), metadata=doc("CamelCase reasons."))
    message: str = field(default="", metadata=doc("Why, in words."))
    records: RecordCounts = field(
        default_factory=RecordCounts,
        metadata=doc("Records read, new, re-read (window), valid, train, holdout, rejected."),
    )
    offsets: dict[str, OffsetRange] = field(
        default_factory=dict, metadata=doc("Per partition, the offsets the run trained on.")
    )
    candidateMetric: float | None = _opt("The candidate's score.")  # noqa: N815
    championMetric: float | None = _opt("The champion's score on the same holdout.")  # noqa: N815
    modelVersion: str | None = _opt("Version the run registered.")  # noqa: N815
    finishedAt: datetime | None = _opt("When the Job finished.")  # noqa: N815


@dataclass(frozen=True)
class KafkaStatus:
    """How the operator reaches the policy's Kafka (and so how its Jobs do)."""

    bootstrapServers: str = field(metadata=doc("Address the Jobs and the lag reader use."))  # noqa: N815
    securityProtocol: str = field(  # noqa: N815
        metadata=doc("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, from tls and authentication.")
    )
    listener: str | None = _opt("The Strimzi listener picked to match the authentication.")


@dataclass(frozen=True)
class PolicyStatus:
    """Observed state, written by the operator only."""

    observedGeneration: int | None = _opt(  # noqa: N815
        "metadata.generation the status was computed from.", minimum=0
    )
    conditions: tuple[Condition, ...] = field(
        default=(),
        metadata=doc(
            "Ready (a champion is served), Progressing (a run is under way), "
            "Degraded (something needs attention).",
            None,
            **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        ),
    )
    champion: Champion | None = _opt("The model the target serves.")
    previousChampion: Champion | None = _opt(  # noqa: N815
        "The champion before; for a one-step rollback."
    )
    pendingRecords: int | None = _opt(  # noqa: N815
        "Records on the topic the consumer group has not trained on.", minimum=0
    )
    lastRun: LastRun | None = _opt("The newest finished update run.")  # noqa: N815
    kafka: KafkaStatus | None = _opt("The Kafka connection in use; absent while unresolved.")
    lastScheduleTime: datetime | None = _opt(  # noqa: N815
        "The last cron slot of spec.trigger.schedule acted on."
    )

    def to_wire(self) -> dict[str, Any]:
        document: dict[str, Any] = to_wire(self)
        return document

    @classmethod
    def from_wire(cls, stored: Mapping[str, Any] | None) -> PolicyStatus:
        """The stored status; a field that does not fit the type is dropped (and logged)."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if stored is None or stored.get(f.name) is None:
                continue
            try:
                values[f.name] = from_wire(stored[f.name], hints[f.name])
            except (WireError, ValueError) as exc:
                log.warning("Ignoring status.%s as stored: %s", f.name, exc)
        return cls(**values)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
