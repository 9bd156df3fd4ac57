"""Specs that can never work, refused by a real API server at `kubectl apply` with the field
named, and the edge values next to them admitted; the Python parser (spec.py) agrees on each.

A bare API server (etcd + kube-apiserver, tests/cluster/conftest.py) suffices: the generated
CRD's keywords and CEL rules are all the API server's own work, so no kind cluster is needed.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inshape_api.spec import SpecError, parse_policy
from inshape_hack.apiserver import ApiServer
from inshape_hack.kubectl import KubectlRunner
from inshape_operator.crd import MANIFEST, NAME

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())
NAMESPACE = "refusals"

Change = Callable[[dict[str, Any]], Any]


def kafka(**values: Any) -> Change:
    return lambda s: s["source"]["kafka"].update(values)


def evaluation(**values: Any) -> Change:
    return lambda s: s["evaluation"].update(values)


def trigger(**values: Any) -> Change:
    return lambda s: s["trigger"].update(values)


def job(**values: Any) -> Change:
    return lambda s: s.setdefault("job", {}).update(values)


def resources(**values: Any) -> Change:
    return job(resources=values)


# (change, the field both refusals name, the API server's words) — refused by both.
REFUSED: list[tuple[Change, str, str]] = [
    # evaluation.floor against the metric (unset: accuracy)
    (evaluation(floor=1.5), "spec.evaluation.floor", "floor must be within [0, 1]"),
    (evaluation(floor=-0.1), "spec.evaluation.floor", "floor must be within [0, 1]"),
    (evaluation(metric="roc_auc", floor=1.01), "spec.evaluation.floor", "within [0, 1]"),
    (evaluation(metric="r2", floor=1.2), "spec.evaluation.floor", "floor must be at most 1"),
    (evaluation(metric="rmse", floor=-1), "spec.evaluation.floor", "floor must be at least 0"),
    (evaluation(metric="mae", floor=-0.5), "spec.evaluation.floor", "floor must be at least 0"),
    # trigger.maxInterval: a DURATION of at least one minute
    (trigger(maxInterval="30s"), "spec.trigger.maxInterval", "must be at least 1m"),
    (trigger(maxInterval="59s"), "spec.trigger.maxInterval", "must be at least 1m"),
    (trigger(maxInterval="0m0h"), "spec.trigger.maxInterval", "must be at least 1m"),
    (trigger(maxInterval="3651d"), "spec.trigger.maxInterval", "must be at most 3650d"),
    (trigger(maxInterval="6 hours"), "spec.trigger.maxInterval", "should match"),
    (trigger(maxInterval="9999999999d"), "spec.trigger.maxInterval", "should match"),
    (trigger(schedule="every 5 minutes"), "spec.trigger.schedule", "should match"),
    (trigger(schedule="61 * * * *"), "spec.trigger.schedule", "should match"),
    # topics
    (kafka(deadLetterTopic="digits-events"), "spec.source.kafka.deadLetterTopic", "must differ"),
    (kafka(topic="my topic"), "spec.source.kafka.topic", "should match"),
    (kafka(topic="."), "spec.source.kafka.topic", "should match"),
    (kafka(topic=".."), "spec.source.kafka.topic", "should match"),
    (kafka(topic="a" * 250), "spec.source.kafka.topic", "may not be more than 249"),
    (kafka(topic="tópico"), "spec.source.kafka.topic", "should match"),
    (kafka(deadLetterTopic="dead/letters"), "spec.source.kafka.deadLetterTopic", "should match"),
    (kafka(deadLetterTopic=".."), "spec.source.kafka.deadLetterTopic", "should match"),
    # integers without a sane bound
    (trigger(minNewRecords=1_000_000_001), "spec.trigger.minNewRecords", "less than or equal"),
    (kafka(maxRecordBytes=64 * 1024 * 1024 + 1), "spec.source.kafka.maxRecordBytes", "less"),
    (evaluation(maxHoldout=10_000_001), "spec.evaluation.maxHoldout", "less than or equal"),
    (evaluation(minHoldout=10_000_001), "spec.evaluation.minHoldout", "less than or equal"),
    (job(activeDeadlineSeconds=604_801), "spec.job.activeDeadlineSeconds", "less than or"),
    (job(backoffLimit=11), "spec.job.backoffLimit", "less than or equal"),
    # job.resources: typed requests/limits of quantities
    (resources(limits={"memory": "1 GB"}), "spec.job.resources.limits.memory", "should match"),
    (resources(limits={"memory": "-1Gi"}), "spec.job.resources.limits.memory", "should match"),
    (resources(requests={"cpu": -1}), "spec.job.resources.requests.cpu", "greater than or"),
    (resources(requests={"cpu": 0.5}), "spec.job.resources.requests.cpu", "integer,string"),
    (resources(requests={"cpus": "1"}), "spec.job.resources.requests", "only container res"),
    (resources(limits={"gpu": 1}), "spec.job.resources.limits", "only container resources"),
    (resources(limit={"memory": "1Gi"}), "spec.job.resources.limit", "unknown field"),
    (job(resources={"limits": ["1Gi"]}), "spec.job.resources.limits", "must be"),
    (
        resources(requests={"memory": "1Gi"}, limits={"memory": "1000Mi"}),
        "spec.job.resources.limits",
        "limits must not be below requests",
    ),
    (
        resources(requests={"cpu": 2}, limits={"cpu": "1500m", "memory": "1Gi"}),
        "spec.job.resources.limits",
        "limits must not be below requests",
    ),
]

# Edge values next to the refusals: admitted by both.
ADMITTED: list[Change] = [
    evaluation(floor=0),
    evaluation(floor=1),
    evaluation(metric="f1_macro", floor=0.0),
    evaluation(metric="r2", floor=-3.5),
    evaluation(metric="r2", floor=1),
    evaluation(metric="rmse", floor=0),
    evaluation(metric="mae", floor=1e6),
    trigger(maxInterval="1m"),
    trigger(maxInterval="60s"),
    trigger(maxInterval="30s30s"),
    trigger(maxInterval="0h1m"),
    trigger(maxInterval="1h30m"),
    trigger(maxInterval="3650d"),
    trigger(schedule="*/5 9-17 * * mon-fri"),
    kafka(topic="a" * 249),
    kafka(topic="x"),
    kafka(topic="..."),
    kafka(topic=".a"),
    kafka(topic="a."),
    kafka(topic="Digits_v2.raw-events"),
    kafka(deadLetterTopic="digits.dead"),
    trigger(minNewRecords=1_000_000_000),
    kafka(maxRecordBytes=64 * 1024 * 1024),
    evaluation(maxHoldout=10_000_000, minHoldout=10_000_000),
    job(activeDeadlineSeconds=604_800, backoffLimit=10),
    resources(),
    resources(
        requests={"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1G"},
        limits={"cpu": 2, "memory": "1.5Gi", "hugepages-2Mi": "64Mi", "example.com/gpu": 1},
    ),
    resources(limits={"memory": "1e9", "cpu": "+.5", "ephemeral-storage": "0"}),
    resources(requests={"memory": "1Gi", "cpu": "500m"}, limits={"memory": "1024Mi", "cpu": 1}),
    resources(requests={"memory": "1G"}, limits={"memory": "1e9", "cpu": "100m"}),
]


def mutated(change: Change, name: str) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(EXAMPLE)
    change(document["spec"])
    document["metadata"] = {"name": name, "namespace": NAMESPACE}
    return document


@pytest.fixture(scope="module")
def admin(api_server: ApiServer) -> KubectlRunner:
    """The generated CRD (the committed manifest), served, and a namespace for the policies."""
    kubectl = api_server.kubectl()
    kubectl("apply", "--server-side", "-f", str(ROOT / MANIFEST))
    kubectl("wait", "--for=condition=Established", f"crd/{NAME}", "--timeout=60s")
    kubectl("create", "namespace", NAMESPACE)
    return kubectl


def dry_run(admin: KubectlRunner, document: dict[str, Any]) -> str:
    return admin("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(document), check=False)


@pytest.mark.parametrize(("change", "field", "words"), REFUSED)
def test_specs_that_can_never_work_are_refused_with_the_field_named(
    admin: KubectlRunner, change: Change, field: str, words: str
) -> None:
    document = mutated(change, "refused")
    output = dry_run(admin, document)
    assert "created" not in output, output
    # The field as the error's path (`spec.x: Invalid value`) or in `unknown field "spec.x"`.
    assert re.search(rf'(^|[\s"]){re.escape(field)}[:"]', output, re.MULTILINE), output
    assert words in output, output
    with pytest.raises(SpecError) as caught:
        parse_policy(document)
    assert caught.value.path.startswith(field), str(caught.value)


@pytest.mark.parametrize("change", ADMITTED)
def test_edge_values_are_admitted(admin: KubectlRunner, change: Change) -> None:
    document = mutated(change, "admitted")
    output = dry_run(admin, document)
    assert "admitted created (server dry run)" in output, output
    parse_policy(document)  # and the parser agrees
