"""The policy spec: defaults, identity-derived defaults, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from inshape_api.spec import (
    POLICY_ENV,
    Policy,
    ResourcesSpec,
    SpecError,
    dumps_policy,
    load_policy,
    parse_policy,
    parse_spec,
    reserved_env,
)

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "manifests" / "examples" / "digits.yaml"


def minimal_spec() -> dict[str, Any]:
    return {
        "source": {
            "kafka": {"bootstrapServers": "kafka:9092", "topic": "events", "features": ["a", "b"]}
        },
        "model": {"name": "m", "estimator": "sklearn.linear_model.SGDClassifier"},
        "mlflow": {"trackingUri": "http://mlflow:5000"},
    }


def document(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "inshape.dev/v1alpha1",
        "kind": "ModelUpdatePolicy",
        "metadata": {"name": "p", "namespace": "ns", **meta},
        "spec": minimal_spec() if spec is None else spec,
    }


def with_value(path: str, value: Any) -> dict[str, Any]:
    """The minimal spec with the dotted path set (intermediate objects created)."""
    raw = copy.deepcopy(minimal_spec())
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


def without(path: str) -> dict[str, Any]:
    raw = copy.deepcopy(minimal_spec())
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    del node[leaf]
    return raw


def spec_error(raw: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value


# --- valid policies ---------------------------------------------------------------------------


def test_digits_example_parses_fully() -> None:
    policy = load_policy(str(DIGITS), environ={})
    spec = policy.spec
    assert (policy.name, policy.namespace) == ("digits", "ml")
    kafka = spec.source.kafka
    assert kafka.features == [f"px{i}" for i in range(64)]
    assert kafka.bootstrapServers == "my-cluster-kafka-bootstrap.kafka:9092"
    assert kafka.strimziCluster is None
    assert kafka.topic == "digits-events"
    assert spec.model.estimator == "sklearn.linear_model.SGDClassifier"
    assert spec.model.params == {"loss": "log_loss", "alpha": 0.0001, "random_state": 0}
    assert spec.model.classes == list(range(10))
    assert spec.trigger.minNewRecords == 2000
    assert spec.trigger.maxInterval == "6h"
    assert spec.evaluation.metric == "f1_macro"
    assert spec.evaluation.floor == 0.8
    assert spec.evaluation.significance == 0.05
    assert spec.evaluation.minImprovement == 0.005
    assert spec.target is not None
    assert (spec.target.deployment, spec.target.container) == ("digits-serving", "server")
    assert policy.experiment == "digits"
    assert policy.consumer_group == "inshape-ml-digits"


def test_defaults_are_applied() -> None:
    spec = parse_spec(minimal_spec())
    kafka = spec.source.kafka
    assert (kafka.label, kafka.format, kafka.maxRecordBytes) == ("label", "json", 65_536)
    assert kafka.consumerGroup is None and kafka.deadLetterTopic is None
    assert (spec.model.strategy, spec.model.params, spec.model.window) == ("incremental", {}, None)
    assert spec.model.classes is None
    assert spec.trigger.minNewRecords == 1000
    assert spec.trigger.schedule is None and spec.trigger.maxInterval is None
    ev = spec.evaluation
    assert (ev.metric, ev.holdoutFraction, ev.maxHoldout, ev.minHoldout) == (
        "accuracy",
        0.2,
        50_000,
        30,
    )
    assert (ev.minImprovement, ev.minRelativeImprovement) == (0.0, 0.0)
    assert ev.floor is None and ev.significance is None
    assert spec.target is None
    assert (spec.job.activeDeadlineSeconds, spec.job.backoffLimit, spec.job.resources) == (
        1800,
        2,
        ResourcesSpec(),
    )
    assert spec.suspend is False


def test_null_optional_fields_take_their_defaults() -> None:
    raw = with_value("trigger", None)
    raw["evaluation"] = {"floor": None, "metric": None}
    spec = parse_spec(raw)
    assert spec.trigger.minNewRecords == 1000
    assert spec.evaluation.floor is None
    assert spec.evaluation.metric == "accuracy"


def test_integers_are_accepted_as_numbers() -> None:
    spec = parse_spec(with_value("evaluation.floor", 1))
    assert spec.evaluation.floor == 1.0
    assert isinstance(spec.evaluation.floor, float)


def test_retrain_with_window() -> None:
    raw = with_value("model.strategy", "retrain")
    raw["model"]["window"] = {}
    spec = parse_spec(raw)
    assert spec.model.window is not None
    assert spec.model.window.maxRecords == 200_000


def test_string_class_labels() -> None:
    spec = parse_spec(with_value("model.classes", ["cat", "dog", 3]))
    assert spec.model.classes == ["cat", "dog", 3]


def test_identity_defaults() -> None:
    policy = parse_policy(document())
    assert policy.consumer_group == "inshape-ns-p"
    assert policy.experiment == "ns-p"


def test_identity_defaults_overridden() -> None:
    spec = with_value("source.kafka.consumerGroup", "my-group")
    spec["mlflow"]["experiment"] = "my-experiment"
    policy = parse_policy(document(spec))
    assert policy.consumer_group == "my-group"
    assert policy.experiment == "my-experiment"


def test_namespace_defaults_to_default() -> None:
    doc = document()
    del doc["metadata"]["namespace"]
    policy = parse_policy(doc)
    assert policy.namespace == "default"
    assert policy.consumer_group == "inshape-default-p"


def test_strimzi_cluster_instead_of_bootstrap_servers() -> None:
    raw = without("source.kafka.bootstrapServers")
    raw["source"]["kafka"]["strimziCluster"] = "my-cluster"
    assert parse_spec(raw).source.kafka.strimziCluster == "my-cluster"


# --- errors name the field ---------------------------------------------------------------------

# (raw spec, expected error path, fragment of the message)
BAD_SPECS: list[tuple[dict[str, Any], str, str]] = [
    # unknown fields
    (with_value("bogus", 1), "spec.bogus", "unknown field"),
    (with_value("source.kafka.topik", "x"), "spec.source.kafka.topik", "unknown field"),
    (with_value("evaluation.holdout", 0.1), "spec.evaluation.holdout", "unknown field"),
    # missing required
    (without("source"), "spec.source", "is required"),
    (without("model"), "spec.model", "is required"),
    (without("mlflow.trackingUri"), "spec.mlflow.trackingUri", "is required"),
    (without("source.kafka.topic"), "spec.source.kafka.topic", "is required"),
    (without("source.kafka.features"), "spec.source.kafka.features", "is required"),
    (without("model.estimator"), "spec.model.estimator", "is required"),
    (with_value("target", {}), "spec.target.deployment", "is required"),
    # wrong type
    (with_value("source", "kafka"), "spec.source", "must be an object"),
    (with_value("source.kafka.features", "a"), "spec.source.kafka.features", "must be a list"),
    (with_value("source.kafka.features", ["a", 2]), "spec.source.kafka.features[1]", "string"),
    (with_value("source.kafka.topic", 7), "spec.source.kafka.topic", "must be a string"),
    (with_value("model.params", ["a"]), "spec.model.params", "must be an object"),
    (with_value("trigger.minNewRecords", 1.5), "spec.trigger.minNewRecords", "integer"),
    (with_value("trigger.minNewRecords", True), "spec.trigger.minNewRecords", "integer"),
    (with_value("trigger.minNewRecords", "10"), "spec.trigger.minNewRecords", "integer"),
    (with_value("evaluation.holdoutFraction", "0.2"), "spec.evaluation.holdoutFraction", "number"),
    (with_value("evaluation.holdoutFraction", True), "spec.evaluation.holdoutFraction", "number"),
    (with_value("evaluation.floor", "high"), "spec.evaluation.floor", "number"),
    (with_value("suspend", "yes"), "spec.suspend", "must be a boolean"),
    (with_value("model.classes", [1.5]), "spec.model.classes[0]", "integer or string"),
    (with_value("model.classes", [True]), "spec.model.classes[0]", "integer or string"),
    # out of bounds
    (with_value("evaluation.holdoutFraction", 0.95), "spec.evaluation.holdoutFraction", "<= 0.9"),
    (with_value("evaluation.holdoutFraction", 0.0), "spec.evaluation.holdoutFraction", ">= 0.01"),
    (with_value("evaluation.minImprovement", -0.1), "spec.evaluation.minImprovement", ">= 0"),
    (with_value("evaluation.significance", 0.9), "spec.evaluation.significance", "<= 0.5"),
    (with_value("evaluation.maxHoldout", 5), "spec.evaluation.maxHoldout", ">= 10"),
    (with_value("source.kafka.maxRecordBytes", 8), "spec.source.kafka.maxRecordBytes", ">= 16"),
    (with_value("trigger.minNewRecords", 0), "spec.trigger.minNewRecords", ">= 1"),
    (with_value("job.backoffLimit", 11), "spec.job.backoffLimit", "<= 10"),
    (with_value("job.activeDeadlineSeconds", 5), "spec.job.activeDeadlineSeconds", ">= 30"),
    (with_value("model.window", {"maxRecords": 10}), "spec.model.window.maxRecords", ">= 100"),
    (with_value("source.kafka.features", []), "spec.source.kafka.features", "at least 1 item"),
    (with_value("source.kafka.topic", ""), "spec.source.kafka.topic", "at least 1 character"),
    (with_value("source.kafka.topic", "t" * 250), "spec.source.kafka.topic", "at most 249"),
    (with_value("trigger.schedule", "* * *"), "spec.trigger.schedule", "has 3 field(s); give 5"),
    # not a finite number (YAML can say .nan and .inf; JSON and so the CRD cannot)
    (
        with_value("evaluation.holdoutFraction", float("nan")),
        "spec.evaluation.holdoutFraction",
        "finite",
    ),
    (
        with_value("evaluation.minImprovement", float("inf")),
        "spec.evaluation.minImprovement",
        "finite",
    ),
    (with_value("evaluation.floor", float("nan")), "spec.evaluation.floor", "finite"),
    # enums
    (with_value("model.strategy", "online"), "spec.model.strategy", "'incremental', 'retrain'"),
    (with_value("evaluation.metric", "auc"), "spec.evaluation.metric", "one of"),
    (with_value("source.kafka.format", "avro"), "spec.source.kafka.format", "one of 'json'"),
    # patterns
    (with_value("model.name", "-model"), "spec.model.name", "does not match"),
    (with_value("model.estimator", "os.system"), "spec.model.estimator", "does not match"),
    (with_value("model.estimator", "sklearn"), "spec.model.estimator", "does not match"),
    (with_value("trigger.maxInterval", "6 hours"), "spec.trigger.maxInterval", "does not match"),
    (with_value("target", {"deployment": "Serving"}), "spec.target.deployment", "does not match"),
    (
        with_value("target", {"deployment": "serving\n"}),
        "spec.target.deployment",
        "does not match",
    ),
    (with_value("target", {"deployment": "s", "env": "1X"}), "spec.target.env", "does not match"),
    # cross-field rules
    (
        with_value("source.kafka.strimziCluster", "my-cluster"),
        "spec.source.kafka",
        "exactly one of bootstrapServers and strimziCluster",
    ),
    (
        without("source.kafka.bootstrapServers"),
        "spec.source.kafka",
        "exactly one of bootstrapServers and strimziCluster",
    ),
    (with_value("model.strategy", "retrain"), "spec.model.window", "required when strategy"),
    (with_value("source.kafka.label", "a"), "spec.source.kafka.label", "also listed as a feature"),
    (with_value("source.kafka.features", ["a", "b", "a"]), "spec.source.kafka.features", "unique"),
    (
        with_value("evaluation", {"minHoldout": 200, "maxHoldout": 100}),
        "spec.evaluation.minHoldout",
        "must not exceed maxHoldout",
    ),
]


@pytest.mark.parametrize(
    ("raw", "path", "fragment"), BAD_SPECS, ids=[f"{p}:{f}" for _, p, f in BAD_SPECS]
)
def test_errors_name_the_field(raw: dict[str, Any], path: str, fragment: str) -> None:
    error = spec_error(raw)
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    assert fragment in str(error)


def test_spec_error_is_a_value_error() -> None:
    assert isinstance(spec_error(with_value("bogus", 1)), ValueError)


def test_unknown_field_error_lists_known_fields() -> None:
    assert "topic" in str(spec_error(with_value("source.kafka.topik", "x")))


def test_spec_must_be_an_object() -> None:
    assert spec_error(["a"]).path == "spec"


# --- whole documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (["not", "a", "mapping"], "(document)"),
        ({**document(), "kind": "Deployment"}, "kind"),
        ({**document(), "metadata": {}}, "metadata.name"),
        ({**document(), "metadata": {"name": "Bad_Name"}}, "metadata.name"),
        ({**document(), "metadata": {"name": "p\n"}}, "metadata.name"),
        ({k: v for k, v in document().items() if k != "spec"}, "spec"),
        (document(with_value("bogus", 1)), "spec.bogus"),
    ],
)
def test_bad_documents(doc: Any, path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_policy(doc)
    assert info.value.path == path


# --- loading ---------------------------------------------------------------------------------


def test_load_policy_from_the_environment() -> None:
    text = DIGITS.read_text()
    from_env = load_policy(environ={POLICY_ENV: text})
    assert from_env == load_policy(str(DIGITS), environ={})


def test_file_argument_wins_over_the_environment() -> None:
    other = json.dumps(document())
    assert load_policy(str(DIGITS), environ={POLICY_ENV: other}).name == "digits"


def test_dumped_policy_loads_back_equal() -> None:
    policy = load_policy(str(DIGITS), environ={})
    text = dumps_policy(policy)
    assert json.loads(text)["kind"] == "ModelUpdatePolicy"
    assert "strimziCluster" not in json.loads(text)["spec"]["source"]["kafka"]
    assert load_policy(environ={POLICY_ENV: text}) == policy


def test_no_policy_given() -> None:
    with pytest.raises(SpecError) as info:
        load_policy(environ={})
    assert info.value.path == "(policy)"
    assert POLICY_ENV in str(info.value)


def test_bad_yaml() -> None:
    with pytest.raises(SpecError) as info:
        load_policy(environ={POLICY_ENV: "spec: [unclosed, list\n  kind: {"})
    assert info.value.path == "(policy)"
    assert "not valid YAML" in str(info.value)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError) as info:
        load_policy(str(path), environ={})
    assert info.value.path == "(document)"


def test_load_policy_returns_a_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document()))
    policy = load_policy(str(path), environ={})
    assert isinstance(policy, Policy)
    assert policy.spec.source.kafka.features == ["a", "b"]


def test_yaml_nan_is_rejected_with_its_path() -> None:
    text = DIGITS.read_text().replace("holdoutFraction: 0.2", "holdoutFraction: .nan")
    assert ".nan" in text
    with pytest.raises(SpecError) as info:
        load_policy(environ={POLICY_ENV: text})
    assert info.value.path == "spec.evaluation.holdoutFraction"


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("MODEL_URI", False),
        ("PATHS", False),
        ("MY_PATH", False),
        ("PATH", True),
        ("LD_PRELOAD", True),
        ("PYTHONPATH", True),
        ("SSL_CERT_FILE", True),
        ("https_proxy", True),
        ("MLFLOW_TRACKING_TOKEN", True),
    ],
)
def test_env_names_that_change_what_runs_are_reserved(name: str, reserved: bool) -> None:
    assert reserved_env(name) is reserved


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "evaluation.floor",
            1.5,
            "spec.evaluation.floor: must be within [0, 1] for metric accuracy",
        ),
        ("evaluation.floor", -0.1, "spec.evaluation.floor: must be within [0, 1]"),
        ("trigger.maxInterval", "59s", "spec.trigger.maxInterval: must be at least 1m, got 59s"),
        ("trigger.maxInterval", "0h0m", "spec.trigger.maxInterval: must be at least 1m"),
        ("trigger.maxInterval", "3651d", "spec.trigger.maxInterval: must be at most 3650d"),
        ("trigger.maxInterval", "1234567890s", "spec.trigger.maxInterval: '1234567890s' does not"),
        (
            "source.kafka.deadLetterTopic",
            "events",
            "spec.source.kafka.deadLetterTopic: must differ",
        ),
        ("source.kafka.topic", "..", "spec.source.kafka.topic: '..' is not a Kafka topic name"),
        ("source.kafka.topic", "a b", "spec.source.kafka.topic: 'a b' is not a Kafka topic name"),
        ("source.kafka.deadLetterTopic", ".", "spec.source.kafka.deadLetterTopic: '.' is not"),
        ("source.kafka.topic", "a" * 250, "spec.source.kafka.topic: must have at most 249"),
        ("trigger.minNewRecords", 10**9 + 1, "spec.trigger.minNewRecords: must be <= 1000000000"),
        ("source.kafka.maxRecordBytes", 2**26 + 1, "spec.source.kafka.maxRecordBytes: must be <="),
        ("evaluation.maxHoldout", 10**7 + 1, "spec.evaluation.maxHoldout: must be <= 10000000"),
        ("evaluation.minHoldout", 10**7 + 1, "spec.evaluation.minHoldout: must be <= 10000000"),
        ("job.activeDeadlineSeconds", 604_801, "spec.job.activeDeadlineSeconds: must be <= 604800"),
        ("job.resources", {"limit": {}}, "spec.job.resources.limit: unknown field"),
        (
            "job.resources",
            {"limits": {"memory": "1 GB"}},
            "spec.job.resources.limits.memory: '1 GB'",
        ),
        (
            "job.resources",
            {"limits": {"memory": -1}},
            "spec.job.resources.limits.memory: must be >=",
        ),
        (
            "job.resources",
            {"limits": {"cpu": 0.5}},
            "spec.job.resources.limits.cpu: must be integer",
        ),
        (
            "job.resources",
            {"requests": {"cpus": 1}},
            "spec.job.resources.requests: 'cpus' is not a",
        ),
        ("job.resources", {"limits": "1Gi"}, "spec.job.resources.limits: must be an object"),
    ],
)
def test_specs_that_can_never_work_name_the_field_and_the_limit(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(with_value(path, value))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"evaluation.floor": 0},
        {"evaluation.floor": 1},
        {"evaluation.metric": "r2", "evaluation.floor": -2.0},
        {"evaluation.metric": "mae", "evaluation.floor": 1e6},
        {"trigger.maxInterval": "1m"},
        {"trigger.maxInterval": "30s30s"},
        {"trigger.maxInterval": "3650d"},
        {"source.kafka.topic": "..."},
        {"source.kafka.topic": ".a"},
        {"source.kafka.deadLetterTopic": "events.dead"},
        {"job.resources": {"limits": {"cpu": 2, "memory": "1.5Gi", "example.com/gpu": 1}}},
    ],
)
def test_edge_values_parse(changes: dict[str, Any]) -> None:
    raw = minimal_spec()
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    parse_spec(raw)


def test_the_job_container_gets_the_resources_as_given() -> None:
    given = {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi", "cpu": 2}}
    resources = parse_spec(with_value("job.resources", given)).job.resources
    assert resources.to_container() == given
    assert parse_spec(minimal_spec()).job.resources.to_container() == {}
