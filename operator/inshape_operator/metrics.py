"""Prometheus metrics of the operator (served on INSHAPE_METRICS_PORT at /metrics).

- `inshape_runs_total{namespace,policy,outcome}`: finished update runs, counted once each.
- `inshape_pending_records{namespace,policy}`: the consumer group's lag at the last reconcile.
- `inshape_promotion_latency_seconds`: from a Promoted Job's completion to the target patched.
- `inshape_reconcile_seconds`: duration of one reconcile pass.

One `Metrics` per operator, on its own registry (nothing registered at import). The liveness
endpoint is Kopf's own (`/healthz` on INSHAPE_HEALTH_PORT, see __main__.py).
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "inshape_runs_total",
            "Finished update runs by outcome",
            ["namespace", "policy", "outcome"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "inshape_pending_records",
            "Records the policy's consumer group has not consumed",
            ["namespace", "policy"],
            registry=self.registry,
        )
        self.promotion_latency = Histogram(
            "inshape_promotion_latency_seconds",
            "Seconds from a Promoted Job's completion to the target Deployment patched",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.reconcile = Histogram(
            "inshape_reconcile_seconds",
            "Duration of one reconcile pass",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Start the /metrics HTTP server in a background thread."""
        start_http_server(port, registry=self.registry)

    def forget(self, namespace: str, policy: str) -> None:
        """Drop a deleted policy's gauge."""
        with contextlib.suppress(KeyError):
            self.pending.remove(namespace, policy)
