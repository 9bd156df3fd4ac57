"""A container's environment from its pod spec, resolved the way the kubelet does it.

Pure functions: ConfigMaps and Secrets come in through lookup callables, so the rules
(order, `$(VAR)` expansion, optional references, the downward API) are unit-testable.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
# (namespace, name) -> the object's data, or None when it does not exist.
Lookup = Callable[[str, str], Mapping[str, str] | None]

_ITEM = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_C_IDENTIFIER = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvError(Exception):
    """The pod cannot start as specified; reported as CreateContainerConfigError."""


@dataclass(frozen=True)
class PodFacts:
    """What the downward API exposes that is not in the pod object until the kubelet says so."""

    pod_ip: str
    host_ip: str
    node_name: str


def field_value(pod: JSON, path: str, facts: PodFacts) -> str:
    """The value of a downward-API fieldRef.fieldPath."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or facts.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _ITEM.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef.fieldPath {path!r}")


def secret_data(secret: JSON) -> dict[str, str]:
    """A Secret's data, base64-decoded, with stringData taking precedence as the API does."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def configmap_data(configmap: JSON) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (configmap.get("binaryData") or {}).items()}
    data.update(configmap.get("data") or {})
    return data


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, `$$` escapes, others stay."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1 and text[i + 2 : end] in env:
                out.append(env[text[i + 2 : end]])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _key_ref(ref: JSON, namespace: str, lookup: Lookup, kind: str) -> str | None:
    """A configMapKeyRef/secretKeyRef value; None when optional and missing."""
    optional = bool(ref.get("optional", False))
    data = lookup(namespace, ref.get("name", ""))
    if data is None:
        if optional:
            return None
        raise EnvError(f"{kind} {ref.get('name')!r} not found")
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref.get('name')}")
    return data[ref["key"]]


def _env_from(source: JSON, namespace: str, configmaps: Lookup, secrets: Lookup) -> dict[str, str]:
    if "configMapRef" in source:
        ref, lookup, kind = source["configMapRef"], configmaps, "configmap"
    elif "secretRef" in source:
        ref, lookup, kind = source["secretRef"], secrets, "secret"
    else:
        raise EnvError(f"unsupported envFrom source {sorted(source)}")
    data = lookup(namespace, ref.get("name", ""))
    if data is None:
        if ref.get("optional", False):
            return {}
        raise EnvError(f"{kind} {ref.get('name')!r} not found")
    prefix = source.get("prefix", "")
    # Keys that are not valid variable names are skipped, as the kubelet does.
    return {prefix + k: v for k, v in data.items() if _C_IDENTIFIER.match(prefix + k)}


def resolve_env(
    container: JSON,
    pod: JSON,
    facts: PodFacts,
    configmaps: Lookup,
    secrets: Lookup,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's variables: `base`, then envFrom in order, then env in order."""
    namespace = pod.get("metadata", {}).get("namespace", "default")
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, namespace, configmaps, secrets))
    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"], facts)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], namespace, configmaps, "configmap")
            if value is not None:
                env[name] = value
        elif "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], namespace, secrets, "secret")
            if value is not None:
                env[name] = value
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
    return env


def command_line(container: JSON, env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded; there is no image entrypoint to fall back on."""
    command = list(container.get("command") or [])
    if not command:
        raise EnvError(
            f"container {container.get('name')!r} has no command: the local kubelet runs "
            "commands, not images"
        )
    return [expand(part, env) for part in command + list(container.get("args") or [])]
