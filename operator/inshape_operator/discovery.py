"""Which version of a resource the API server serves, found through discovery and remembered
for a short while: Strimzi 1.x serves kafka.strimzi.io/v1 only, 0.45 v1beta2 only, and an
upgrade of its CRDs changes the answer under a running operator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

TTL_SECONDS = 60.0


def served_version(
    group: Mapping[str, Any] | None,
    preferred: Sequence[str],
    has_resource: Callable[[str], bool],
) -> str | None:
    """The first of `preferred` that the APIGroup document (`/apis/<group>`) lists and whose
    resource list has the resource (`has_resource(version)`); None if none is served."""
    if group is None:
        return None
    offered = {
        str(item.get("version"))
        for item in group.get("versions") or ()
        if isinstance(item, Mapping)
    }
    return next((v for v in preferred if v in offered and has_resource(v)), None)


def lists_resource(resources: Mapping[str, Any] | None, plural: str) -> bool:
    """Whether an APIResourceList (`/apis/<group>/<version>`) has `plural`."""
    return any(
        isinstance(item, Mapping) and item.get("name") == plural
        for item in (resources or {}).get("resources") or ()
    )


class VersionCache:
    """`discover()` remembered for `ttl` seconds; `refresh()` asks again now (after a 404).
    Shared by the handler threads, hence the lock."""

    def __init__(
        self,
        discover: Callable[[], str | None],
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._discover = discover
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._at: float | None = None

    def get(self) -> str | None:
        with self._lock:
            if self._at is not None and self._clock() - self._at < self._ttl:
                return self._value
        return self.refresh()

    def refresh(self) -> str | None:
        value = self._discover()
        with self._lock:
            self._value, self._at = value, self._clock()
        return value
