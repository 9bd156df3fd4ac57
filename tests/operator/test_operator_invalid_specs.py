"""Invalid policies are refused at `kubectl apply` by the real kube-apiserver (the CRD's schema
and CEL rules), with a message naming the field. Complements the dry-run cases in
tests/cluster/test_operator_crd_apiserver.py with a different set of mistakes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from inshape_hack.kindtesting import KindEnv, apply_policy_crd
from inshape_hack.kubectl import KubectlRunner as Kubectl
from tests.operator.conftest import EXAMPLE

pytestmark = pytest.mark.integration

Change = Callable[[dict[str, Any]], Any]

CASES: list[tuple[str, Change, str]] = [
    (
        "zero-threshold",
        lambda s: s["trigger"].update(minNewRecords=0),
        "spec.trigger.minNewRecords",
    ),
    (
        "interval-words",
        lambda s: s["trigger"].update(maxInterval="6 hours"),
        "spec.trigger.maxInterval",
    ),
    (
        "unknown-metric",
        lambda s: s["evaluation"].update(metric="precision"),
        "spec.evaluation.metric",
    ),
    (
        "holdout-too-big",
        lambda s: s["evaluation"].update(holdoutFraction=0.95),
        "spec.evaluation.holdoutFraction",
    ),
    (
        "target-in-other-namespace",
        lambda s: s["target"].update(deployment="other/digits-serving"),
        "spec.target.deployment",
    ),
    ("too-many-retries", lambda s: s["job"].update(backoffLimit=11), "spec.job.backoffLimit"),
    ("unknown-strategy", lambda s: s["model"].update(strategy="online"), "spec.model.strategy"),
    ("empty-topic", lambda s: s["source"]["kafka"].update(topic=""), "spec.source.kafka.topic"),
    (
        "no-features",
        lambda s: s["source"]["kafka"].update(features=[]),
        "spec.source.kafka.features",
    ),
    ("model-name-spaces", lambda s: s["model"].update(name="my model"), "spec.model.name"),
    ("not-sklearn", lambda s: s["model"].update(estimator="os.system"), "spec.model.estimator"),
    ("no-mlflow", lambda s: s.pop("mlflow"), "spec.mlflow"),
    (
        "short-deadline",
        lambda s: s["job"].update(activeDeadlineSeconds=5),
        "spec.job.activeDeadlineSeconds",
    ),
    ("bad-env-name", lambda s: s["target"].update(env="MODEL-URI"), "spec.target.env"),
]


@pytest.fixture
def apply(kind_env: KindEnv, kubectl: Kubectl, namespace: str) -> Callable[[str, Change], str]:
    apply_policy_crd(kind_env.kubectl())

    def run(name: str, change: Change) -> str:
        document = copy.deepcopy(EXAMPLE)
        document["metadata"] = {"name": name, "namespace": namespace}
        document["spec"].setdefault("job", {})
        change(document["spec"])
        return kubectl("apply", "-f", "-", stdin=json.dumps(document), check=False)

    return run


def test_at_least_ten_distinct_mistakes() -> None:
    assert len({field for _, _, field in CASES}) >= 10


@pytest.mark.parametrize(("name", "change", "field"), CASES, ids=[c[0] for c in CASES])
def test_kubectl_apply_refuses_naming_the_field(
    apply: Callable[[str, Change], str], kubectl: Kubectl, name: str, change: Change, field: str
) -> None:
    output = apply(name, change)
    assert "is invalid" in output, output
    assert field in output, output
    assert kubectl("get", "mup", "-o", "name") == ""  # nothing was stored
