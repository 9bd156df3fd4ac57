"""Helpers for the chart tests: the project's helm (Go-built, cached by `make tools`) and a
renderer returning the chart's objects as dicts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from inshape_hack import gotools
from inshape_hack.helm import helm_binary, with_kube_version

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inshape"
JSON = dict[str, Any]
# Offline renders have no cluster to discover the CRD from; the example needs it (see
# templates/example.yaml), so tell helm it is there.
POLICY_API = ["--api-versions", "inshape.dev/v1alpha1/ModelUpdatePolicy"]
# A cluster whose Strimzi serves kafka.strimzi.io/v1 (0.49 and later).
STRIMZI_V1 = ["--api-versions", "kafka.strimzi.io/v1/Kafka"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm offline, with the cluster's --kube-version for rendering; raise on failure."""
    argv = [helm_binary(), *with_kube_version(args, gotools.kube_version())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stderr}{result.stdout}")
    return result


def set_args(values: Mapping[str, Any]) -> list[str]:
    """`--set-json key=<json>` for each dotted key, so types survive (ints stay ints)."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def render_text(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "inshape",
    namespace: str = "inshape",
    extra: Iterable[str] = (),
) -> str:
    return helm(
        "template",
        release,
        str(CHART),
        "-n",
        namespace,
        *POLICY_API,
        *set_args(values or {}),
        *extra,
    ).stdout


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "inshape",
    namespace: str = "inshape",
    extra: Iterable[str] = (),
) -> list[JSON]:
    text = render_text(values, release=release, namespace=namespace, extra=extra)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objects: Iterable[JSON], kind: str, name: str | None = None) -> list[JSON]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: Iterable[JSON], kind: str, name: str | None = None) -> JSON:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def pod_spec(obj: JSON) -> JSON:
    return dict(obj["spec"]["template"]["spec"])
