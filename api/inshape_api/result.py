"""What one update run reports: the Job encodes it once, the operator decodes it once.

The Job prints the result as its last line and writes it to its termination message
(Kubernetes keeps 4096 bytes of it); the operator reads it from the finished pod. Decoding
never raises: garbage, a crash's log tail or a result of the wrong shape becomes a Failed
result with a reason, so the operator can always record *something* for a finished Job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import msgspec

from inshape_api.wire import WireError, encode, from_wire

Outcome = Literal["Promoted", "Rejected", "Failed", "Skipped"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
MODEL_URI = re.compile(r"^models:/[^/\s]+/[0-9]+$")
MESSAGE_MAX = 1024
# A Failed run's reason when Kafka refused the Job's TLS or SASL credentials: no retry helps
# until the Secret (or the listener) changes.
KAFKA_AUTH_FAILED = "KafkaAuthFailed"
KAFKA_SECRET_MISSING = "KafkaSecretMissing"  # a Secret (or key) the connection names is not there
# MLflow answered 401/403: the credentials of spec.mlflow.credentialsSecret (or their absence)
# are refused; no retry helps until the Secret changes.
MLFLOW_UNAUTHORIZED = "MlflowUnauthorized"
MLFLOW_SECRET_MISSING = "MlflowSecretMissing"  # the Secret is absent or holds no credentials
TERMINATION_MESSAGE_LIMIT = 4096


@dataclass(frozen=True)
class RecordCounts:
    """How many records a run met. `read` counts everything fetched; a retrain run also
    re-reads its window (`reread`), so the others count only records new to this run: each
    bad record is rejected once, in the run that first meets it."""

    read: int = 0
    new: int = 0
    reread: int = 0
    valid: int = 0
    train: int = 0
    holdout: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class RunResult:
    """One run's outcome; JSON names as written (camelCase, like the spec)."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    message: str = ""
    policy: str | None = None  # namespace/name
    runKey: str | None = None  # noqa: N815 - the Job's controller uid (idempotency)
    runId: str | None = None  # noqa: N815 - the MLflow run
    metric: str | None = None
    championVersion: str | None = None  # noqa: N815 - the version the candidate was compared with
    candidateScore: float | None = None  # noqa: N815
    championScore: float | None = None  # noqa: N815
    holdoutFraction: float | None = None  # noqa: N815
    modelVersion: str | None = None  # noqa: N815 - registered by this run
    modelUri: str | None = None  # noqa: N815
    records: RecordCounts = field(default_factory=RecordCounts)
    rejectedByReason: dict[str, int] = field(default_factory=dict)  # noqa: N815
    # Per partition, [first new offset, end offset): what the run trained on and committed.
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    durationSeconds: float | None = None  # noqa: N815
    replayed: bool = False  # a retry that only redid registration, alias and commit
    truncated: bool = False  # detail dropped to fit the termination message

    def encode(self) -> str:
        return encode(self)

    def compact(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """The result within `limit` bytes, dropping detail (still in the log) as needed."""
        shorter = (
            replace(self, truncated=True, offsets={}),
            replace(self, truncated=True, offsets={}, rejectedByReason={}),
            replace(self, truncated=True, offsets={}, rejectedByReason={}, stages={}),
            replace(self, truncated=True, offsets={}, rejectedByReason={}, stages={}, message=""),
        )
        text = self.encode()
        for result in shorter:
            if len(text.encode()) <= limit:
                break
            text = result.encode()
        return text


def failed(
    reason: str, message: str, *, run_key: str | None = None, run_id: str | None = None
) -> RunResult:
    """A Failed result saying why."""
    return RunResult(
        outcome="Failed",
        reasons=(reason,),
        message=message[:MESSAGE_MAX],
        runKey=run_key,
        runId=run_id,
    )


def _last_result_line(text: str) -> str | None:
    """The last line that looks like a JSON result (the Job prints it last)."""
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{") and '"outcome"' in line:
            return line
    return None


def decode(text: str | None) -> RunResult:
    """The result in a termination message or log tail; anything else is a Failed result."""
    if not text or not text.strip():
        return failed("NoResult", "the update Job left no result")
    line = _last_result_line(text)
    if line is None:
        last = text.strip().splitlines()[-1]
        return failed("UnreadableResult", f"no JSON result; last output: {last}")
    try:
        result = from_wire(msgspec.json.decode(line), RunResult)
    except (msgspec.DecodeError, WireError) as exc:
        return failed("UnreadableResult", f"the result does not fit the API: {exc}")
    result = replace(result, message=result.message[:MESSAGE_MAX])
    if result.outcome == "Promoted" and not (result.modelUri and MODEL_URI.match(result.modelUri)):
        return failed(
            "PromotedWithoutModelUri",
            f"outcome Promoted but modelUri is {result.modelUri!r}",
            run_id=result.runId,
        )
    return result
