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
            "Pod",  # `helm test`
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


# A parent chart's globals reach a subchart's .Values.global: the schema must let them in.
OPEN_MAPS = {"global."}


def schema_paths(schema: dict[str, Any], prefix: str = "") -> list[str]:
    open_map = prefix in OPEN_MAPS
    allows = schema.get("additionalProperties")
    assert allows is open_map, f"{prefix or 'root'} allows unknown keys: {allows}"
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


def test_the_example_before_its_crd_exists_is_a_hook_helm_adopts_later() -> None:
    """Helm maps every kind of a release before it creates anything: while the CRD is not
    served the policy is a post-install/post-upgrade hook with Helm's ownership metadata;
    once it is served, an ordinary object (which Helm adopts). tests/chart/test_platform_apiserver
    installs and upgrades against a real API server."""
    values = ["--set", "example.enabled=true,kafka.bootstrapServers=k:9"]
    before = [d for d in yaml.safe_load_all(helm("template", "x", str(CHART), *values).stdout) if d]
    policy = one(before, "ModelUpdatePolicy")
    assert policy["metadata"]["annotations"] == {
        "helm.sh/hook": "post-install,post-upgrade",
        "helm.sh/hook-weight": "0",
        "helm.sh/hook-delete-policy": "before-hook-creation",
        "meta.helm.sh/release-name": "x",
        "meta.helm.sh/release-namespace": "default",
    }
    assert policy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    served = render(
        {"example.enabled": True, "kafka.bootstrapServers": "k:9"}, release="x", namespace="default"
    )
    after = one(served, "ModelUpdatePolicy")
    assert "annotations" not in after["metadata"]
    assert after["spec"] == policy["spec"]


def test_notes_name_the_next_commands() -> None:
    """(The example's part of NOTES needs the CRD in a cluster: tests/chart/test_e2e.py.)"""
    notes = helm(
        "install", "inshape", str(CHART), "--dry-run=client", "-n", "ml",
        "--set", "strimzi.enabled=true",
    ).stdout  # fmt: skip
    assert "kubectl -n ml rollout status deployment/inshape-operator" in notes
    assert "helm test inshape -n ml" in notes
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


# --- installing for a platform team ------------------------------------------------------------

EXAMPLE_ON = {"example.enabled": True, "kafka.bootstrapServers": "kafka:9092"}
COMPONENTS = {
    "operator": "inshape-operator",
    "mlflow.server": "inshape-mlflow",
    "example.serving": "digits-serving",
}


def env_of(container: JSON) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def operator_env(objects: list[JSON]) -> dict[str, Any]:
    (container,) = pod_spec(one(objects, "Deployment", "inshape-operator"))["containers"]
    return env_of(container)


def mlflow_container(objects: list[JSON]) -> JSON:
    (container,) = pod_spec(one(objects, "Deployment", "inshape-mlflow"))["containers"]
    return container


def test_pull_secrets_digest_and_global_registry_reach_every_pod_and_the_jobs() -> None:
    objects = render(
        {
            **EXAMPLE_ON,
            "global.imageRegistry": "mirror.example.com/",
            "global.imagePullSecrets": [{"name": "mirror"}],
            "imagePullSecrets": ["regcred", {"name": "mirror"}],
            "image.repository": "team/inshape",
            "image.digest": "sha256:" + "a" * 64,
        }
    )
    image = "mirror.example.com/team/inshape@sha256:" + "a" * 64
    pods = [pod_spec(d) for d in workloads(objects)] + [one(objects, "Pod")["spec"]]
    assert len(pods) == 4
    for spec in pods:
        assert spec["imagePullSecrets"] == [{"name": "mirror"}, {"name": "regcred"}]
        assert {c["image"] for c in spec["containers"]} == {image}
    env = operator_env(objects)
    assert env["INSHAPE_JOB_IMAGE"] == image
    assert env["INSHAPE_JOB_IMAGE_PULL_SECRETS"] == "mirror,regcred"
    assert config.load(env).job_image_pull_secrets == ("mirror", "regcred")
    defaults = render()
    assert all("imagePullSecrets" not in pod_spec(d) for d in workloads(defaults))
    assert operator_env(defaults)["INSHAPE_JOB_IMAGE_PULL_SECRETS"] == ""


def test_the_schema_accepts_a_parent_charts_globals_and_refuses_a_bad_digest() -> None:
    render({"global.someOtherChart": {"x": 1}, "global.storageClass": "fast"})
    result = helm("template", "x", str(CHART), "--set", "image.digest=latest", check=False)
    assert result.returncode != 0 and "digest" in result.stderr


@pytest.mark.parametrize(("component", "deployment"), list(COMPONENTS.items()))
def test_each_component_takes_pod_placement_metadata_and_extra_env(
    component: str, deployment: str
) -> None:
    toleration = {"key": "ml", "operator": "Exists", "effect": "NoSchedule"}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}
                ]
            }
        }
    }
    spread = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"a": "b"}},
    }
    extra = {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    objects = render(
        {
            **EXAMPLE_ON,
            f"{component}.podAnnotations": {"team": "ml"},
            f"{component}.podLabels": {"cost-center": "42"},
            f"{component}.nodeSelector": {"pool": "ml"},
            f"{component}.tolerations": [toleration],
            f"{component}.affinity": affinity,
            f"{component}.topologySpreadConstraints": [spread],
            f"{component}.priorityClassName": "ml-high",
            f"{component}.extraEnv": [extra],
        }
    )
    target = one(objects, "Deployment", deployment)
    template = target["spec"]["template"]
    assert template["metadata"]["annotations"] == {"team": "ml"}
    assert template["metadata"]["labels"]["cost-center"] == "42"
    assert "cost-center" not in target["spec"]["selector"]["matchLabels"]
    assert set(target["spec"]["selector"]["matchLabels"].items()) <= set(
        template["metadata"]["labels"].items()
    )
    spec = template["spec"]
    assert spec["nodeSelector"] == {"pool": "ml"}
    assert spec["tolerations"] == [toleration]
    assert spec["affinity"] == affinity
    assert spec["topologySpreadConstraints"] == [spread]
    assert spec["priorityClassName"] == "ml-high"
    assert spec["containers"][0]["env"][-1] == extra
    for other in workloads(objects):
        if other is not target:
            assert "priorityClassName" not in pod_spec(other)
            assert "annotations" not in other["spec"]["template"]["metadata"]


def test_update_jobs_get_default_resources_and_the_operator_its_log_format() -> None:
    env = operator_env(render())
    settings = config.load(env)
    assert settings.job_default_resources == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert settings.log_format == "text"
    env = operator_env(
        render({"operator.job.resources": {"requests": {"cpu": 1}}, "operator.logFormat": "json"})
    )
    assert config.load(env).job_default_resources["requests"]["cpu"] == "1"
    assert env["INSHAPE_LOG_FORMAT"] == "json"


@pytest.mark.parametrize(
    "bad",
    [
        {"operator.job.resources": {"requests": {"cpu": "lots"}}},
        {"operator.job.resources": {"request": {"cpu": "1"}}},
        {"mlflow.server.resources": {"limits": {"memory": True}}},
        {"operator.logFormat": "xml"},
    ],
)
def test_the_schema_types_resources_and_the_log_format(bad: dict[str, Any]) -> None:
    from tests.chart.conftest import set_args

    result = helm("template", "x", str(CHART), *set_args(bad), check=False)
    assert result.returncode != 0, bad


def test_a_service_monitor_scrapes_the_operators_metrics_service() -> None:
    assert not find(render(), "ServiceMonitor")
    objects = render(
        {
            "serviceMonitor.enabled": True,
            "serviceMonitor.interval": "15s",
            "serviceMonitor.labels": {"release": "prom"},
        }
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = one(objects, "Service", "inshape-metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["inshape"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s"}
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


def test_helm_test_checks_the_operator_and_mlflow_through_their_services() -> None:
    objects = render()
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "inshape:0.1.0"
    assert (
        container["args"]
        if "args" in container
        else container["command"][-2:]
        == [
            "http://inshape-metrics.inshape:8080/healthz",
            "http://inshape-mlflow.inshape:5000/health",
        ]
    )
    service = one(objects, "Service", "inshape-metrics")
    assert {"name": "health", "port": 8080, "targetPort": "health"} in service["spec"]["ports"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    external = one(render({"mlflow.external.uri": "http://mlflow:5000"}), "Pod")
    assert external["spec"]["containers"][0]["command"][-1].endswith("/healthz")


def test_mlflow_with_an_external_database_and_object_store_keeps_secrets_in_secrets() -> None:
    objects = render(
        {
            "mlflow.server.backendStore.uriSecret": {"name": "mlflow-db", "key": "uri"},
            "mlflow.server.artifacts": {
                "destination": "s3://models/inshape",
                "endpointUrl": "http://minio.storage:9000",
                "region": "eu-west-1",
                "credentialsSecret": {"name": "minio"},
            },
        }
    )
    container = mlflow_container(objects)
    command = container["command"]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in command
    assert "--artifacts-destination=s3://models/inshape" in command
    assert not any("sqlite" in a or "/data" in a for a in command)
    env = env_of(container)
    assert env["MLFLOW_BACKEND_STORE_URI"] == {"secretKeyRef": {"name": "mlflow-db", "key": "uri"}}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "minio", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"] == "AWS_SECRET_ACCESS_KEY"
    names = [e["name"] for e in container["env"]]
    assert names.index("MLFLOW_BACKEND_STORE_URI") < len(names)  # defined for $(...) expansion
    assert not find(objects, "PersistentVolumeClaim")  # everything external: no volume
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    sqlite = mlflow_container(render({"mlflow.server.artifacts.destination": "s3://b/p"}))
    assert "--backend-store-uri=sqlite:////data/mlflow.db" in sqlite["command"]


def test_mlflow_basic_auth_takes_its_password_from_a_secret_only() -> None:
    result = helm(
        "template", "x", str(CHART), "--set", "mlflow.server.auth.enabled=true", check=False
    )
    assert result.returncode != 0 and "mlflow.server.auth.adminSecret.name" in result.stderr
    objects = render(
        {
            "mlflow.server.auth.enabled": True,
            "mlflow.server.auth.adminSecret": {"name": "mlflow-admin", "key": "pw"},
            "mlflow.server.auth.defaultPermission": "NO_PERMISSIONS",
            "mlflow.server.backendStore.uriSecret.name": "db",
            "mlflow.server.artifacts.destination": "s3://b/p",
        }
    )
    container = mlflow_container(objects)
    assert container["command"][:3] == ["mlflow", "server", "--app-name=basic-auth"]
    env = env_of(container)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": "mlflow-admin", "key": "pw"}
    }
    ini_path = env["MLFLOW_AUTH_CONFIG_PATH"]
    config_map = one(objects, "ConfigMap", "inshape-mlflow-auth")
    ini = config_map["data"]["basic_auth.ini"]
    import configparser

    parsed = configparser.ConfigParser()
    parsed.read_string(ini)
    assert dict(parsed["mlflow"]) == {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": "sqlite:////data/basic_auth.db",
        "admin_username": "admin",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    assert "password" not in ini
    mount = next(m for m in container["volumeMounts"] if m["name"] == "auth")
    assert ini_path == f"{mount['mountPath']}/basic_auth.ini"
    assert one(objects, "PersistentVolumeClaim")  # the user store lives on the volume
    for value in ("READ", "NONE"):
        ok = helm(
            "template",
            "x",
            str(CHART),
            "--set",
            f"mlflow.server.auth.defaultPermission={value}",
            check=False,
        )
        assert (ok.returncode == 0) == (value == "READ")


def test_network_policies_let_only_inshape_reach_mlflow() -> None:
    from inshape_operator.job_builder import labels as job_labels

    assert not find(render(), "NetworkPolicy")
    objects = render(
        {**EXAMPLE_ON, "networkPolicy.enabled": True, "operator.watchNamespaces": ["a", "b"]}
    )
    mlflow_policy = one(objects, "NetworkPolicy", "inshape-mlflow")
    mlflow_pods = pod_spec(one(objects, "Deployment", "inshape-mlflow"))
    assert mlflow_policy["spec"]["podSelector"]["matchLabels"].items() <= (
        one(objects, "Deployment", "inshape-mlflow")["spec"]["template"]["metadata"][
            "labels"
        ].items()
    )
    assert mlflow_pods
    (rule,) = mlflow_policy["spec"]["ingress"]
    peers = rule["from"]

    def admitted(labels: dict[str, str], namespace: str = "inshape") -> bool:
        for peer in peers:
            wanted = peer["podSelector"]["matchLabels"]
            spaces = peer.get("namespaceSelector")
            in_space = spaces is None and namespace == "inshape"
            if spaces is not None:
                values = spaces.get("matchExpressions", [{"values": [namespace]}])[0]["values"]
                in_space = namespace in values
            if in_space and wanted.items() <= labels.items():
                return True
        return False

    for deployment in workloads(objects):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        name = deployment["metadata"]["name"]
        assert admitted(labels) == (name != "inshape-mlflow"), name
    assert admitted(one(objects, "Pod")["metadata"]["labels"])  # helm test
    job = job_labels("digits", "uid", 3)
    assert admitted(job, "a") and admitted(job, "b") and not admitted(job, "elsewhere")
    assert not admitted({"app.kubernetes.io/name": "inshape"})
    operator_policy = one(objects, "NetworkPolicy", "inshape-operator")
    assert operator_policy["spec"]["policyTypes"] == ["Ingress"]
    assert operator_policy["spec"]["ingress"] == [
        {"ports": [{"port": "metrics"}, {"port": "health"}]}
    ]


def test_operator_egress_is_opt_in_and_allows_dns_api_server_kafka_and_mlflow() -> None:
    objects = render(
        {
            "networkPolicy.enabled": True,
            "rbac.clusterWide": True,
            "networkPolicy.operatorEgress.enabled": True,
            "networkPolicy.operatorEgress.apiServerCidrs": ["172.18.0.2/32"],
            "networkPolicy.operatorEgress.kafkaTo": [{"namespaceSelector": {}}],
        }
    )
    policy = one(objects, "NetworkPolicy", "inshape-operator")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, api, kafka, mlflow = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert kafka["to"] == [{"namespaceSelector": {}}]
    assert mlflow["ports"] == [{"protocol": "TCP", "port": 5000}]
    strimzi = render(
        {
            "networkPolicy.enabled": True,
            "networkPolicy.operatorEgress.enabled": True,
            "strimzi.enabled": True,
        }
    )
    kafka = one(strimzi, "NetworkPolicy", "inshape-operator")["spec"]["egress"][2]
    assert kafka["to"] == [
        {"podSelector": {"matchLabels": {"strimzi.io/cluster": "inshape-kafka"}}}
    ]
    assert (
        "to"
        not in one(
            render({"networkPolicy.enabled": True, "networkPolicy.operatorEgress.enabled": True}),
            "NetworkPolicy",
            "inshape-operator",
        )["spec"]["egress"][2]
    )
    # Cluster-wide: update Jobs from any namespace may reach MLflow.
    (rule,) = one(objects, "NetworkPolicy", "inshape-mlflow")["spec"]["ingress"]
    assert {"namespaceSelector": {}}.items() <= rule["from"][-1].items()


def test_lint_is_clean_with_the_platform_values() -> None:
    helm(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "serviceMonitor.enabled=true,networkPolicy.enabled=true,"
        "networkPolicy.operatorEgress.enabled=true,mlflow.server.auth.enabled=true,"
        "mlflow.server.auth.adminSecret.name=admin,imagePullSecrets[0]=regcred,"
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )


def test_mlflow_reads_the_rendered_auth_config_with_the_password_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's own reader: the ini from the ConfigMap, the admin password from the env the
    Deployment sets from the Secret. (Loaded by path: the package's __init__ needs Flask-WTF,
    which only the server needs.)"""
    import importlib.util

    import mlflow

    source = Path(mlflow.__file__).parent / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    read_auth_config = module.read_auth_config

    values = {"mlflow.server.auth.enabled": True, "mlflow.server.auth.adminSecret.name": "adm"}
    objects = render(values)
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(one(objects, "ConfigMap", "inshape-mlflow-auth")["data"]["basic_auth.ini"])
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in env_of(mlflow_container(objects))
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ini))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-secret")
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    auth = read_auth_config()
    assert (auth.admin_username, auth.admin_password) == ("admin", "from-the-secret")
    assert auth.default_permission == "READ"
    assert auth.database_uri == "sqlite:////data/basic_auth.db"


def test_with_basic_auth_the_example_signs_in_with_the_admins_secret_by_reference() -> None:
    values = {
        "example.enabled": True,
        "kafka.bootstrapServers": "k:9092",
        "mlflow.server.auth.enabled": True,
        "mlflow.server.auth.adminSecret.name": "mlflow-admin",
        "mlflow.server.auth.adminSecret.key": "MLFLOW_TRACKING_PASSWORD",
    }
    objects = render(values, extra=POLICY_API)
    policy = one(objects, "ModelUpdatePolicy")
    assert policy["spec"]["mlflow"]["credentialsSecret"] == "mlflow-admin"
    (server,) = pod_spec(one(objects, "Deployment", "digits-serving"))["containers"]
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_TRACKING_PASSWORD"] == {
        "name": "MLFLOW_TRACKING_PASSWORD",
        "valueFrom": {
            "secretKeyRef": {
                "name": "mlflow-admin",
                "key": "MLFLOW_TRACKING_PASSWORD",
                "optional": True,
            }
        },
    }
    (mlflow,) = pod_spec(one(objects, "Deployment", "inshape-mlflow"))["containers"]
    flask = {e["name"]: e for e in mlflow["env"]}["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    key_secret = flask["valueFrom"]["secretKeyRef"]["name"]
    assert one(objects, "Secret", key_secret)["data"][
        "secretKey"
    ]  # MLflow refuses to start without
    own = render({**values, "example.mlflowCredentialsSecret": "team-mlflow"}, extra=POLICY_API)
    assert one(own, "ModelUpdatePolicy")["spec"]["mlflow"]["credentialsSecret"] == "team-mlflow"
    plain = render({"example.enabled": True, "kafka.bootstrapServers": "k:9092"}, extra=POLICY_API)
    assert "credentialsSecret" not in one(plain, "ModelUpdatePolicy")["spec"]["mlflow"]
