"""The update Job manifest: names, ownership, security, command and environment."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from inshape_api.kafka_connection import KafkaConnection
from inshape_api.spec import (
    CertAndKeySecretSource,
    CertSecretSource,
    PasswordSecretSource,
    Policy,
    dumps_policy,
    load_policy,
    parse_policy,
)
from inshape_operator.config import OperatorConfig, load
from inshape_operator.job_builder import (
    RunRequest,
    build_job,
    job_name,
    next_sequence,
    policy_label,
    selector,
)
from inshape_operator.results import job_view
from inshape_operator.world import JobView

ROOT = Path(__file__).resolve().parents[2]
POLICY = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())
UID = "0f6c1a7e-1111-2222-3333-444455556666"
CONFIG: OperatorConfig = load({})


def policy(spec: dict[str, Any] | None = None) -> Policy:
    return parse_policy({**POLICY, "spec": spec if spec is not None else POLICY["spec"]})


def run(**changes: Any) -> RunRequest:
    return RunRequest(**{"uid": UID, "sequence": 7, **changes})


def build(
    spec: dict[str, Any] | None = None, config: OperatorConfig = CONFIG, **changes: Any
) -> dict[str, Any]:
    return build_job(policy(spec), run(**changes), config)


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def test_names_are_deterministic_and_short() -> None:
    assert job_name("digits", 7) == "digits-update-7"
    long = "a" * 70
    name = job_name(long, 123)
    assert len(name) == 63 and name.endswith("-update-123")
    assert name == job_name(long, 123)
    assert job_name("a" * 69 + "b", 123) != name  # the hash tells similar names apart
    assert len(policy_label(long)) == 63 and policy_label("digits") == "digits"
    cut_at_dash = job_name("x" * 44 + "-" + "y" * 30, 1)  # the cut falls right after the dash
    assert "--" not in cut_at_dash and cut_at_dash.startswith("x" * 44 + "-")


def test_same_request_same_job() -> None:
    assert build() == build()
    assert build(trigger="Lag", generation=3) == build(trigger="Lag", generation=3)


def test_metadata_labels_and_owner() -> None:
    job = build(trigger="Lag", generation=3)
    meta = job["metadata"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert (meta["name"], meta["namespace"]) == ("digits-update-7", "ml")
    assert meta["labels"]["inshape.dev/policy"] == "digits"
    assert meta["labels"]["inshape.dev/policy-uid"] == UID
    assert meta["labels"]["inshape.dev/run"] == "7"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "inshape-operator"
    assert meta["annotations"] == {
        "inshape.dev/trigger": "Lag",
        "inshape.dev/policy-generation": "3",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "inshape.dev/v1alpha1",
            "kind": "ModelUpdatePolicy",
            "name": "digits",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    template = job["spec"]["template"]["metadata"]
    assert selector(UID) == f"inshape.dev/policy-uid={UID}"
    assert template["labels"]["inshape.dev/policy-uid"] == UID
    assert template["annotations"] == meta["annotations"]
    assert build()["metadata"]["annotations"] == {}


def test_limits_come_from_spec_job_and_config() -> None:
    spec = {**POLICY["spec"], "job": {"activeDeadlineSeconds": 600, "backoffLimit": 0}}
    job = build(spec, replace(CONFIG, job_ttl_seconds=120))
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 120
    defaults = build()["spec"]
    assert (defaults["activeDeadlineSeconds"], defaults["backoffLimit"]) == (1800, 2)
    assert defaults["ttlSecondsAfterFinished"] == 3600


def test_spec_errors_fail_the_job_without_retries() -> None:
    rules = build()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"] == {"containerName": "update", "operator": "In", "values": [2]}
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_restricted_pod() -> None:
    job = build()
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["runAsGroup"] == 65532
    c = container(job)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    image_user = build(config=replace(CONFIG, job_run_as_user=None))
    assert "runAsUser" not in image_user["spec"]["template"]["spec"]["securityContext"]


def test_command_image_and_resources() -> None:
    c = container(build())
    assert c["name"] == "update"
    assert c["command"] == ["python", "-m", "inshape_jobs", "update"]
    assert c["image"] == "inshape:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {}
    spec = {
        **POLICY["spec"],
        "job": {"image": "registry/inshape:1", "resources": {"limits": {"memory": "1Gi"}}},
    }
    c = container(build(spec, kafka=KafkaConnection("k-kafka-bootstrap.ml.svc:9092")))
    assert c["image"] == "registry/inshape:1"
    assert c["resources"] == {"limits": {"memory": "1Gi"}}
    assert c["command"] == ["python", "-m", "inshape_jobs", "update"]
    configured = replace(CONFIG, job_image="registry/inshape:2", job_image_pull_policy="Always")
    c = container(build(config=configured))
    assert (c["image"], c["imagePullPolicy"]) == ("registry/inshape:2", "Always")


def test_termination_message_and_run_key() -> None:
    job = build()
    c = container(job)
    env = env_of(job)
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert env["INSHAPE_TERMINATION_LOG"] == "/dev/termination-log"
    assert env["INSHAPE_RUN_KEY"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}
    }
    assert env["HOME"] == "/tmp"


def test_policy_env_is_what_the_job_loads() -> None:
    env = env_of(build())
    assert env["INSHAPE_POLICY"] == dumps_policy(policy())
    document = json.loads(env["INSHAPE_POLICY"])
    assert document["metadata"] == {"name": "digits", "namespace": "ml"}
    assert (document["apiVersion"], document["kind"]) == (
        "inshape.dev/v1alpha1",
        "ModelUpdatePolicy",
    )
    loaded = load_policy(environ={"INSHAPE_POLICY": env["INSHAPE_POLICY"]})
    assert loaded == parse_policy({**POLICY, "metadata": {"name": "digits", "namespace": "ml"}})


def test_sequence_continues_from_jobs_and_status() -> None:
    jobs: list[JobView] = [
        job_view({"metadata": {"name": "a", "labels": {"inshape.dev/run": "3"}}}),
        job_view({"metadata": {"name": "b", "labels": {"inshape.dev/run": "junk"}}}),
        job_view({"metadata": {"name": "c"}}),
    ]
    assert [j.sequence for j in jobs] == [3, None, None]
    assert next_sequence(jobs, None) == 4
    assert next_sequence(jobs, 9) == 10
    assert next_sequence(jobs, 2) == 4
    assert next_sequence([], None) == 1
    created = datetime(2025, 3, 1, tzinfo=UTC)
    assert next_sequence(iter([JobView("d", 8, "Active", created, "Lag")]), None) == 9


def test_kafka_secrets_reach_the_job_as_files_and_a_secret_key_ref_never_as_values() -> None:
    secured = KafkaConnection(
        "k:9093",
        protocol="SASL_SSL",
        trustedCertificates=(
            CertSecretSource("cas", certificate="ca.crt"),
            CertSecretSource("more-cas", pattern="*.crt"),
        ),
        saslMechanism="SCRAM-SHA-512",
        username="alice",
        passwordSecret=PasswordSecretSource("alice", "password"),
    )
    job = build(kafka=secured)
    env = env_of(job)
    assert KafkaConnection.from_env(env["INSHAPE_KAFKA"]) == secured
    assert env["INSHAPE_KAFKA_PASSWORD"] == {"secretKeyRef": {"name": "alice", "key": "password"}}
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kafka-trusted-0"]["secret"] == {
        "secretName": "cas",
        "defaultMode": 0o444,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert "items" not in volumes["kafka-trusted-1"]["secret"]
    mounted = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounted["kafka-trusted-1"] == {
        "name": "kafka-trusted-1",
        "mountPath": "/etc/inshape/kafka/trusted/1",
        "readOnly": True,
    }
    assert pod["automountServiceAccountToken"] is False

    mtls = KafkaConnection(
        "k:9094",
        protocol="SSL",
        certificateAndKey=CertAndKeySecretSource("alice", "user.crt", "user.key"),
    )
    job = build(kafka=mtls)
    assert "INSHAPE_KAFKA_PASSWORD" not in env_of(job)
    user = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}["kafka-user"]
    assert user["secret"]["items"] == [
        {"key": "user.crt", "path": "user.crt"},
        {"key": "user.key", "path": "user.key"},
    ]


def test_default_resources_apply_only_when_the_policy_sets_none() -> None:
    defaults = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    configured = replace(CONFIG, job_default_resources=defaults)
    c = container(build(config=configured))
    assert c["resources"] == defaults
    c["resources"]["requests"]["cpu"] = "9"  # a copy: the config is not shared with the Job
    assert configured.job_default_resources["requests"]["cpu"] == "500m"
    own = {**POLICY["spec"], "job": {"resources": {"requests": {"cpu": "2"}}}}
    assert container(build(own, config=configured))["resources"] == {"requests": {"cpu": "2"}}


def test_image_pull_secrets_reach_the_pod_only_when_configured() -> None:
    assert "imagePullSecrets" not in build()["spec"]["template"]["spec"]
    configured = replace(CONFIG, job_image_pull_secrets=("regcred", "mirror"))
    pod = build(config=configured)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]


def test_mlflow_credentials_come_from_optional_secret_refs_and_a_mounted_ca() -> None:
    spec = {**POLICY["spec"], "mlflow": {**POLICY["spec"]["mlflow"], "credentialsSecret": "mlf"}}
    job = build(spec)
    env = {e["name"]: e for e in container(job)["env"]}
    for key in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "value" not in env[key]  # never a literal
        assert env[key]["valueFrom"] == {
            "secretKeyRef": {"name": "mlf", "key": key, "optional": True}
        }
    assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"]["value"] == "/etc/inshape/mlflow/ca.crt"
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "mlflow-credentials"]
    assert volume["secret"] == {
        "secretName": "mlf",
        "defaultMode": 0o444,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
        "optional": True,
    }
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounts["mlflow-credentials"] == {
        "name": "mlflow-credentials",
        "mountPath": "/etc/inshape/mlflow",
        "readOnly": True,
    }


def test_no_mlflow_credentials_without_a_secret() -> None:
    job = build()
    assert not any(name.startswith("MLFLOW_") for name in env_of(job))
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["tmp"]
