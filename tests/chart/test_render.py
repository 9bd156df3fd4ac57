"""The chart rendered offline: lint, defaults and non-defaults, the schema, and the plain YAML
under manifests/ (CRD, examples, Strimzi, serving) kept in step with it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from inshape_operator import config, crd, strimzi
from tests.chart.conftest import (
    CHART,
    JSON,
    POLICY_API,
    ROOT,
    STRIMZI_V1,
    find,
    helm,
    one,
    pod_spec,
    render,
)

HELM_LABELS = ("helm.sh/", "app.kubernetes.io/")
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


def workloads(objects: list[JSON]) -> list[JSON]:
    return find(objects, "Deployment")


def containers(objects: list[JSON]) -> list[JSON]:
    return [c for d in workloads(objects) for c in pod_spec(d)["containers"]]


def test_lint_is_clean_with_defaults_and_with_everything_on() -> None:
    helm("lint", "--strict", str(CHART))
    helm(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "strimzi.enabled=true,rbac.clusterWide=true,mlflow.external.uri=http://mlflow:5000",
    )


def test_defaults_render_the_operator_mlflow_and_namespaced_rbac_only() -> None:
    objects = render(namespace="ml")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",  # operator
            "Service",  # operator metrics
            "Deployment",  # mlflow
            "Service",  # mlflow
            "PersistentVolumeClaim",  # mlflow
        ]
    )
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == "ml"
    binding = one(objects, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "inshape", "namespace": "ml"}]
    crd_object = one(objects, "CustomResourceDefinition")
    assert crd_object["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}

    operator = one(objects, "Deployment", "inshape-operator")
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(operator)
    assert spec["serviceAccountName"] == "inshape"
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "inshape_operator"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INSHAPE_NAMESPACES"] == "ml"
    assert env["INSHAPE_JOB_IMAGE"] == container["image"] == "inshape:0.1.0"
    assert env["INSHAPE_HEALTH_PORT"] == "8080"
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert container["resources"]["limits"]["memory"] == "512Mi"

    mlflow = one(objects, "Deployment", "inshape-mlflow")
    (server,) = pod_spec(mlflow)["containers"]
    assert server["command"][:2] == ["mlflow", "server"]
    assert "--backend-store-uri=sqlite:////data/mlflow.db" in server["command"]
    hosts = next(a for a in server["command"] if a.startswith("--allowed-hosts="))
    assert "inshape-mlflow.ml:5000" in hosts.split("=", 1)[1].split(",")
    claim = pod_spec(mlflow)["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert one(objects, "PersistentVolumeClaim", claim)


def test_every_container_is_locked_down_and_names_its_command() -> None:
    objects = render(
        {"example.enabled": True, "kafka.bootstrapServers": "kafka:9092", "strimzi.enabled": True}
    )
    assert len(workloads(objects)) == 3
    for deployment in workloads(objects):
        spec = pod_spec(deployment)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts_tmp = False
        for container in spec["containers"]:
            assert container["command"], f"{deployment['metadata']['name']} has no command"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert "limits" in container["resources"]
            mounts_tmp = any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
        tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
        assert mounts_tmp and tmp == {"name": "tmp", "emptyDir": {}}


def test_the_operator_gets_every_setting_of_its_config() -> None:
    (container,) = pod_spec(one(render(), "Deployment", "inshape-operator"))["containers"]
    names = {e["name"] for e in container["env"]} - {"HOME"}
    assert names == {s.env for s in config.SETTINGS}
    values = {e["name"]: e["value"] for e in container["env"]}
    assert config.load(values).namespaces == ("inshape",)  # the operator accepts them


def test_non_default_values() -> None:
    objects = render(
        {
            "rbac.clusterWide": True,
            "crds.keep": False,
            "strimzi.enabled": True,
            "strimzi.clusterName": "events",
            "strimzi.topic.partitions": 6,
            "mlflow.external.uri": "http://mlflow.shared:5000",
            "example.enabled": True,
            "example.policy": "regressor",
            "example.minNewRecords": 500,
            "example.serving.port": 9000,
            "image.repository": "registry.example/inshape",
            "image.tag": "1.2.3",
            "operator.job.image": "registry.example/inshape-jobs:1.2.3",
            "operator.job.runAsUser": 0,
            "serviceAccount.name": "inshape-operator",
        },
        release="prod",
    )
    assert not find(objects, "Role") and not find(objects, "RoleBinding")
    cluster_role = one(objects, "ClusterRole", "prod-inshape-operator")
    assert {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    } in cluster_role["rules"]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "inshape-operator"
    assert one(objects, "ServiceAccount", "inshape-operator")
    assert "annotations" not in one(objects, "CustomResourceDefinition")["metadata"]
    # External MLflow: no server, and the policy and the serving pods use that URI.
    assert not find(objects, "PersistentVolumeClaim")
    assert {d["metadata"]["name"] for d in workloads(objects)} == {
        "prod-inshape-operator",
        "hyperplane-serving",
    }
    operator = pod_spec(one(objects, "Deployment", "prod-inshape-operator"))["containers"][0]
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert env["INSHAPE_NAMESPACES"] == ""
    assert env["INSHAPE_JOB_IMAGE"] == "registry.example/inshape-jobs:1.2.3"
    assert env["INSHAPE_JOB_RUN_AS_USER"] == ""
    assert operator["image"] == "registry.example/inshape:1.2.3"

    policy = one(objects, "ModelUpdatePolicy", "hyperplane")
    assert policy["spec"]["source"]["kafka"]["strimziCluster"] == "events"
    assert "bootstrapServers" not in policy["spec"]["source"]["kafka"]
    assert policy["spec"]["trigger"]["minNewRecords"] == 500
    assert policy["spec"]["model"]["window"]["maxRecords"] == 50000
    assert policy["spec"]["mlflow"]["trackingUri"] == "http://mlflow.shared:5000"
    serving = pod_spec(one(objects, "Deployment", "hyperplane-serving"))["containers"][0]
    assert "--port=9000" in serving["command"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.shared:5000"} in serving["env"]
    assert one(objects, "Service", "hyperplane-serving")["spec"]["ports"][0]["port"] == 9000
    assert one(objects, "Kafka", "events")["spec"]["kafka"]["listeners"][0]["port"] == 9092
    assert one(objects, "KafkaTopic")["spec"]["partitions"] == 6
    assert one(objects, "KafkaNodePool")["metadata"]["labels"]["strimzi.io/cluster"] == "events"


def test_watch_namespaces_get_one_role_each() -> None:
    objects = render({"operator.watchNamespaces": ["ml", "team-b"]}, namespace="inshape")
    assert sorted(r["metadata"]["namespace"] for r in find(objects, "Role")) == ["ml", "team-b"]
    for binding in find(objects, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "inshape"
    (container,) = pod_spec(one(objects, "Deployment", "inshape-operator"))["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INSHAPE_NAMESPACES"] == "ml,team-b"


def _secret_rules(role: JSON) -> list[JSON]:
    return [r for r in role["rules"] if "secrets" in r["resources"]]


def test_secrets_are_read_by_name_only_and_can_be_turned_off() -> None:
    for values, kind in (({}, "Role"), ({"rbac.clusterWide": True}, "ClusterRole")):
        role = one(render(values), kind)
        assert _secret_rules(role) == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
        ]
    assert _secret_rules(one(render({"rbac.readKafkaSecrets": False}), "Role")) == []


def test_names_are_dns_labels_even_for_a_long_release_name() -> None:
    release = "a-release-name-long-enough-that-helm-must-truncate-it"  # 53, helm's limit
    objects = render({"example.enabled": True, "kafka.bootstrapServers": "k:9092"}, release=release)
    names = [o["metadata"]["name"] for o in objects]
    for name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(set(keys)) == len(keys)  # truncation made no two objects of a kind collide
    operator = next(n for n in names if n.endswith("-operator"))
    assert operator == f"{release}-operator"  # "<release>-inshape" cut to fit 63
    for deployment in find(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert "app.kubernetes.io/version" not in selector and "helm.sh/chart" not in selector
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", "operator.bogus=1"], "bogus"),
        (["--set", "rbac.clusterwide=true"], "clusterwide"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "operator.healthPort=0"], "healthPort"),
        (["--set", "example.policy=ranker"], "policy"),
        (["--set", "mlflow.external.uri=mlflow:5000"], "uri"),
        (["--set", "operator.watchNamespaces[0]=Not_A_Namespace"], "watchNamespaces"),
    ],
)
def test_the_schema_rejects_a_bad_value_naming_the_key(args: list[str], key: str) -> None:
    result = helm("template", "x", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert key in result.stderr, result.stderr


def test_the_example_without_a_kafka_fails_with_what_to_set() -> None:
    result = helm(
        "template", "x", str(CHART), *POLICY_API, "--set", "example.enabled=true", check=False
    )
    assert result.returncode != 0
    assert "kafka.bootstrapServers or strimzi.enabled" in result.stderr


# --- values.yaml: documented, camelCase, and exactly what the schema allows -------------------


def leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict) and value:
            out += leaf_paths(value, f"{path}.")
    return out


def schema_paths(schema: dict[str, Any], prefix: str = "") -> list[str]:
    assert schema.get("additionalProperties") is False, f"{prefix or 'root'} allows unknown keys"
    out = []
    for key, sub in schema["properties"].items():
        path = f"{prefix}{key}"
        out.append(path)
        if sub.get("type") == "object" and "properties" in sub:
            out += schema_paths(sub, f"{path}.")
    return out


def test_every_value_is_documented_camel_case_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    comments = {m.group(1) for m in re.finditer(r"^\s*# ([A-Za-z0-9.]+) ", text, re.MULTILINE)}
    free_maps = {"resources", "annotations", "nodeSelector", "requests", "limits"}
    paths = [
        p
        for p in leaf_paths(values)
        if not any(f".{m}." in f".{p}" and not p.endswith(f".{m}") for m in free_maps)
        and not re.search(r"\.(requests|limits)\.", p)
    ]
    undocumented = [p for p in paths if p not in comments]
    assert not undocumented, f"values without a comment naming them: {undocumented}"
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", k) for p in paths for k in p.split(".")), paths
    in_schema = set(schema_paths(schema))
    structural = {p for p in paths if not re.search(r"\.resources\.", p)}
    assert structural - in_schema == set(), "values the schema does not know"
    assert in_schema - set(leaf_paths(values)) == set(), "schema keys with no default value"


# --- manifests/ kept in step with the chart ----------------------------------------------------


def strip_chart_labels(obj: Any) -> Any:
    """The object without the labels only Helm adds (app.kubernetes.io/*, helm.sh/*)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            kept = value
            if key in ("labels", "matchLabels", "selector") and isinstance(value, dict):
                kept = {k: v for k, v in value.items() if not k.startswith(HELM_LABELS)}
            out[key] = strip_chart_labels(kept)
        return out
    if isinstance(obj, list):
        return [strip_chart_labels(v) for v in obj]
    return obj


def load_all(path: Path) -> list[JSON]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind_and_name(objects: list[JSON]) -> dict[tuple[str, str], JSON]:
    return {(o["kind"], o["metadata"]["name"]): strip_chart_labels(o) for o in objects}


def test_the_chart_crd_is_the_generated_one() -> None:
    copy = CHART / "files" / "modelupdatepolicies.inshape.dev.yaml"
    assert copy.read_text() == (ROOT / crd.MANIFEST).read_text(), (
        "charts/inshape/files/ has a stale CRD: copy manifests/crd's (`make crd` output)"
    )
    manifest = yaml.safe_load((ROOT / crd.MANIFEST).read_text())
    rendered = one(render(), "CustomResourceDefinition")
    assert rendered["spec"] == manifest["spec"]
    assert rendered["metadata"]["name"] == manifest["metadata"]["name"]
    assert manifest["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()


@pytest.mark.parametrize("example", ["digits", "regressor"])
def test_the_chart_examples_are_the_manifests(example: str) -> None:
    copy = CHART / "files" / "examples" / f"{example}.yaml"
    source = ROOT / "manifests" / "examples" / f"{example}.yaml"
    assert copy.read_text() == source.read_text(), f"{copy} differs from {source}"
    manifest = yaml.safe_load(source.read_text())
    objects = render(
        {
            "example.enabled": True,
            "example.policy": example,
            "kafka.bootstrapServers": manifest["spec"]["source"]["kafka"]["bootstrapServers"],
            "mlflow.external.uri": manifest["spec"]["mlflow"]["trackingUri"],
        },
        namespace=manifest["metadata"]["namespace"],
    )
    rendered = strip_chart_labels(one(objects, "ModelUpdatePolicy"))
    rendered["metadata"].pop("labels")
    assert rendered == manifest


def test_manifests_serving_is_what_the_chart_renders_for_digits() -> None:
    objects = render(
        {
            "example.enabled": True,
            "kafka.bootstrapServers": "my-cluster-kafka-bootstrap.kafka:9092",
            "mlflow.external.uri": "http://mlflow.inshape:5000",
        },
        namespace="ml",
    )
    rendered = by_kind_and_name(find(objects, "Deployment") + find(objects, "Service"))
    rendered.pop(("Deployment", "inshape-operator"))
    rendered.pop(("Service", "inshape-metrics"))
    manifest = by_kind_and_name(load_all(ROOT / "manifests" / "serving" / "deployment.yaml"))
    assert manifest == rendered


def test_manifests_strimzi_is_what_the_chart_renders() -> None:
    objects = render(
        {"strimzi.enabled": True, "strimzi.clusterName": "my-cluster"},
        namespace="kafka",
        extra=STRIMZI_V1,
    )
    rendered = by_kind_and_name([o for o in objects if o["kind"] in STRIMZI_KINDS])
    manifest = by_kind_and_name(load_all(ROOT / "manifests" / "strimzi" / "kafka.yaml"))
    assert manifest == rendered
    kafka = manifest[("Kafka", "my-cluster")]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1"
    examples = [load_all(p)[0] for p in sorted((ROOT / "manifests" / "examples").glob("*.yaml"))]
    assert {e["spec"]["source"]["kafka"]["bootstrapServers"] for e in examples} == {
        "my-cluster-kafka-bootstrap.kafka:9092"
    }


def test_the_example_before_its_crd_exists_fails_with_what_to_do() -> None:
    """A CRD and its first object in one release cannot work: Helm maps every kind first."""
    result = helm(
        "template", "x", str(CHART), "--set", "example.enabled=true,kafka.bootstrapServers=k:9",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "helm upgrade --reuse-values --set example.enabled=true" in result.stderr


def test_notes_name_the_next_commands() -> None:
    """(The example's part of NOTES needs the CRD in a cluster: tests/chart/test_e2e.py.)"""
    notes = helm(
        "install", "inshape", str(CHART), "--dry-run=client", "-n", "ml",
        "--set", "strimzi.enabled=true",
    ).stdout  # fmt: skip
    assert "kubectl -n ml rollout status deployment/inshape-operator" in notes
    assert "kubectl -n ml port-forward service/inshape-mlflow 5000" in notes
    assert "kubectl -n ml wait kafka/inshape-kafka --for=condition=Ready" in notes
    assert "MLflow tracking URI for policies: http://inshape-mlflow.ml:5000" in notes


@pytest.mark.parametrize("values", [[], ["--set", "rbac.clusterWide=true"]])
def test_notes_without_the_example_say_how_to_apply_one(values: list[str]) -> None:
    notes = helm("install", "inshape", str(CHART), "--dry-run=client", "-n", "ml", *values).stdout
    assert "kubectl apply -n ml -f manifests/examples/digits.yaml" in notes


# --- Strimzi: the served API version, and the listener and user of the policy's authentication -


def strimzi_objects(values: dict[str, Any] | None = None, *extra: str) -> list[JSON]:
    objects = render(
        {"strimzi.enabled": True, "example.enabled": True, **(values or {})}, extra=extra
    )
    return [o for o in objects if o["kind"] in STRIMZI_KINDS | {"ModelUpdatePolicy"}]


@pytest.mark.parametrize(
    ("values", "extra", "version"),
    [
        ({}, [], "v1beta2"),
        ({}, STRIMZI_V1, "v1"),
        ({"strimzi.apiVersion": "v1"}, [], "v1"),
        ({"strimzi.apiVersion": "v1beta2"}, STRIMZI_V1, "v1beta2"),
    ],
)
def test_strimzi_objects_use_the_version_the_cluster_serves(
    values: dict[str, Any], extra: list[str], version: str
) -> None:
    objects = [o for o in strimzi_objects(values, *extra) if o["kind"] in STRIMZI_KINDS]
    assert {o["apiVersion"] for o in objects} == {f"kafka.strimzi.io/{version}"}
    annotations = one(objects, "Kafka")["metadata"].get("annotations") or {}
    # v1 has no node-pools or KRaft switches: both are always on.
    assert bool(annotations) == (version == "v1beta2")


def test_without_authentication_only_the_plain_listener_and_no_user() -> None:
    objects = strimzi_objects()
    kafka = one(objects, "Kafka")
    assert [item["name"] for item in kafka["spec"]["kafka"]["listeners"]] == ["plain"]
    assert "userOperator" not in kafka["spec"]["entityOperator"]
    assert not find(objects, "KafkaUser")
    assert "authentication" not in one(objects, "ModelUpdatePolicy")["spec"]["source"]["kafka"]


def ready(kafka: JSON) -> JSON:
    """The rendered Kafka as Strimzi reports it once Ready."""
    listeners = [
        {"name": item["name"], "bootstrapServers": f"b:{item['port']}"}
        for item in kafka["spec"]["kafka"]["listeners"]
    ]
    status = {"conditions": [{"type": "Ready", "status": "True"}], "listeners": listeners}
    return {**kafka, "status": status}


@pytest.mark.parametrize(
    ("authentication", "listener", "policy_auth"),
    [
        (
            "scram-sha-512",
            "scram",
            {
                "type": "scram-sha-512",
                "username": "inshape-user",
                "passwordSecret": {"secretName": "inshape-user", "password": "password"},
            },
        ),
        (
            "tls",
            "mtls",
            {
                "type": "tls",
                "certificateAndKey": {
                    "secretName": "inshape-user",
                    "certificate": "user.crt",
                    "key": "user.key",
                },
            },
        ),
    ],
)
def test_authentication_adds_its_listener_a_user_and_the_policy_signs_in_as_it(
    authentication: strimzi.Authentication, listener: str, policy_auth: JSON
) -> None:
    objects = strimzi_objects({"strimzi.authentication": authentication}, *STRIMZI_V1)
    kafka = one(objects, "Kafka")
    assert [item["name"] for item in kafka["spec"]["kafka"]["listeners"]] == ["plain", listener]
    assert kafka["spec"]["entityOperator"]["userOperator"] == {}
    user = one(objects, "KafkaUser", "inshape-user")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == "inshape-kafka"
    assert user["spec"]["authentication"] == {"type": authentication}
    secret_labels = user["spec"]["template"]["secret"]["metadata"]["labels"]
    assert secret_labels["app.kubernetes.io/instance"] == "inshape"
    source = one(objects, "ModelUpdatePolicy")["spec"]["source"]["kafka"]
    assert source["authentication"] == policy_auth
    # The operator picks that listener for that policy, with the cluster CA to trust.
    found = strimzi.resolve(ready(kafka), "inshape-kafka", "inshape", authentication)
    assert (found.listener, found.ca_secret) == (listener, "inshape-kafka-cluster-ca-cert")


def test_the_user_name_can_be_chosen() -> None:
    values = {"strimzi.authentication": "scram-sha-512", "strimzi.user": "digits"}
    objects = strimzi_objects(values)
    assert one(objects, "KafkaUser", "digits")
    auth = one(objects, "ModelUpdatePolicy")["spec"]["source"]["kafka"]["authentication"]
    assert auth["username"] == auth["passwordSecret"]["secretName"] == "digits"


@pytest.mark.parametrize(
    "setting",
    ["strimzi.authentication=plain", "strimzi.apiVersion=v2", "strimzi.user=Not_A_Name"],
)
def test_the_schema_refuses_unknown_strimzi_settings(setting: str) -> None:
    result = helm(
        "template", "x", str(CHART), "--set", f"strimzi.enabled=true,{setting}", check=False
    )
    assert result.returncode != 0 and "values don't meet the specifications" in result.stderr
