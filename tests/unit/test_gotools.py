"""The Go tools' pins and version stamps, and helm's offline Kubernetes version."""

from __future__ import annotations

import pytest

from inshape_hack.gotools import kubernetes_ldflags, required_version
from inshape_hack.helm import with_kube_version


def test_required_version_reads_single_and_block_requires() -> None:
    gomod = "module x\n\nrequire a/b v1.2.3\n\nrequire (\n\tc/d v0.1.0 // indirect\n)\n"
    assert required_version(gomod, "a/b") == "v1.2.3"
    assert required_version(gomod, "c/d") == "v0.1.0"
    with pytest.raises(ValueError, match="e/f"):
        required_version(gomod, "e/f")


def test_kubernetes_version_stamp() -> None:
    flags = kubernetes_ldflags("v1.34.4", "2025-01-01T00:00:00Z")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags


def test_helm_gets_a_kube_version_only_when_rendering_offline() -> None:
    assert with_kube_version(["template", "x", "charts/x"], "v1.34.4")[-1] == (
        "--kube-version=v1.34.4"
    )
    assert with_kube_version(["--debug", "lint", "c"], "v1.34.4")[-1] == "--kube-version=v1.34.4"
    assert with_kube_version(["template", "--kube-version", "1.30", "c"], "v1.34.4") == [
        "template",
        "--kube-version",
        "1.30",
        "c",
    ]
    assert with_kube_version(["install", "x", "c"], "v1.34.4") == ["install", "x", "c"]
