"""Patching the target Deployment's env var, and refusing targets elsewhere."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from inshape_api.spec import SpecError, TargetSpec, parse_policy
from inshape_operator.rollout import (
    PatchOp,
    TargetError,
    current_uri,
    env_patch,
    select_container,
    workload,
)
from inshape_operator.world import Container, EnvVar, Workload

ROOT = Path(__file__).resolve().parents[2]
URI = "models:/digits/7"
TARGET = TargetSpec(deployment="digits-serving", container="server", env="MODEL_URI")


def deployment(*containers: dict[str, Any], namespace: str = "ml") -> dict[str, Any]:
    return {
        "metadata": {"name": "digits-serving", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def patch_of(document: dict[str, Any], target: TargetSpec = TARGET) -> tuple[PatchOp, ...] | None:
    return env_patch(workload(document), target, "ml", URI)


def apply(document: dict[str, Any], patch: tuple[PatchOp, ...] | None) -> dict[str, Any]:
    """A minimal RFC 6902 applier (test/add/replace) to check the patch does what it says."""
    doc = copy.deepcopy(document)
    for op in [p.to_wire() for p in patch or ()]:
        *parents, last = op["path"].strip("/").split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "test":
            current = node[int(last)] if isinstance(node, list) else node[last]
            assert current == op["value"], f"test failed at {op['path']}"
        elif op["op"] == "add" and isinstance(node, list):
            node.append(op["value"]) if last == "-" else node.insert(int(last), op["value"])
        elif isinstance(node, list):
            node[int(last)] = op["value"]
        else:
            node[last] = op["value"]
    return doc


def env(document: dict[str, Any], index: int) -> list[dict[str, Any]]:
    return list(document["spec"]["template"]["spec"]["containers"][index].get("env", []))


def test_replaces_the_variable_in_the_named_container() -> None:
    d = deployment(
        {"name": "proxy", "env": [{"name": "MODEL_URI", "value": "keep"}]},
        {
            "name": "server",
            "env": [
                {"name": "A", "value": "1"},
                {"name": "MODEL_URI", "value": "models:/digits/6"},
            ],
        },
    )
    patch = patch_of(d)
    assert patch is not None
    assert patch[0].to_wire() == {
        "op": "test",
        "path": "/spec/template/spec/containers/1/name",
        "value": "server",
    }
    assert patch[1] == PatchOp("test", "/spec/template/spec/containers/1/env/1/name", "MODEL_URI")
    patched = apply(d, patch)
    assert env(patched, 1) == [{"name": "A", "value": "1"}, {"name": "MODEL_URI", "value": URI}]
    assert env(patched, 0) == [{"name": "MODEL_URI", "value": "keep"}]
    assert current_uri(workload(patched), TARGET) == URI
    assert patch_of(patched) is None  # in sync: nothing to do


def test_a_patch_against_a_changed_deployment_fails_its_test() -> None:
    d = deployment({"name": "server", "env": [{"name": "MODEL_URI", "value": "old"}]})
    patch = patch_of(d)
    moved = deployment(
        {"name": "server", "env": [{"name": "OTHER", "value": "x"}, {"name": "MODEL_URI"}]}
    )
    with pytest.raises(AssertionError, match="test failed"):
        apply(moved, patch)


def test_adds_the_variable_or_the_env_list() -> None:
    d = deployment({"name": "server", "env": [{"name": "A", "value": "1"}]})
    assert env(apply(d, patch_of(d)), 0)[-1] == {"name": "MODEL_URI", "value": URI}
    bare = deployment({"name": "server"})
    assert env(apply(bare, patch_of(bare)), 0) == [{"name": "MODEL_URI", "value": URI}]
    empty = deployment({"name": "server", "env": []})
    assert env(apply(empty, patch_of(empty)), 0) == [{"name": "MODEL_URI", "value": URI}]


def test_value_from_is_replaced_not_merged() -> None:
    d = deployment(
        {
            "name": "server",
            "env": [
                {"name": "MODEL_URI", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "uri"}}}
            ],
        }
    )
    assert current_uri(workload(d), TARGET) is None
    patched = apply(d, patch_of(d))
    assert env(patched, 0) == [{"name": "MODEL_URI", "value": URI}]


def test_first_container_by_default_and_default_env_name() -> None:
    d = deployment({"name": "a"}, {"name": "b"})
    patch = patch_of(d, TargetSpec(deployment="digits-serving"))
    assert patch is not None and patch[-1].path == "/spec/template/spec/containers/0/env"
    assert patch[-1].value == [{"name": "MODEL_URI", "value": URI}]
    assert current_uri(workload(d), TargetSpec(deployment="digits-serving")) is None


def test_workload_keeps_what_a_rollout_reads() -> None:
    d = deployment(
        {"name": "a"},
        {
            "name": "b",
            "env": [
                {"name": "X", "value": "1"},
                {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "Z"},
            ],
        },
    )
    assert workload(d) == Workload(
        "digits-serving",
        "ml",
        (
            Container("a", None),
            Container("b", (EnvVar("X", "1"), EnvVar("Y", None, True), EnvVar("Z", None))),
        ),
    )
    assert workload({}).containers == ()


def test_missing_container_is_an_error() -> None:
    with pytest.raises(TargetError, match="no container 'server'"):
        select_container(workload(deployment({"name": "other"})), "server")
    with pytest.raises(TargetError, match="no containers"):
        select_container(workload(deployment()), None)
    with pytest.raises(TargetError, match=r"no container 'server' \(has other\)"):
        patch_of(deployment({"name": "other"}))
    with pytest.raises(TargetError, match="no containers"):
        patch_of(deployment())


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ({"deployment": "other/digits-serving"}, "spec.target.deployment"),
        ({"deployment": "digits-serving.other"}, "spec.target.deployment"),
        ({"deployment": "digits-serving", "namespace": "other"}, "spec.target.namespace"),
        ({"deployment": ""}, "spec.target.deployment"),
        ({"deployment": "Digits"}, "spec.target.deployment"),
        ({}, "spec.target.deployment"),
    ],
)
def test_targets_outside_the_namespace_are_refused(target: dict[str, Any], path: str) -> None:
    document = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())
    document["spec"]["target"] = target
    with pytest.raises(SpecError) as caught:
        parse_policy(document)
    assert caught.value.path == path
    if path.endswith("namespace"):
        assert "unknown field" in str(caught.value)


def test_same_namespace_check() -> None:
    d = deployment({"name": "server"})
    assert env_patch(workload(d), TARGET, "ml", URI) is not None
    with pytest.raises(TargetError, match="'ml'"):
        env_patch(workload(d), TARGET, "prod", URI)
    elsewhere = deployment({"name": "server"}, namespace="prod")
    with pytest.raises(TargetError, match="namespace 'prod'"):
        env_patch(workload(elsewhere), TARGET, "ml", URI)
