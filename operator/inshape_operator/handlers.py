"""Thin Kopf handlers: each one observes and delegates to `reconcile.reconcile`.

- startup: settings (own finalizer, own annotation prefix for Kopf's progress and diff-base
  storage, event posting level), the shared services in the root memo, the metrics server.
- resume / create / update of a policy, and a timer every INSHAPE_POLL_SECONDS: reconcile.
- a policy annotated `inshape.dev/rollback: "true"`: reconcile (it rolls back, then removes the
  annotation); Kopf's diff ignores annotations under its own prefix, so this is an event handler.
- an owned update Job that finished: reconcile its policy at once (result -> target patched
  without waiting for the timer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import kopf

from inshape_api.spec import API_GROUP, API_VERSION
from inshape_operator import config, job_builder, metrics, results
from inshape_operator.kube import PLURAL, Kube, load_config
from inshape_operator.lag import LagReader
from inshape_operator.reconcile import ROLLBACK_ANNOTATION, NotYetError, Services, reconcile
from inshape_operator.status import Event

CONFIG = config.load()
FINALIZER = f"{API_GROUP}/finalizer"
RETRY_SECONDS = 2.0


def _post(body: Mapping[str, Any], event: Event) -> None:
    kopf.event(
        body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body))),
        type=event.type,
        reason=event.reason,
        message=event.message[:1024],
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Own finalizer and annotation prefix, the shared services, the metrics endpoint."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # Namespaced RBAC grants no cluster-wide list of namespaces/CRDs; without this Kopf
    # retries those scans for about a minute before it starts.
    settings.scanning.disabled = not CONFIG.cluster_wide
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    load_config()
    memo.services = Services(
        kube=Kube(),
        lags=LagReader(),
        config=CONFIG,
        post=_post,
        locks={},
        locks_guard=threading.Lock(),
    )
    metrics.serve(CONFIG.metrics_port)


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    """Close the Kafka admin clients."""
    memo.services.lags.close()


def _run(memo: kopf.Memo, body: Mapping[str, Any], logger: Any, strict: bool) -> None:
    try:
        outcome = reconcile(memo.services, body, logger)
    except NotYetError as exc:
        raise kopf.TemporaryError(str(exc), delay=RETRY_SECONDS) from exc
    if strict and outcome.spec_error:
        raise kopf.PermanentError(outcome.spec_error)


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
def changed(memo: kopf.Memo, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """A policy appeared, changed, or the operator restarted: reconcile it."""
    _run(memo, body, logger, strict=True)


@kopf.timer(API_GROUP, API_VERSION, PLURAL, interval=CONFIG.poll_seconds)
def poll(memo: kopf.Memo, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    """Re-evaluate lag, schedule and Jobs every INSHAPE_POLL_SECONDS."""
    _run(memo, body, logger, strict=False)


@kopf.on.event(API_GROUP, API_VERSION, PLURAL, annotations={ROLLBACK_ANNOTATION: "true"})
def rollback(memo: kopf.Memo, body: kopf.Body, type: str, logger: kopf.Logger, **_: Any) -> None:
    """`inshape.dev/rollback: "true"`: point the target back at the previous champion."""
    if type != "DELETED":
        _run(memo, body, logger, strict=False)


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL, optional=True)
def deleted(body: kopf.Body, **_: Any) -> None:
    """Forget a deleted policy's metrics (its Jobs go with it: owner references)."""
    metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])


@kopf.on.event("batch", "v1", "jobs", labels={job_builder.LABEL_POLICY_UID: kopf.PRESENT})
def job_changed(
    memo: kopf.Memo,
    body: kopf.Body,
    type: str,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """An update Job finished: reconcile its policy now rather than at the next poll."""
    if type == "DELETED" or results.job_state(body) == "Active":
        return
    owner = next(
        (o for o in body["metadata"].get("ownerReferences") or () if o.get("controller")), None
    )
    if owner is None:
        return
    policy = {
        "metadata": {
            "name": owner["name"],
            "namespace": body["metadata"]["namespace"],
            "uid": owner["uid"],
        }
    }
    try:
        reconcile(memo.services, policy, logger)
    except NotYetError as exc:
        logger.info(f"Job {body['metadata']['name']} finished; its result waits: {exc}")
