"""The typed picture of the world one reconcile pass works from (what `observe` returns).

Every value here was read from the API server, Kafka or MLflow during the pass; `plan` decides
from nothing else. Kubernetes objects are reduced to the fields the operator acts on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.result import (
    KAFKA_AUTH_FAILED,
    KAFKA_SECRET_MISSING,
    MLFLOW_SECRET_MISSING,
    MLFLOW_UNAUTHORIZED,
    RunResult,
)
from inshape_api.spec import Policy
from inshape_api.status import PolicyStatus
from inshape_operator.mlflow_credentials import NO_CREDENTIALS, MlflowCredentials

JobState = Literal["Active", "Succeeded", "Failed"]


@dataclass(frozen=True)
class PolicyRef:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Problem:
    """Something that keeps the policy from working right now: a CamelCase reason and a message."""

    reason: str
    message: str


@dataclass(frozen=True)
class ObservedPolicy:
    ref: PolicyRef
    generation: int
    created: datetime
    policy: Policy | None  # None when the spec can never work (spec_error says why)
    spec_error: str | None
    status: PolicyStatus
    stored_status: Mapping[str, Any]  # the status as stored (JSON), for the merge patch
    rollback_requested: bool = False


@dataclass(frozen=True)
class JobView:
    """One update Job of the policy."""

    name: str
    sequence: int | None
    state: JobState
    created: datetime | None
    trigger: str | None


@dataclass(frozen=True)
class FinishedRun:
    """The newest finished Job that status does not record yet, with what it reported
    (a Promoted claim already checked against MLflow)."""

    job: str
    sequence: int | None
    trigger: str | None
    finished_at: datetime | None
    result: RunResult


# Kafka problems a Job would meet too: starting one would only fail the same way.
CREDENTIAL_PROBLEMS = frozenset({KAFKA_AUTH_FAILED, KAFKA_SECRET_MISSING})


@dataclass(frozen=True)
class KafkaView:
    connection: KafkaConnection | None = None  # address and security, resolved; None: unknown
    pending: int | None = None  # the consumer group's lag; None when unknown
    problem: Problem | None = None  # Strimzi not ready, lag unreadable, credentials refused ...
    spec_error: str | None = None  # the named Strimzi cluster can never serve this policy

    @property
    def runs_blocked(self) -> bool:
        """No Job can succeed: the address is unknown or Kafka refuses the credentials."""
        if self.connection is None:
            return self.problem is not None
        return self.problem is not None and self.problem.reason in CREDENTIAL_PROBLEMS


# MLflow problems a Job (and the operator's own checks) would meet too.
MLFLOW_CREDENTIAL_PROBLEMS = frozenset({MLFLOW_UNAUTHORIZED, MLFLOW_SECRET_MISSING})


@dataclass(frozen=True)
class MlflowView:
    """How the policy's tracking server takes its credentials this pass."""

    credentials: MlflowCredentials = NO_CREDENTIALS  # values held, never shown
    problem: Problem | None = None  # credentials refused or their Secret missing

    @property
    def runs_blocked(self) -> bool:
        """No Job can log or register: MLflow refuses the credentials (or they are missing)."""
        return self.problem is not None and self.problem.reason in MLFLOW_CREDENTIAL_PROBLEMS


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None  # None when absent as a literal (valueFrom)
    from_source: bool = False


@dataclass(frozen=True)
class Container:
    name: str
    env: tuple[EnvVar, ...] | None  # None when the container has no env list at all


@dataclass(frozen=True)
class Workload:
    """The target Deployment, as far as a rollout reads it."""

    name: str
    namespace: str
    containers: tuple[Container, ...]
    opted_in_policy: str | None = None  # the policy its owner lets patch it (label)


@dataclass(frozen=True)
class World:
    now: datetime
    policy: ObservedPolicy
    jobs: tuple[JobView, ...] = ()
    finished: FinishedRun | None = None
    kafka: KafkaView = field(default_factory=KafkaView)
    mlflow: MlflowView = field(default_factory=MlflowView)
    target: Workload | None = None  # read when spec.target is set and a champion may serve

    @property
    def active_job(self) -> JobView | None:
        return next((j for j in self.jobs if j.state == "Active"), None)
