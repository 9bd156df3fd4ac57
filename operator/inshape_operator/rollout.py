"""Pointing the serving Deployment at the champion: one env var of one container.

Level-based: `env_patch` compares the Deployment as observed with the champion's URI and returns
the JSON patch (RFC 6902) that closes the gap, or None when there is none. The patch carries
`test` operations on the container's and the variable's names, so a Deployment changed since it
was read makes the patch fail (422) instead of writing to the wrong place; the next reconcile
reads it again. Replacing the whole env entry also drops a `valueFrom` the entry may have had.

Only Deployments in the policy's own namespace can be targets: spec.target.deployment is a DNS
label (never `namespace/name`), and the Deployment read must say the policy's namespace. And
only those whose owner opted in: the Deployment's `inshape.dev/policy` label names the policy
(whoever may create a policy may not thereby rewrite any Deployment of the namespace).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inshape_api.names import TARGET_OPT_IN_LABEL
from inshape_api.spec import TargetSpec
from inshape_operator.world import Container, EnvVar, Workload


class TargetError(ValueError):
    """A target that cannot be patched; the message says which part is wrong."""


@dataclass(frozen=True)
class PatchOp:
    """One JSON-patch operation."""

    op: str
    path: str
    value: Any

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "value": self.value}


def workload(deployment: Mapping[str, Any]) -> Workload:
    """The parts of a Deployment a rollout reads."""
    meta = deployment.get("metadata") or {}
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = []
    for item in pod.get("containers") or ():
        env = item.get("env")
        containers.append(
            Container(
                name=str(item.get("name")),
                env=None
                if env is None
                else tuple(
                    EnvVar(
                        name=str(var.get("name")),
                        value=var.get("value") if isinstance(var.get("value"), str) else None,
                        from_source="valueFrom" in var,
                    )
                    for var in env
                ),
            )
        )
    opted_in = (meta.get("labels") or {}).get(TARGET_OPT_IN_LABEL)
    return Workload(
        str(meta.get("name")),
        str(meta.get("namespace")),
        tuple(containers),
        opted_in_policy=str(opted_in) if opted_in else None,
    )


def select_container(target: Workload, container: str | None) -> int:
    """Index of the named container, or of the first when no name is given."""
    if not target.containers:
        raise TargetError("Deployment has no containers")
    if container is None:
        return 0
    for index, item in enumerate(target.containers):
        if item.name == container:
            return index
    names = ", ".join(c.name for c in target.containers)
    raise TargetError(f"Deployment has no container {container!r} (has {names})")


def current_uri(target: Workload, spec: TargetSpec) -> str | None:
    """The env var's literal value in the target container (None if absent or valueFrom)."""
    item = target.containers[select_container(target, spec.container)]
    for var in item.env or ():
        if var.name == spec.env:
            return None if var.from_source else var.value
    return None


def env_patch(
    target: Workload, spec: TargetSpec, namespace: str, uri: str
) -> tuple[PatchOp, ...] | None:
    """JSON patch setting the target's env var to `uri`, or None if it already holds it."""
    if target.namespace != namespace:
        raise TargetError(
            f"Deployment is in namespace {target.namespace!r}, the policy in {namespace!r}"
        )
    index = select_container(target, spec.container)
    item: Container = target.containers[index]
    base = f"/spec/template/spec/containers/{index}"
    guard = PatchOp("test", f"{base}/name", item.name)
    entry = {"name": spec.env, "value": uri}
    if item.env is None:
        return (guard, PatchOp("add", f"{base}/env", [entry]))
    for position, var in enumerate(item.env):
        if var.name == spec.env:
            if var.value == uri and not var.from_source:
                return None
            return (
                guard,
                PatchOp("test", f"{base}/env/{position}/name", spec.env),
                PatchOp("replace", f"{base}/env/{position}", entry),
            )
    return (guard, PatchOp("add", f"{base}/env/-", entry))
