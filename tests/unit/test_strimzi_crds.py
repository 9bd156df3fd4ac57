"""The pinned Strimzi releases whose CRDs the cluster tests apply (hack/inshape_hack)."""

from __future__ import annotations

import pytest

from inshape_hack.strimzi_crds import KINDS, RELEASES, V1_ONLY, V1BETA2_ONLY, Release, java_major


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_412"', 8),
        ("no java here", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert java_major(output) == major


def test_one_release_serves_v1beta2_only_and_one_v1_only() -> None:
    assert (V1BETA2_ONLY.served, V1_ONLY.served) == ("v1beta2", "v1")
    assert "v1" not in V1BETA2_ONLY.api_versions["kafka"].split(",")


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.version)
def test_every_kind_and_jar_is_pinned(release: Release) -> None:
    assert set(release.crds) == set(release.api_versions) == set(KINDS)
    assert set(release.jars) == {"api", "crd-generator"}
    sums = [*release.crds.values(), *release.jars.values()]
    assert all(len(s) == 64 and int(s, 16) >= 0 for s in sums)
