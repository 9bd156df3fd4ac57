"""Pointing the serving Deployment at the champion: one env var of one container.

Level-based: `env_patch` compares the Deployment as observed with the champion's URI and returns
the JSON patch (RFC 6902) that closes the gap, or None when there is none. The patch carries
`test` operations on the container's and the variable's names, so a Deployment changed since it
was read makes the patch fail (422) instead of writing to the wrong place; the next reconcile
reads it again. Replacing the whole env entry also drops a `valueFrom` the entry may have had.

Only Deployments in the policy's own namespace can be targets: the spec's `deployment` is a
name, never `namespace/name`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from inshape_api.spec import DNS_LABEL

JSONPatch = list[dict[str, Any]]


class TargetError(ValueError):
    """A target that cannot be patched; the message says which part is wrong."""


def check_target(target: Mapping[str, Any]) -> str:
    """The Deployment name of spec.target; refuses anything that points outside the namespace."""
    if "namespace" in target:
        raise TargetError("spec.target.namespace: targets are always in the policy's namespace")
    name = target.get("deployment")
    if not isinstance(name, str) or not name:
        raise TargetError("spec.target.deployment: is required")
    if "/" in name or "." in name or not re.match(DNS_LABEL, name) or len(name) > 63:
        raise TargetError(
            f"spec.target.deployment: {name!r} must be the name of a Deployment in the "
            "policy's namespace (no namespace/ prefix)"
        )
    return name


def check_same_namespace(deployment: Mapping[str, Any], namespace: str) -> None:
    actual = (deployment.get("metadata") or {}).get("namespace")
    if actual != namespace:
        raise TargetError(f"Deployment is in namespace {actual!r}, the policy in {namespace!r}")


def _containers(deployment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def select_container(deployment: Mapping[str, Any], container: str | None) -> int:
    """Index of the named container, or of the first when no name is given."""
    containers = _containers(deployment)
    if not containers:
        raise TargetError("Deployment has no containers")
    if container is None:
        return 0
    for index, item in enumerate(containers):
        if item.get("name") == container:
            return index
    names = ", ".join(str(c.get("name")) for c in containers)
    raise TargetError(f"Deployment has no container {container!r} (has {names})")


def current_uri(deployment: Mapping[str, Any], container: str | None, env: str) -> str | None:
    """The env var's literal value in the target container (None if absent or valueFrom)."""
    item = _containers(deployment)[select_container(deployment, container)]
    for var in item.get("env") or ():
        if var.get("name") == env:
            value = var.get("value")
            return value if isinstance(value, str) and "valueFrom" not in var else None
    return None


def env_patch(
    deployment: Mapping[str, Any], target: Mapping[str, Any], uri: str
) -> JSONPatch | None:
    """JSON patch setting the target's env var to `uri`, or None if it already holds it."""
    check_target(target)
    env = str(target.get("env") or "MODEL_URI")
    container_name = target.get("container")
    index = select_container(deployment, container_name)
    item = _containers(deployment)[index]
    base = f"/spec/template/spec/containers/{index}"
    guard = {"op": "test", "path": f"{base}/name", "value": item.get("name")}
    entry = {"name": env, "value": uri}
    variables = list(item.get("env") or [])
    if not variables and "env" not in item:
        return [guard, {"op": "add", "path": f"{base}/env", "value": [entry]}]
    for position, var in enumerate(variables):
        if var.get("name") == env:
            if var.get("value") == uri and "valueFrom" not in var:
                return None
            return [
                guard,
                {"op": "test", "path": f"{base}/env/{position}/name", "value": env},
                {"op": "replace", "path": f"{base}/env/{position}", "value": entry},
            ]
    return [guard, {"op": "add", "path": f"{base}/env/-", "value": entry}]


def strategic_merge_patch(container: str, env: str, uri: str) -> dict[str, Any]:
    """The same change as a strategic merge patch (containers and env merge by name).

    For an env entry holding `valueFrom` this would leave both keys; env_patch does not.
    """
    return {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": container, "env": [{"name": env, "value": uri}]}]}
            }
        }
    }
