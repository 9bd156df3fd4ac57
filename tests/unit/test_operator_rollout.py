"""Patching the target Deployment's env var, and refusing targets elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from inshape_operator.rollout import (
    TargetError,
    check_same_namespace,
    check_target,
    current_uri,
    env_patch,
    select_container,
    strategic_merge_patch,
)

URI = "models:/digits/7"
TARGET = {"deployment": "digits-serving", "container": "server", "env": "MODEL_URI"}


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "digits-serving", "namespace": "ml"},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def apply(document: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal RFC 6902 applier (test/add/replace) to check the patch does what it says."""
    import copy

    doc = copy.deepcopy(document)
    for op in patch:
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
    patch = env_patch(d, TARGET, URI)
    assert patch is not None
    assert patch[0] == {
        "op": "test",
        "path": "/spec/template/spec/containers/1/name",
        "value": "server",
    }
    patched = apply(d, patch)
    assert env(patched, 1) == [{"name": "A", "value": "1"}, {"name": "MODEL_URI", "value": URI}]
    assert env(patched, 0) == [{"name": "MODEL_URI", "value": "keep"}]
    assert current_uri(patched, "server", "MODEL_URI") == URI
    assert env_patch(patched, TARGET, URI) is None  # in sync: nothing to do


def test_adds_the_variable_or_the_env_list() -> None:
    d = deployment({"name": "server", "env": [{"name": "A", "value": "1"}]})
    assert env(apply(d, env_patch(d, TARGET, URI) or []), 0)[-1] == {
        "name": "MODEL_URI",
        "value": URI,
    }
    bare = deployment({"name": "server"})
    assert env(apply(bare, env_patch(bare, TARGET, URI) or []), 0) == [
        {"name": "MODEL_URI", "value": URI}
    ]


def test_value_from_is_replaced_not_merged() -> None:
    d = deployment(
        {
            "name": "server",
            "env": [
                {"name": "MODEL_URI", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "uri"}}}
            ],
        }
    )
    assert current_uri(d, "server", "MODEL_URI") is None
    patched = apply(d, env_patch(d, TARGET, URI) or [])
    assert env(patched, 0) == [{"name": "MODEL_URI", "value": URI}]


def test_first_container_by_default_and_default_env_name() -> None:
    d = deployment({"name": "a"}, {"name": "b"})
    patch = env_patch(d, {"deployment": "digits-serving"}, URI)
    assert patch is not None and patch[-1]["path"] == "/spec/template/spec/containers/0/env"
    assert patch[-1]["value"] == [{"name": "MODEL_URI", "value": URI}]


def test_missing_container_is_an_error() -> None:
    with pytest.raises(TargetError, match="no container 'server'"):
        select_container(deployment({"name": "other"}), "server")
    with pytest.raises(TargetError, match="no containers"):
        select_container(deployment(), None)


@pytest.mark.parametrize(
    "target",
    [
        {"deployment": "other/digits-serving"},
        {"deployment": "digits-serving.other"},
        {"deployment": "digits-serving", "namespace": "other"},
        {"deployment": ""},
        {"deployment": "Digits"},
        {},
    ],
)
def test_targets_outside_the_namespace_are_refused(target: dict[str, Any]) -> None:
    with pytest.raises(TargetError):
        check_target(target)
    with pytest.raises(TargetError):
        env_patch(deployment({"name": "server"}), target, URI)


def test_same_namespace_check() -> None:
    check_same_namespace(deployment({"name": "s"}), "ml")
    with pytest.raises(TargetError, match="'ml'"):
        check_same_namespace(deployment({"name": "s"}), "prod")
    assert check_target(TARGET) == "digits-serving"


def test_strategic_merge_patch_shape() -> None:
    patch = strategic_merge_patch("server", "MODEL_URI", URI)
    containers = patch["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "server", "env": [{"name": "MODEL_URI", "value": URI}]}]
