"""Env resolution of the local kubelet: order, $(VAR) expansion, downward API, references."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from inshape_hack.kubelet.env import (
    EnvError,
    PodFacts,
    command_line,
    expand,
    resolve_env,
    secret_data,
)

FACTS = PodFacts(pod_ip="127.0.0.7", host_ip="127.0.0.1", node_name="inshape-node")
POD: dict[str, Any] = {
    "metadata": {
        "name": "trainer-abc",
        "namespace": "ml",
        "uid": "u-1",
        "labels": {"app": "trainer"},
        "annotations": {"note": "hi"},
    },
    "spec": {"serviceAccountName": "runner"},
}
CONFIGMAPS = {("ml", "settings"): {"MODE": "fast", "bad key": "x", "LEVEL": "3"}}
SECRETS = {("ml", "creds"): {"PASSWORD": "s3cret"}}


def lookup(store: Mapping[tuple[str, str], Mapping[str, str]]) -> Any:
    return lambda ns, name: store.get((ns, name))


def resolve(container: dict[str, Any], base: dict[str, str] | None = None) -> dict[str, str]:
    return resolve_env(container, POD, FACTS, lookup(CONFIGMAPS), lookup(SECRETS), base=base)


def test_downward_api_fields() -> None:
    env = resolve(
        {
            "name": "c",
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            ],
        }
    )
    assert env == {
        "POD": "trainer-abc",
        "NS": "ml",
        "IP": "127.0.0.7",
        "APP": "trainer",
        "SA": "runner",
    }


def test_key_refs_and_env_from_with_prefix() -> None:
    env = resolve(
        {
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
                {
                    "name": "M",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}},
                },
            ],
        }
    )
    # "bad key" is not a valid variable name and is skipped, as the kubelet does.
    assert env == {"CFG_MODE": "fast", "CFG_LEVEL": "3", "PW": "s3cret", "M": "fast"}


def test_missing_reference_fails_unless_optional() -> None:
    ref: dict[str, Any] = {"name": "nope", "key": "k"}
    missing = {"name": "X", "valueFrom": {"secretKeyRef": ref}}
    with pytest.raises(EnvError, match="nope"):
        resolve({"name": "c", "env": [missing]})
    ref["optional"] = True
    assert resolve({"name": "c", "env": [missing]}) == {}
    bad_key = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "Q"}}}
    with pytest.raises(EnvError, match="couldn't find key Q"):
        resolve({"name": "c", "env": [bad_key]})


def test_later_values_expand_earlier_ones_and_base_is_overridden() -> None:
    env = resolve(
        {
            "name": "c",
            "env": [
                {"name": "A", "value": "one"},
                {"name": "B", "value": "$(A)-two-$(UNKNOWN)-$$(A)"},
                {"name": "HOME", "value": "/custom"},
            ],
        },
        base={"HOME": "/pods/x", "PATH": "/venv/bin"},
    )
    assert env["B"] == "one-two-$(UNKNOWN)-$(A)"
    assert env["HOME"] == "/custom"
    assert env["PATH"] == "/venv/bin"


def test_expand_edge_cases() -> None:
    assert expand("$(A", {"A": "x"}) == "$(A"
    assert expand("$$", {}) == "$"
    assert expand("a$(A)b", {"A": ""}) == "ab"


def test_command_line_expands_and_requires_a_command() -> None:
    container = {"name": "c", "command": ["python", "-c"], "args": ["print('$(GREETING)')"]}
    assert command_line(container, {"GREETING": "hi"}) == ["python", "-c", "print('hi')"]
    with pytest.raises(EnvError, match="no command"):
        command_line({"name": "c", "args": ["x"]}, {})


def test_unsupported_field_path_is_an_error() -> None:
    with pytest.raises(EnvError, match="fieldPath"):
        resolve(
            {
                "name": "c",
                "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}],
            }
        )


def test_secret_data_is_decoded() -> None:
    secret = {"data": {"k": base64.b64encode(b"v").decode()}, "stringData": {"s": "t"}}
    assert secret_data(secret) == {"k": "v", "s": "t"}
