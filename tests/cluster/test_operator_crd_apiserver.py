"""The operator's pure builders against a real kube-apiserver: the generated CRD (structural
schema, CEL rules, defaults, printer columns, status not pruned), the update Job manifest and
the target env patch."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from inshape_api import cron_syntax
from inshape_api.kafka_connection import KafkaConnection, cluster_ca
from inshape_api.spec import CertSecretSource, PasswordSecretSource, parse_policy
from inshape_hack.kindtesting import KindEnv, apply_policy_crd
from inshape_hack.kubectl import KubectlRunner as Kubectl
from inshape_operator.config import load
from inshape_operator.job_builder import RunRequest, build_job
from inshape_operator.rollout import env_patch, workload
from tests.samples import FULL_STATUS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())


@pytest.fixture
def policies(
    kind_env: KindEnv, kubectl: Kubectl, namespace: str
) -> Callable[[dict[str, Any]], str]:
    """Apply the CRD (served before the first use); returns a server dry-run of a policy."""
    apply_policy_crd(kind_env.kubectl())

    def dry_run(document: dict[str, Any]) -> str:
        document = {**document, "metadata": {"name": "digits", "namespace": namespace}}
        return kubectl(
            "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(document), check=False
        )

    return dry_run


CA = {"secretName": "kafka-ca", "certificate": "ca.crt"}
SCRAM = {
    "authentication": {
        "type": "scram-sha-512",
        "username": "alice",
        "passwordSecret": {"secretName": "alice", "password": "password"},
    }
}


def mutated(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(EXAMPLE)
    change(document["spec"])
    return document


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda s: None, None),
        (
            lambda s: s["source"]["kafka"].update(strimziCluster="my-cluster"),
            'spec.source.kafka: Invalid value: "object": exactly one of',
        ),
        (
            lambda s: s["source"]["kafka"].update(label="px3"),
            'spec.source.kafka.label: Invalid value: "object": label must not',
        ),
        (
            lambda s: (
                s["source"]["kafka"].pop("label"),
                s["source"]["kafka"]["features"].append("label"),
            ),
            "label must not also be listed as a feature",
        ),
        (lambda s: s["source"]["kafka"]["features"].append("px1"), 'Duplicate value: "px1"'),
        (
            lambda s: s["model"].update(strategy="retrain"),
            "spec.model.window: Required value: window is required",
        ),
        (lambda s: s["model"].update(strategy="retrain", window={}), None),
        (
            lambda s: s["evaluation"].update(minHoldout=60000),
            'spec.evaluation.minHoldout: Invalid value: "object": minHoldout must not exceed',
        ),
        (lambda s: s["trigger"].update(schedule="every 5 minutes"), "spec.trigger.schedule"),
        (lambda s: s["trigger"].update(schedule="*/5 9-17 * * mon-fri"), None),
        (
            lambda s: s["trigger"].update(schedule="99 99 99 99 99"),
            'spec.trigger.schedule: Invalid value: "99 99 99 99 99": '
            "spec.trigger.schedule in body should match",
        ),
        (
            lambda s: s["trigger"].update(schedule="*/0 * * * *"),
            'spec.trigger.schedule: Invalid value: "*/0 * * * *": '
            "spec.trigger.schedule in body should match",
        ),
        (
            lambda s: s["trigger"].update(schedule="61 * * * *"),
            'spec.trigger.schedule: Invalid value: "61 * * * *": '
            "spec.trigger.schedule in body should match",
        ),
        (lambda s: s["trigger"].update(schedule="*/15 9-17 * * mon-fri"), None),
        (lambda s: s["trigger"].update(schedule="@hourly"), None),
        (lambda s: s.update(bogus=1), 'unknown field "spec.bogus"'),
        (
            lambda s: s["target"].update(env="PYTHONPATH"),
            "spec.target.env: Forbidden: env is reserved",
        ),
        (lambda s: s["source"]["kafka"].update(tls={"trustedCertificates": [CA]}, **SCRAM), None),
        (
            lambda s: s["source"]["kafka"].update(
                tls={"trustedCertificates": [{**CA, "pattern": "*.crt"}]}
            ),
            "spec.source.kafka.tls.trustedCertificates[0]: Invalid value: "
            '"object": exactly one of certificate and pattern',
        ),
        (
            lambda s: s["source"]["kafka"].update(authentication={"type": "tls"}),
            "spec.source.kafka.authentication.certificateAndKey: Required value",
        ),
        (
            lambda s: s["source"]["kafka"].update(
                authentication={**SCRAM["authentication"], "type": "plain"}
            ),
            "spec.source.kafka.tls: Required value: tls is required with authentication type plain",
        ),
        (
            lambda s: (
                s["source"]["kafka"].pop("bootstrapServers"),
                s["source"]["kafka"].update(
                    strimziCluster="my-cluster",
                    authentication={**SCRAM["authentication"], "type": "scram-sha-256"},
                ),
            ),
            "spec.source.kafka.authentication.type: Invalid value: "
            '"object": Strimzi listeners authenticate with tls or scram-sha-512 only',
        ),
        (
            lambda s: s["source"]["kafka"].update(
                authentication={**SCRAM["authentication"], "passwordSecret": {"secretName": "A"}}
            ),
            "spec.source.kafka.authentication.passwordSecret.password: Required value",
        ),
        # The same refusals and edges as test_spec_refusals_apiserver.py (bare API server).
        (
            lambda s: s["evaluation"].update(floor=1.5),
            'spec.evaluation.floor: Invalid value: "object": floor must be within [0, 1]',
        ),
        (
            lambda s: s["evaluation"].update(metric="rmse", floor=-1),
            'spec.evaluation.floor: Invalid value: "object": floor must be at least 0',
        ),
        (lambda s: s["evaluation"].update(metric="r2", floor=-3.5), None),
        (
            lambda s: s["trigger"].update(maxInterval="30s"),
            'spec.trigger.maxInterval: Invalid value: "object": maxInterval must be at least 1m',
        ),
        (lambda s: s["trigger"].update(maxInterval="1m"), None),
        (
            lambda s: s["source"]["kafka"].update(deadLetterTopic="digits-events"),
            'spec.source.kafka.deadLetterTopic: Invalid value: "object": deadLetterTopic must',
        ),
        (lambda s: s["source"]["kafka"].update(topic=".."), "spec.source.kafka.topic: Invalid"),
        (lambda s: s["source"]["kafka"].update(topic="..."), None),
        (
            lambda s: s["trigger"].update(minNewRecords=10**9 + 1),
            "spec.trigger.minNewRecords: Invalid value",
        ),
        (
            lambda s: s.update(job={"resources": {"limits": {"memory": "1 GB"}}}),
            "spec.job.resources.limits.memory: Invalid value",
        ),
        (
            lambda s: s.update(job={"resources": {"requests": {"cpus": "1"}}}),
            'spec.job.resources.requests: Invalid value: "object": requests may name only',
        ),
        (
            lambda s: s.update(job={"resources": {"limits": {"memory": "1Gi", "cpu": 2}}}),
            None,
        ),
    ],
)
def test_the_crd_admits_and_refuses_like_the_parser(
    policies: Callable[[dict[str, Any]], str], change: Any, refusal: str | None
) -> None:
    output = policies(mutated(change))
    if refusal is None:
        assert "created (server dry run)" in output, output
    else:
        assert refusal in output, output


# Strings where the API server's regular expressions (Go's RE2, for an ECMA-262 pattern) and
# Python's re.fullmatch (spec.py) could part: anchors before a newline, non-ASCII digits and
# spaces, letter case, leading zeros, the day fields' `*`-first rule, croniter's extensions.
SCHEDULES = [
    "*/15 9-17 * * mon-fri",
    "00 09 * * MON-Fri",
    "0 0 1,15 JAN,jul *",
    "0 0 29 2 *",
    "0 0 31 2 *",  # admitted: the operator finds it never fires
    "5-1 * * * *",  # admitted: the operator refuses a backwards range
    "*/5 */2 */3 */4 */6",
    "0 12 *,1 * *",
    "0 12 * * 1,*",
    "0 0 * * 0-7",
    "0 0 * * 7",
    "0 0 * * 8",
    "@daily",
    "@DAILY",
    "@reboot",
    "* * * * *\n",
    "\n* * * * *",
    "* * * * * ",
    "*  *  *  *  *",
    "*\t* * * *",
    "* * * * *\u00a0",
    "\u0661 * * * *",
    "0 0 L * *",
    "0 0 * * mon#2",
    "0 0 ? * *",
    "* * * * * *",
    "1,,2 * * * *",
    "0000059 23 31 12 6",
    "60 * * * *",
    "* * 0 * *",
]


def test_the_api_server_reads_the_pattern_as_spec_py_does(
    policies: Callable[[dict[str, Any]], str], kubectl: Kubectl, namespace: str
) -> None:
    items = []
    for index, schedule in enumerate(SCHEDULES):
        document = mutated(lambda s, schedule=schedule: s["trigger"].update(schedule=schedule))
        items.append({**document, "metadata": {"name": f"s{index}", "namespace": namespace}})
    output = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        check=False,
    )
    for index, schedule in enumerate(SCHEDULES):
        admitted = re.search(rf"/s{index} created \(server dry run\)", output) is not None
        refused = re.search(rf'"s{index}" is invalid: spec\.trigger\.schedule', output) is not None
        assert admitted != refused, (schedule, output)
        assert admitted == (re.fullmatch(cron_syntax.PATTERN, schedule) is not None), (
            schedule,
            output,
        )


def test_defaults_status_and_columns(
    policies: Callable[[dict[str, Any]], str], kubectl: Kubectl, namespace: str
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({**EXAMPLE, "metadata": {"name": "digits", "namespace": namespace}}),
    )
    stored = json.loads(kubectl("get", "mup", "digits", "-o", "json"))
    assert stored["spec"]["job"] == {
        "activeDeadlineSeconds": 1800,
        "backoffLimit": 2,
        "resources": {},
    }
    assert stored["spec"]["evaluation"]["minHoldout"] == 30

    status = replace(FULL_STATUS, observedGeneration=stored["metadata"]["generation"]).to_wire()
    kubectl(
        "patch",
        "mup",
        "digits",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    back = json.loads(kubectl("get", "mup", "digits", "-o", "json"))["status"]
    assert back == json.loads(json.dumps(status))  # nothing pruned
    table = kubectl("get", "mup")
    assert table.split("\n")[0].split() == [
        "NAME",
        "CHAMPION",
        "METRIC",
        "PENDING",
        "LAST",
        "READY",
        "AGE",
    ]
    pending = str(FULL_STATUS.pendingRecords)
    assert table.split("\n")[1].split()[:6] == ["digits", "7", "0.93", pending, "Promoted", "True"]


def test_the_update_job_is_a_valid_job(kubectl: Kubectl, namespace: str) -> None:
    policy = parse_policy({**EXAMPLE, "metadata": {"name": "digits", "namespace": namespace}})
    run = RunRequest(
        uid="0f6c1a7e-1111-2222-3333-444455556666",
        sequence=1,
        trigger="Lag",
        kafka=KafkaConnection(
            "my-cluster-kafka-bootstrap:9093",
            protocol="SASL_SSL",
            trustedCertificates=(cluster_ca("my-cluster"), CertSecretSource("cas", pattern="*")),
            saslMechanism="SCRAM-SHA-512",
            username="alice",
            passwordSecret=PasswordSecretSource("alice", "password"),
        ),
    )
    job = build_job(policy, run, load({}))
    job["metadata"].pop("ownerReferences")  # the owner does not exist in this test
    output = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(job))
    created = json.loads(output)
    assert created["spec"]["podFailurePolicy"] == job["spec"]["podFailurePolicy"]
    assert created["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_env_patch_applies_to_a_real_deployment(kubectl: Kubectl, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "digits-serving", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "serving"}},
            "template": {
                "metadata": {"labels": {"app": "serving"}},
                "spec": {
                    "containers": [
                        {"name": "proxy", "image": "x"},
                        {
                            "name": "server",
                            "image": "x",
                            "env": [{"name": "MODEL_URI", "value": "old"}],
                        },
                    ]
                },
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    live = json.loads(kubectl("get", "deployment", "digits-serving", "-o", "json"))
    target = parse_policy(EXAMPLE).spec.target
    assert target is not None
    uri = "models:/digits-classifier/7"
    patch = env_patch(workload(live), target, namespace, uri)
    assert patch is not None
    ops = json.dumps([op.to_wire() for op in patch])
    kubectl("patch", "deployment", "digits-serving", "--type=json", "-p", ops)
    live = json.loads(kubectl("get", "deployment", "digits-serving", "-o", "json"))
    server = live["spec"]["template"]["spec"]["containers"][1]
    assert server["env"] == [{"name": "MODEL_URI", "value": "models:/digits-classifier/7"}]
    assert env_patch(workload(live), target, namespace, uri) is None
