"""`python -m inshape_operator`: run the operator (standalone, no peering) until SIGTERM.

Watches the namespaces in INSHAPE_NAMESPACES (the whole cluster when empty), serves Kopf's
liveness probe at :INSHAPE_HEALTH_PORT/healthz and Prometheus metrics at
:INSHAPE_METRICS_PORT/metrics. INSHAPE_LOG_FORMAT=json logs one JSON object per line.
`python -m inshape_operator.config` lists every setting.
"""

from __future__ import annotations

import logging
import sys

import kopf

from inshape_operator import config, handlers, logformat

_ROUTINE = ("Handler 'job_changed' succeeded",)


def _not_routine(record: logging.LogRecord) -> bool:
    """Drop Kopf's line for every finished Job's pass (the pass logs what it did)."""
    return not str(record.msg).startswith(_ROUTINE)


def main() -> int:
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"inshape-operator: {exc}", file=sys.stderr)
        return 2
    kopf.configure(verbose=settings.log_level == "DEBUG")
    if settings.log_format == "json":
        logformat.use_json()
    logging.getLogger().setLevel(settings.log_level_number)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").addFilter(_not_routine)
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    kopf.run(
        registry=registry,
        memo=kopf.Memo(config=settings),
        standalone=True,
        clusterwide=settings.cluster_wide,
        namespaces=settings.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
