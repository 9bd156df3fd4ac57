"""The update Job for one run of a policy, as a batch/v1 manifest: a pure function of its inputs.

Deterministic: the same policy and run sequence give the same Job, so a create retried after a
lost response meets 409 Conflict instead of starting a second run. The Job is owned by the
policy (garbage-collected with it), runs `python -m inshape_jobs update` under a restricted
security context without a service-account token, and reports its result in the termination
message (see results.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inshape_api.names import EXIT_SPEC_ERROR
from inshape_api.spec import API_GROUP, API_VERSION, KIND, POLICY_ENV, JobSpec
from inshape_operator.results import CONTAINER

NAME_MAX = 63
LABEL_POLICY = f"{API_GROUP}/policy"
LABEL_POLICY_UID = f"{API_GROUP}/policy-uid"
LABEL_RUN = f"{API_GROUP}/run"
ANNOTATION_TRIGGER = f"{API_GROUP}/trigger"
ANNOTATION_GENERATION = f"{API_GROUP}/policy-generation"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
TERMINATION_LOG = "/dev/termination-log"
_DEFAULTS = JobSpec()
TMP = "/tmp"  # an emptyDir: the root filesystem is read-only


@dataclass(frozen=True)
class JobRequest:
    """Everything one update Job is built from."""

    policy_name: str
    namespace: str
    uid: str  # the policy's metadata.uid (owner reference, selector)
    spec: Mapping[str, Any]  # the policy's spec, as stored (defaults applied)
    sequence: int  # run number of this policy, from next_sequence()
    image: str  # used when spec.job.image is not set
    image_pull_policy: str = "IfNotPresent"
    ttl_seconds: int = 3600
    run_as_user: int | None = 65532
    bootstrap_servers: str | None = None  # resolved from spec.source.kafka.strimziCluster
    trigger: str | None = None  # what started the run (Lag, Schedule, MaxInterval)
    generation: int | None = None  # the policy's metadata.generation


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


def sequence_of(job: Mapping[str, Any]) -> int | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def next_sequence(jobs: Iterable[Mapping[str, Any]], last_recorded: int | None) -> int:
    """One more than any run the policy's Jobs or its status know of."""
    known = [s for s in (sequence_of(j) for j in jobs) if s is not None]
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


def policy_document(name: str, namespace: str, spec: Mapping[str, Any]) -> str:
    """What $INSHAPE_POLICY holds: the policy as `inshape_api.spec.load_policy` reads it."""
    return json.dumps(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def build_job(request: JobRequest) -> dict[str, Any]:
    """The batch/v1 Job of one update run."""
    job_spec = request.spec.get("job") or {}
    job_labels = labels(request.policy_name, request.uid, request.sequence)
    annotations = {}
    if request.trigger:
        annotations[ANNOTATION_TRIGGER] = request.trigger
    if request.generation is not None:
        annotations[ANNOTATION_GENERATION] = str(request.generation)

    command = ["python", "-m", "inshape_jobs", "update"]
    if request.bootstrap_servers:
        command += ["--bootstrap-servers", request.bootstrap_servers]
    env = [
        {
            "name": POLICY_ENV,
            "value": policy_document(request.policy_name, request.namespace, request.spec),
        },
        {
            "name": "INSHAPE_RUN_KEY",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{CONTROLLER_UID_LABEL}']"}},
        },
        {"name": "INSHAPE_TERMINATION_LOG", "value": TERMINATION_LOG},
        # Libraries (MLflow, matplotlib) write caches under $HOME: keep them on the emptyDir.
        {"name": "HOME", "value": TMP},
        {"name": "MPLCONFIGDIR", "value": f"{TMP}/matplotlib"},
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": job_spec.get("image") or request.image,
        "imagePullPolicy": request.image_pull_policy,
        "command": command,
        "env": env,
        "resources": dict(job_spec.get("resources") or {}),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": TMP}],
    }
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if request.run_as_user is not None:
        pod_security["runAsUser"] = request.run_as_user
        pod_security["runAsGroup"] = request.run_as_user
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(request.policy_name, request.sequence),
            "namespace": request.namespace,
            "labels": job_labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": KIND,
                    "name": request.policy_name,
                    "uid": request.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": int(job_spec.get("backoffLimit", _DEFAULTS.backoffLimit)),
            "activeDeadlineSeconds": int(
                job_spec.get("activeDeadlineSeconds", _DEFAULTS.activeDeadlineSeconds)
            ),
            "ttlSecondsAfterFinished": request.ttl_seconds,
            # An invalid policy never succeeds on retry; an evicted pod is no failure of the run.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_SPEC_ERROR],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"labels": dict(job_labels), "annotations": dict(annotations)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
