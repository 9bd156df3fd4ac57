"""Kopf handlers, registered on a registry the caller owns (nothing happens at import).

- login: the credentials the kubernetes client finds (in-cluster, else kubeconfig).
- startup: Kopf's settings (own finalizer, own annotation prefix for its progress and diff-base
  storage, event posting level), the shared services in the memo, the metrics server.
- resume / create / update of a policy: a pass (an invalid spec is a permanent error).
- a daemon per policy: a pass every INSHAPE_POLL_SECONDS, or as soon as a time-based trigger
  is due (see wakeups.py); replaces a fixed-interval timer, which would start a cron slot up
  to a whole poll interval late.
- a policy annotated `inshape.dev/rollback: "true"`: a pass (it rolls back, then removes the
  annotation); Kopf's diff ignores annotations under its own prefix, so this is an event handler.
- an owned update Job that finished: a pass for its policy at once.

Passes are synchronous (the Kubernetes, Kafka and MLflow clients are) and run on the
operator's thread pool; the handlers only await them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import kopf

from inshape_api.names import (
    API_GROUP,
    API_VERSION,
    FINALIZER,
    KIND,
    LABEL_POLICY_UID,
    PLURAL,
    ROLLBACK_ANNOTATION,
)
from inshape_operator import results
from inshape_operator.act import Outcome, Writers
from inshape_operator.config import OperatorConfig
from inshape_operator.kube import Kube, load_config
from inshape_operator.lag import LagReader
from inshape_operator.metrics import Metrics
from inshape_operator.observe import NotYetError, Readers
from inshape_operator.reconcile import Services, reconcile
from inshape_operator.status import Event
from inshape_operator.wakeups import Wakeups
from inshape_operator.world import PolicyRef

RETRY_SECONDS = 2.0
WORKERS = 8


@dataclass
class Operator:
    """Everything the handlers share, built once at startup and kept in Kopf's memo."""

    config: OperatorConfig
    services: Services
    wakeups: Wakeups
    executor: ThreadPoolExecutor

    async def run_pass(self, ref: PolicyRef, logger: Any) -> Outcome:
        # The handler's context goes along: kopf.event() finds Kopf's settings and event
        # queue in context variables.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(
            self.executor, context.run, reconcile, self.services, ref, logger
        )
        self.wakeups.arm(ref.uid, outcome.recheck_at)
        return outcome


def post_event(ref: PolicyRef, event: Event) -> None:
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
    }
    kopf.event(
        kopf.Body(cast(kopf.RawBody, body)),
        type=event.type,
        reason=event.reason,
        message=event.message[:1024],
    )


def build(config: OperatorConfig) -> Operator:
    load_config()
    kube, metrics = Kube(), Metrics()
    services = Services(
        readers=Readers(kube=kube, lags=LagReader()),
        writers=Writers(kube=kube, metrics=metrics, post=post_event, config=config),
    )
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="reconcile")
    return Operator(config, services, Wakeups(), executor)


def operator_of(memo: kopf.Memo) -> Operator:
    found = memo.get("operator")
    if not isinstance(found, Operator):
        raise RuntimeError("the operator's startup handler has not run")
    return found


def ref_of(body: Mapping[str, Any]) -> PolicyRef:
    meta = body["metadata"]
    return PolicyRef(str(meta["namespace"]), str(meta["name"]), str(meta["uid"]))


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # Namespaced RBAC grants no cluster-wide list of namespaces/CRDs; without this Kopf
    # retries those scans for about a minute before it starts.
    settings.scanning.disabled = not config.cluster_wide
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


async def keep_time(
    operator: Operator, ref: PolicyRef, stopped: kopf.DaemonStopped, logger: Any
) -> None:
    """A policy's passes between events: each poll interval, or when a trigger comes due."""
    while not stopped:
        if not await operator.wakeups.sleep(ref.uid, operator.config.poll_seconds):
            continue  # re-armed by another pass: sleep again until the new time
        try:
            await operator.run_pass(ref, logger)
        except NotYetError as exc:
            logger.info(f"Waiting: {exc}")
            operator.wakeups.arm(ref.uid, None)
        except Exception:  # keep polling: the next pass may well succeed
            logger.exception("Reconcile failed; retrying at the next poll")


def register(registry: kopf.OperatorRegistry) -> None:
    """Register every handler on `registry`; the memo must hold `config` (OperatorConfig)."""
    register_lifecycle(registry)
    register_policies(registry)
    register_jobs(registry)


def register_lifecycle(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Kopf connects as the kubernetes client does (in-cluster token, else kubeconfig)."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        config = cast(OperatorConfig, memo["config"])
        configure(settings, config)
        memo["operator"] = operator = build(config)
        operator.services.writers.metrics.serve(config.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        operator = operator_of(memo)
        operator.services.readers.lags.close()
        operator.executor.shutdown(wait=False, cancel_futures=True)


def register_policies(registry: kopf.OperatorRegistry) -> None:
    group, version, plural = API_GROUP, API_VERSION, PLURAL

    @kopf.on.resume(group, version, plural, registry=registry)
    @kopf.on.create(group, version, plural, registry=registry)
    @kopf.on.update(group, version, plural, registry=registry)
    async def changed(memo: kopf.Memo, body: kopf.Body, logger: Any, **_: Any) -> None:
        try:
            outcome = await operator_of(memo).run_pass(ref_of(body), logger)
        except NotYetError as exc:
            raise kopf.TemporaryError(str(exc), delay=RETRY_SECONDS) from exc
        if outcome.spec_error:
            raise kopf.PermanentError(outcome.spec_error)

    @kopf.daemon(group, version, plural, registry=registry, cancellation_timeout=1.0)
    async def clock(
        memo: kopf.Memo, body: kopf.Body, stopped: kopf.DaemonStopped, logger: Any, **_: Any
    ) -> None:
        operator, ref = operator_of(memo), ref_of(body)
        try:
            await keep_time(operator, ref, stopped, logger)
        finally:
            operator.wakeups.forget(ref.uid)

    @kopf.on.event(
        group, version, plural, registry=registry, annotations={ROLLBACK_ANNOTATION: "true"}
    )
    async def rollback(memo: kopf.Memo, body: kopf.Body, type: str, logger: Any, **_: Any) -> None:
        if type != "DELETED":
            try:
                await operator_of(memo).run_pass(ref_of(body), logger)
            except NotYetError as exc:
                raise kopf.TemporaryError(str(exc), delay=RETRY_SECONDS) from exc

    @kopf.on.delete(group, version, plural, registry=registry, optional=True)
    async def deleted(memo: kopf.Memo, body: kopf.Body, **_: Any) -> None:
        operator, ref = operator_of(memo), ref_of(body)
        operator.services.writers.metrics.forget(ref.namespace, ref.name)
        operator.services.forget(ref.uid)


def register_jobs(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.event(
        "batch", "v1", "jobs", labels={LABEL_POLICY_UID: kopf.PRESENT}, registry=registry
    )
    async def job_changed(
        memo: kopf.Memo, body: kopf.Body, type: str, logger: Any, **_: Any
    ) -> None:
        """An update Job finished: a pass for its policy now rather than at the next poll."""
        if type == "DELETED" or results.job_state(body) == "Active":
            return
        owners = body["metadata"].get("ownerReferences") or ()
        owner = next((o for o in owners if o.get("controller")), None)
        if owner is None:
            return
        ref = PolicyRef(body["metadata"]["namespace"], owner["name"], owner["uid"])
        try:
            await operator_of(memo).run_pass(ref, logger)
        except NotYetError as exc:
            logger.info(f"Job {body['metadata']['name']} finished; its result waits: {exc}")
