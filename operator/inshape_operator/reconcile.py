"""The one reconcile of a policy: observe -> plan -> act, under the policy's own lock.

Level-based: every pass recomputes from the policy, its Jobs (and their pods), the Strimzi
Kafka resource, the consumer group's lag, the target Deployment and MLflow, so a restarted
operator continues where the last one stopped. Acts only on gaps: a Job is created only when
none is active (deterministic name: a retried create meets 409), the target is patched only
when its env var differs from the champion's URI (so a promotion is applied exactly once),
status is written only when it changed.

Rollback: the annotation `inshape.dev/rollback: "true"` swaps champion and previousChampion,
points the target back at the previous URI, moves MLflow's `champion` alias back, and is
removed when done.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from inshape_operator.act import Logger, Outcome, Writers, act
from inshape_operator.observe import Readers, observe
from inshape_operator.plan import plan
from inshape_operator.world import PolicyRef


@dataclass
class Services:
    """What reconciles talk to; one per operator, shared by every policy (thread-safe)."""

    readers: Readers
    writers: Writers
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, uid: str) -> threading.Lock:
        """The lock of one policy: its passes (timer, change, Job event) never overlap."""
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, uid: str) -> None:
        with self._guard:
            self._locks.pop(uid, None)


def reconcile(services: Services, ref: PolicyRef, log: Logger) -> Outcome:
    """One pass over one policy (see the module docstring)."""
    started = time.monotonic()
    with services.lock(ref.uid):
        world = observe(services.readers, ref, datetime.now(UTC))
        if world is None:
            return Outcome()
        outcome = act(services.writers, world, plan(world, services.writers.config), log)
    services.writers.metrics.reconcile.observe(time.monotonic() - started)
    return outcome
