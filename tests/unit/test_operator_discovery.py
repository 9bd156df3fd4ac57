"""Which kafka.strimzi.io version the operator reads, from discovery documents."""

from __future__ import annotations

from typing import Any

from inshape_operator.discovery import VersionCache, lists_resource, served_version
from inshape_operator.strimzi import VERSIONS


def group(*versions: str) -> dict[str, Any]:
    """An APIGroup document as `/apis/kafka.strimzi.io` returns it."""
    return {
        "kind": "APIGroup",
        "name": "kafka.strimzi.io",
        "versions": [{"groupVersion": f"kafka.strimzi.io/{v}", "version": v} for v in versions],
        "preferredVersion": {"version": versions[0]} if versions else {},
    }


def everything(_version: str) -> bool:
    return True


def test_v1_is_preferred_over_v1beta2() -> None:
    assert served_version(group("v1beta2", "v1"), VERSIONS, everything) == "v1"
    assert served_version(group("v1"), VERSIONS, everything) == "v1"


def test_v1beta2_when_v1_is_not_served() -> None:
    assert (
        served_version(group("v1beta2", "v1beta1", "v1alpha1"), VERSIONS, everything) == "v1beta2"
    )


def test_a_version_without_kafkas_is_passed_over() -> None:
    # Only KafkaTopic's CRD serving v1 (a half-upgraded install) does not make Kafka v1.
    assert served_version(group("v1", "v1beta2"), VERSIONS, lambda v: v != "v1") == "v1beta2"


def test_nothing_served() -> None:
    assert served_version(None, VERSIONS, everything) is None
    assert served_version(group("v1alpha1"), VERSIONS, everything) is None


def test_resource_lists() -> None:
    listed = {"resources": [{"name": "kafkas"}, {"name": "kafkas/status"}]}
    assert lists_resource(listed, "kafkas")
    assert not lists_resource({"resources": [{"name": "kafkatopics"}]}, "kafkas")
    assert not lists_resource(None, "kafkas")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_answer_is_kept_for_the_ttl_and_refreshed_on_demand() -> None:
    answers = iter(["v1beta2", "v1", "v1"])
    asked: list[str] = []

    def discover() -> str | None:
        asked.append(answer := next(answers))
        return answer

    clock = Clock()
    cache = VersionCache(discover, ttl=60, clock=clock)
    assert cache.get() == "v1beta2"
    clock.now = 59
    assert cache.get() == "v1beta2" and len(asked) == 1
    clock.now = 61
    assert cache.get() == "v1" and len(asked) == 2
    assert cache.refresh() == "v1" and len(asked) == 3
