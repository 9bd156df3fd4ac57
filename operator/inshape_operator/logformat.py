"""A JSON log line per record, with the standard library only (INSHAPE_LOG_FORMAT=json).

Each line is one object: time (RFC 3339, UTC), level, logger, message, and, for Kopf's
per-object loggers, `object` (apiVersion, kind, namespace, name, uid of the resource being
handled); an exception adds `exception` with its formatted traceback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Kopf's ObjectLogger puts the handled resource in this record attribute.
KOPF_REF = "k8s_ref"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on an unserialisable argument."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, KOPF_REF, None)
        if isinstance(ref, dict):
            line["object"] = {k: v for k, v in ref.items() if v is not None}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


def use_json(logger: logging.Logger | None = None) -> None:
    """Format every handler of `logger` (default the root, where Kopf's handler is) as JSON."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
