"""The update Job for one run of a policy, as a batch/v1 manifest: a pure function of its inputs.

Deterministic: the same policy and run sequence give the same Job, so a create retried after a
lost response meets 409 Conflict instead of starting a second run. The Job is owned by the
policy (garbage-collected with it), runs `python -m inshape_jobs update` under a restricted
security context without a service-account token, and reports its result in the termination
message (see results.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from inshape_api.kafka_connection import (
    CONNECTION_ENV,
    PASSWORD_ENV,
    KafkaConnection,
    SecretMount,
    mounts,
)
from inshape_api.mlflow_access import CA_PATH, CERT_PATH_ENV, ca_mount, secret_env
from inshape_api.names import (
    ANNOTATION_GENERATION,
    ANNOTATION_TRIGGER,
    API_GROUP,
    API_VERSION,
    EXIT_SPEC_ERROR,
    KIND,
    LABEL_POLICY,
    LABEL_POLICY_UID,
    LABEL_RUN,
    POLICY_ENV,
    RUN_KEY_ENV,
    TERMINATION_LOG_ENV,
    UPDATE_CONTAINER,
)
from inshape_api.spec import Policy, dumps_policy
from inshape_operator.config import OperatorConfig
from inshape_operator.world import JobView

NAME_MAX = 63
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
TERMINATION_LOG = "/dev/termination-log"
TMP = "/tmp"  # an emptyDir: the root filesystem is read-only


@dataclass(frozen=True)
class RunRequest:
    """What one run adds to the policy: its number, why it starts, where Kafka is."""

    uid: str  # the policy's metadata.uid (owner reference, selector)
    sequence: int  # run number of this policy, from next_sequence()
    trigger: str | None = None  # what started the run (Lag, Schedule, MaxInterval)
    generation: int | None = None  # the policy's metadata.generation
    kafka: KafkaConnection | None = None  # as the operator resolved spec.source.kafka


def _short(text: str, limit: int, suffix: str = "") -> str:
    """text + suffix within limit characters; too long and text is cut and given a hash."""
    if len(text) + len(suffix) <= limit:
        return text + suffix
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 1
    return f"{text[:keep].rstrip('-.')}-{digest}{suffix}"


def job_name(policy_name: str, sequence: int) -> str:
    """`<policy>-update-<sequence>`, shortened with a hash of the name to 63 characters."""
    return _short(policy_name, NAME_MAX, f"-update-{sequence}")


def policy_label(policy_name: str) -> str:
    """The policy's name as a label value (63 characters at most)."""
    return _short(policy_name, NAME_MAX)


def selector(uid: str) -> str:
    """Label selector of the policy's Jobs (and their pods)."""
    return f"{LABEL_POLICY_UID}={uid}"


def next_sequence(jobs: Iterable[JobView], last_recorded: int | None) -> int:
    """One more than any run the policy's Jobs or its status know of."""
    known = [j.sequence for j in jobs if j.sequence is not None]
    if last_recorded is not None:
        known.append(last_recorded)
    return max(known, default=0) + 1


def labels(policy_name: str, uid: str, sequence: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "inshape",
        "app.kubernetes.io/component": "update-job",
        "app.kubernetes.io/instance": policy_label(policy_name),
        "app.kubernetes.io/managed-by": "inshape-operator",
        LABEL_POLICY: policy_label(policy_name),
        LABEL_POLICY_UID: uid,
        LABEL_RUN: str(sequence),
    }


def _kafka_env(kafka: KafkaConnection | None) -> list[dict[str, Any]]:
    """The connection as JSON (Secret names only) and the password from its Secret."""
    if kafka is None:
        return []
    env: list[dict[str, Any]] = [{"name": CONNECTION_ENV, "value": kafka.to_env()}]
    if kafka.passwordSecret is not None:
        ref = {"name": kafka.passwordSecret.secretName, "key": kafka.passwordSecret.password}
        env.append({"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": ref}})
    return env


def _mlflow_env(secret: str | None) -> list[dict[str, Any]]:
    """MLflow's credential env vars from spec.mlflow.credentialsSecret, each optional (a token
    or a user and password), and where its CA bundle is mounted."""
    if secret is None:
        return []
    env: list[dict[str, Any]] = [
        {
            "name": e.name,
            "valueFrom": {"secretKeyRef": {"name": e.secret, "key": e.key, "optional": True}},
        }
        for e in secret_env(secret)
    ]
    env.append({"name": CERT_PATH_ENV, "value": CA_PATH})
    return env


def secret_mounts(policy: Policy, run: RunRequest) -> tuple[SecretMount, ...]:
    """Every Secret volume of the Job: Kafka's, then MLflow's CA bundle."""
    found = mounts(run.kafka) if run.kafka else ()
    ca = ca_mount(policy.spec.mlflow.credentialsSecret)
    return (*found, ca) if ca is not None else found


def _secret_volume(mount: SecretMount) -> dict[str, Any]:
    secret: dict[str, Any] = {"secretName": mount.secret, "defaultMode": 0o444}
    if mount.items is not None:
        secret["items"] = [{"key": key, "path": path} for key, path in mount.items]
    if mount.optional:
        secret["optional"] = True
    return {"name": mount.volume, "secret": secret}


def _resources(own: Any, config: OperatorConfig) -> Any:
    """The policy's spec.job.resources; when it sets none, the operator's defaults (a Job with
    no requests would run BestEffort, first to be evicted)."""
    if own:
        return dict(own)
    return {key: dict(amounts) for key, amounts in config.job_default_resources.items()}


def _container(policy: Policy, run: RunRequest, config: OperatorConfig) -> dict[str, Any]:
    command = ["python", "-m", "inshape_jobs", "update"]
    volumes = secret_mounts(policy, run)
    env = [
        {"name": POLICY_ENV, "value": dumps_policy(policy)},
        {
            "name": RUN_KEY_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{CONTROLLER_UID_LABEL}']"}},
        },
        {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG},
        # Libraries (MLflow, matplotlib) write caches under $HOME: keep them on the emptyDir.
        {"name": "HOME", "value": TMP},
        {"name": "MPLCONFIGDIR", "value": f"{TMP}/matplotlib"},
        *_kafka_env(run.kafka),
        *_mlflow_env(policy.spec.mlflow.credentialsSecret),
    ]
    job = policy.spec.job
    return {
        "name": UPDATE_CONTAINER,
        "image": job.image or config.job_image,
        "imagePullPolicy": config.job_image_pull_policy,
        "command": command,
        "env": env,
        "resources": _resources(job.resources.to_container(), config),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP},
            *({"name": m.volume, "mountPath": m.path, "readOnly": True} for m in volumes),
        ],
    }


def _pod_spec(
    container: dict[str, Any], config: OperatorConfig, secrets: tuple[SecretMount, ...]
) -> dict[str, Any]:
    run_as_user = config.job_run_as_user
    security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if run_as_user is not None:
        security["runAsUser"] = run_as_user
        security["runAsGroup"] = run_as_user
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *(_secret_volume(m) for m in secrets)],
    }
    if config.job_image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in config.job_image_pull_secrets]
    return pod


# An invalid policy never succeeds on retry; an evicted pod is no failure of the run.
POD_FAILURE_POLICY = {
    "rules": [
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": UPDATE_CONTAINER,
                "operator": "In",
                "values": [EXIT_SPEC_ERROR],
            },
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
}


def build_job(policy: Policy, run: RunRequest, config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job of one update run (the manifest the API server is sent)."""
    job_labels = labels(policy.name, run.uid, run.sequence)
    annotations = {}
    if run.trigger:
        annotations[ANNOTATION_TRIGGER] = run.trigger
    if run.generation is not None:
        annotations[ANNOTATION_GENERATION] = str(run.generation)
    owner = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": policy.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    secrets = secret_mounts(policy, run)
    pod = _pod_spec(_container(policy, run, config), config, secrets)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(policy.name, run.sequence),
            "namespace": policy.namespace,
            "labels": job_labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": policy.spec.job.backoffLimit,
            "activeDeadlineSeconds": policy.spec.job.activeDeadlineSeconds,
            "ttlSecondsAfterFinished": config.job_ttl_seconds,
            "podFailurePolicy": POD_FAILURE_POLICY,
            "template": {
                "metadata": {"labels": dict(job_labels), "annotations": dict(annotations)},
                "spec": pod,
            },
        },
    }
