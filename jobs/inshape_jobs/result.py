"""The run's one-line JSON result: printed last, and written to the termination message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
OMITTABLE = ("offsets", "rejectedByReason", "stages", "message")


def encode(result: dict[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"), sort_keys=True)


def compact(result: dict[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """The result as JSON within limit bytes, dropping detail (still in the log) if needed."""
    trimmed = dict(result)
    text = encode(trimmed)
    for key in OMITTABLE:
        if len(text.encode()) <= limit:
            break
        trimmed.pop(key, None)
        trimmed["truncated"] = True
        text = encode(trimmed)
    return text


def emit(result: dict[str, Any], termination_path: str | None) -> None:
    print(encode(result), flush=True)
    if termination_path:
        Path(termination_path).write_text(compact(result))
