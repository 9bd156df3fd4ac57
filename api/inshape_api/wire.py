"""The API's typed values to and from their JSON shape: one encoder, one decoder for all.

Types are frozen dataclasses whose field names are the JSON names (camelCase, like the spec).
`to_wire` leaves out every field that holds its default (so a status or result carries only
what it says), writes times as Kubernetes does and never emits a non-finite number (JSON has
none: such a value is left out, wherever it is). `from_wire` is msgspec's typed conversion:
wrong shapes fail with the JSON path named.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class WireError(ValueError):
    """A JSON value that does not have the API's shape; the message names the path."""


def rfc3339(moment: datetime) -> str:
    """Kubernetes' time format: UTC, whole seconds, a Z."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def to_wire(value: Any) -> Any:
    """JSON-ready builtins: dataclasses as objects without their defaults, times as RFC 3339."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        document: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None or item == _default_of(f):
                continue
            encoded = to_wire(item)
            if encoded is not None:
                document[f.name] = encoded
        return document
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        items = ((str(k), to_wire(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None}
    if isinstance(value, list | tuple):
        return [v for v in (to_wire(v) for v in value) if v is not None]
    return value


def from_wire(data: Any, kind: type[T]) -> T:
    """`data` (parsed JSON) as a `kind`; WireError names the first path that does not fit."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise WireError(str(exc)) from exc


def encode(value: Any) -> str:
    """One compact JSON line with sorted keys."""
    return msgspec.json.encode(to_wire(value), order="sorted").decode()
