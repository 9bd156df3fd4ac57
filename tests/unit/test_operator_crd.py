"""The generated CRD: no drift from the committed manifest, every spec field stated, and
sample objects checked against its schema (a small structural validator, below)."""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
import yaml

from inshape_api import spec as spec_module
from inshape_api.kafka_connection import KafkaConnection
from inshape_api.result import RecordCounts, decode
from inshape_api.spec import PolicySpec, SpecError, parse_policy, parse_spec
from inshape_api.status import (
    Champion,
    Condition,
    KafkaStatus,
    LastRun,
    OffsetRange,
    PolicyStatus,
)
from inshape_operator import crd
from inshape_operator.conditions import set_condition
from inshape_operator.status import Progress, Rollout, champion_of, desired_status
from inshape_operator.triggers import Decision
from inshape_operator.world import (
    FinishedRun,
    KafkaView,
    ObservedPolicy,
    PolicyRef,
    Problem,
    World,
)
from tests.samples import FULL_STATUS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / crd.MANIFEST
EXAMPLE = ROOT / "manifests/examples/digits.yaml"
SECURED_EXAMPLE = ROOT / "manifests/examples/secured/digits-scram.yaml"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def version_schema() -> dict[str, Any]:
    return dict(crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def example_spec() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE.read_text())["spec"])


# --- a small structural validator ------------------------------------------------------------


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Errors of `value` against a structural schema; unknown fields count as errors because
    the API server would prune them silently."""
    errors: list[str] = []
    int_or_string = isinstance(value, int | str) and not isinstance(value, bool)
    if schema.get("x-kubernetes-int-or-string") and not int_or_string:
        return [f"{path}: must be an integer or a string"]
    kind = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind is not None and not checks[kind](value):
        return [f"{path}: must be {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum {schema['minimum']}")
    if number and "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                errors.append(f"{path}: {value!r} is not a date-time")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if schema.get("x-kubernetes-list-type") == "set" and len(set(map(repr, value))) != len(
            value
        ):
            errors.append(f"{path}: duplicate items in a set")
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(v.get(k) for k in schema["x-kubernetes-list-map-keys"]) for v in value]
            if len(set(keys)) != len(keys):
                errors.append(f"{path}: duplicate map keys")
        for i, item in enumerate(value):
            errors += validate(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{path}: more than {schema['maxProperties']} properties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += validate(properties[name], item, f"{path}.{name}")
            elif "additionalProperties" in schema:
                errors += validate(schema["additionalProperties"], item, f"{path}.{name}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{name}: unknown field (would be pruned)")
    return errors


# --- (a) the committed manifest is the generated one -----------------------------------------


def test_committed_manifest_matches_generated() -> None:
    assert MANIFEST.exists(), f"{crd.MANIFEST} is missing: run `make crd`"
    assert MANIFEST.read_text() == crd.render(), (
        f"{crd.MANIFEST} is out of date with api/inshape_api/spec.py and status.py: run "
        "`make crd` "
        f"(python -m inshape_operator.crd -o {crd.MANIFEST}) and commit the result"
    )


def test_cli_writes_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "crd.yaml"
    assert crd.main(["-o", str(out)]) == 0
    assert out.read_text() == crd.render()
    assert yaml.safe_load(out.read_text())["metadata"]["name"] == "modelupdatepolicies.inshape.dev"


# --- (b) every field of spec.py is in the schema, with its default, enum and bounds ----------


def _dataclasses_from(cls: type, path: str = "spec") -> list[tuple[str, type]]:
    found = [(path, cls)]
    for f in dataclasses.fields(cls):
        for tp in (get_type_hints(cls)[f.name], *get_args(get_type_hints(cls)[f.name])):
            if dataclasses.is_dataclass(tp):
                found += _dataclasses_from(tp, f"{path}.{f.name}")  # type: ignore[arg-type]
    return found


def _schema_at(path: str) -> dict[str, Any]:
    """The schema at a dotted path (a list on the way stands for its items)."""
    schema = version_schema()
    for part in path.split("."):
        if schema.get("type") == "array":
            schema = schema["items"]
        schema = schema["properties"][part]
    return schema


def _object_at(path: str) -> dict[str, Any]:
    """The object schema a dataclass maps to: a list of them means their items' schema."""
    schema = _schema_at(path)
    return schema["items"] if schema.get("type") == "array" else schema


def test_every_spec_field_is_in_the_schema_with_its_keywords() -> None:
    walked = _dataclasses_from(PolicySpec)
    assert {cls.__name__ for _, cls in walked} >= {"KafkaSourceSpec", "WindowSpec", "JobSpec"}
    for path, cls in walked:
        schema = _object_at(path)
        assert schema["type"] == "object"
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(schema["properties"]) == set(fields), path
        required = [
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        assert schema.get("required", []) == required, path
        hints = get_type_hints(cls)
        for name, f in fields.items():
            prop = schema["properties"][name]
            where = f"{path}.{name}"
            assert prop["description"] == f.metadata["description"], where
            for key, value in f.metadata["schema"].items():
                if isinstance(value, dict):  # a map's values: keywords added to their type
                    assert prop[key] == {**prop[key], **value}, f"{where}: {key}"
                else:
                    assert prop[key] == value, f"{where}: {key}"
            extra = crd.EXTRA.get((cls, name), {})
            stated = set(f.metadata["schema"]) | set(extra) | {"items"}
            bounds = {"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"}
            assert set(prop) & (bounds | {"pattern"}) <= stated, f"{where}: unexplained keyword"
            if f.default is not dataclasses.MISSING and f.default is not None:
                assert prop["default"] == f.default, where
            elif f.default_factory is not dataclasses.MISSING:
                made = f.default_factory()
                assert prop["default"] == ({} if dataclasses.is_dataclass(made) else made), where
            else:
                assert "default" not in prop, where
            tp = hints[name]
            literal = [a for a in (tp, *get_args(tp)) if get_origin(a) is Literal]
            if literal:
                assert prop["enum"] == list(get_args(literal[0])), where


def test_defaults_in_the_schema_parse_to_the_dataclass_defaults() -> None:
    """Applying the CRD's defaults gives the spec the Job would derive on its own."""

    def apply_defaults(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        for name, prop in schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = copy.deepcopy(prop["default"])
            if isinstance(out.get(name), dict) and "properties" in prop:
                out[name] = apply_defaults(prop, out[name])
        return out

    raw = example_spec()
    defaulted = apply_defaults(_schema_at("spec"), raw)
    assert defaulted["trigger"]["minNewRecords"] == 2000
    assert defaulted["job"]["backoffLimit"] == spec_module.JobSpec().backoffLimit
    assert parse_spec(defaulted) == parse_spec(raw)


def test_extra_keywords_refer_to_real_fields() -> None:
    for cls, name in crd.EXTRA:
        assert name in {f.name for f in dataclasses.fields(cls)}


def test_names_columns_and_status_subresource() -> None:
    version = crd.crd()["spec"]["versions"][0]
    names = crd.crd()["spec"]["names"]
    assert names["shortNames"] == ["mup"] and names["categories"] == ["inshape"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Champion": ".status.champion.version",
        "Metric": ".status.champion.metric",
        "Pending": ".status.pendingRecords",
        "Last": ".status.lastRun.outcome",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }


def _all_schemas(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        found += _all_schemas(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _all_schemas(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _all_schemas(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    """Every node has a type (or int-or-string); objects without properties preserve unknowns
    only where the spec has free-form dicts."""
    preserved = []
    for path, schema in _all_schemas(version_schema()):
        assert "type" in schema or schema.get("x-kubernetes-int-or-string"), path
        assert "additionalProperties" not in schema or "properties" not in schema, path
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            preserved.append(path)
    assert preserved == [".spec.model.params"]  # estimator kwargs: free-form by nature


# --- CEL rules: one per cross-field rule of spec._check_cross_fields -------------------------


def _mutated(change: Any) -> dict[str, Any]:
    raw = example_spec()
    change(raw)
    return raw


BOTH_CERT_AND_PATTERN = {"secretName": "ca", "certificate": "ca.crt", "pattern": "*.crt"}
MTLS = {
    "type": "tls",
    "certificateAndKey": {"secretName": "alice", "certificate": "user.crt", "key": "user.key"},
}
SCRAM = {
    "type": "scram-sha-512",
    "username": "alice",
    "passwordSecret": {"secretName": "alice", "password": "password"},
}

CROSS_FIELD_CASES = [
    # (what breaks it, the SpecError path, the object holding the rule, fieldPath, message)
    (
        lambda s: s["source"]["kafka"].update(strimziCluster="my-cluster"),
        "spec.source.kafka",
        "spec.source.kafka",
        None,
        "exactly one of bootstrapServers and strimziCluster must be set",
    ),
    (
        lambda s: s["source"]["kafka"].pop("bootstrapServers"),
        "spec.source.kafka",
        "spec.source.kafka",
        None,
        "exactly one of bootstrapServers and strimziCluster must be set",
    ),
    (
        lambda s: s["source"]["kafka"].update(label="px3"),
        "spec.source.kafka.label",
        "spec.source.kafka",
        ".label",
        "label must not also be listed as a feature",
    ),
    (
        lambda s: s["model"].update(strategy="retrain"),
        "spec.model.window",
        "spec.model",
        ".window",
        "window is required when strategy is retrain",
    ),
    (
        lambda s: s["evaluation"].update(minHoldout=500, maxHoldout=100),
        "spec.evaluation.minHoldout",
        "spec.evaluation",
        ".minHoldout",
        "minHoldout must not exceed maxHoldout",
    ),
    (
        lambda s: s["source"]["kafka"].update(tls={"trustedCertificates": [BOTH_CERT_AND_PATTERN]}),
        "spec.source.kafka.tls.trustedCertificates[0]",
        "spec.source.kafka.tls.trustedCertificates",
        None,
        "exactly one of certificate and pattern must be set",
    ),
    (
        lambda s: s["source"]["kafka"].update(tls={}, authentication={"type": "tls"}),
        "spec.source.kafka.authentication.certificateAndKey",
        "spec.source.kafka.authentication",
        ".certificateAndKey",
        "certificateAndKey is required when type is tls",
    ),
    (
        lambda s: s["source"]["kafka"].update(tls={}, authentication={**MTLS, "username": "a"}),
        "spec.source.kafka.authentication",
        "spec.source.kafka.authentication",
        None,
        "username and passwordSecret are for SASL types; tls uses certificateAndKey",
    ),
    (
        lambda s: s["source"]["kafka"].update(
            authentication={"type": "scram-sha-512", "username": "a"}
        ),
        "spec.source.kafka.authentication.passwordSecret",
        "spec.source.kafka.authentication",
        ".passwordSecret",
        "username and passwordSecret are required for SASL types",
    ),
    (
        lambda s: s["source"]["kafka"].update(
            authentication={**SCRAM, "certificateAndKey": MTLS["certificateAndKey"]}
        ),
        "spec.source.kafka.authentication.certificateAndKey",
        "spec.source.kafka.authentication",
        ".certificateAndKey",
        "certificateAndKey is for type tls; SASL types use passwordSecret",
    ),
    (
        lambda s: (
            s["source"]["kafka"].pop("bootstrapServers"),
            s["source"]["kafka"].update(
                strimziCluster="my-cluster", authentication={**SCRAM, "type": "scram-sha-256"}
            ),
        ),
        "spec.source.kafka.authentication.type",
        "spec.source.kafka",
        ".authentication.type",
        "Strimzi listeners authenticate with tls or scram-sha-512 only",
    ),
    (
        lambda s: s["source"]["kafka"].update(authentication=MTLS),
        "spec.source.kafka.tls",
        "spec.source.kafka",
        ".tls",
        "tls is required with authentication type tls (mutual TLS runs over TLS)",
    ),
    (
        lambda s: s["target"].update(env="LD_PRELOAD"),
        "spec.target.env",
        "spec.target",
        ".env",
        "env is reserved: it changes what the Deployment runs or trusts",
    ),
    (
        lambda s: s["source"]["kafka"].update(authentication={**SCRAM, "type": "plain"}),
        "spec.source.kafka.tls",
        "spec.source.kafka",
        ".tls",
        "tls is required with authentication type plain (it sends the password as is)",
    ),
    (
        lambda s: s["source"]["kafka"].update(deadLetterTopic=s["source"]["kafka"]["topic"]),
        "spec.source.kafka.deadLetterTopic",
        "spec.source.kafka",
        ".deadLetterTopic",
        "deadLetterTopic must differ from topic",
    ),
    (
        lambda s: s["evaluation"].update(floor=1.5),  # metric: accuracy (the default)
        "spec.evaluation.floor",
        "spec.evaluation",
        ".floor",
        "floor must be within [0, 1] for accuracy, f1_macro and roc_auc",
    ),
    (
        lambda s: s["evaluation"].update(metric="r2", floor=1.5),
        "spec.evaluation.floor",
        "spec.evaluation",
        ".floor",
        "floor must be at most 1 for r2",
    ),
    (
        lambda s: s["evaluation"].update(metric="rmse", floor=-0.1),
        "spec.evaluation.floor",
        "spec.evaluation",
        ".floor",
        "floor must be at least 0 for rmse and mae",
    ),
    (
        lambda s: s["trigger"].update(maxInterval="30s"),
        "spec.trigger.maxInterval",
        "spec.trigger",
        ".maxInterval",
        "maxInterval must be at least 1m",
    ),
    (
        lambda s: s["trigger"].update(maxInterval="3000d1000d"),
        "spec.trigger.maxInterval",
        "spec.trigger",
        ".maxInterval",
        "maxInterval must be at most 3650d",
    ),
    (
        lambda s: s.update(job={"resources": {"requests": {"cpus": "1"}}}),
        "spec.job.resources.requests",
        "spec.job.resources",
        ".requests",
        "requests "
        "may name only container resources: cpu, memory, ephemeral-storage, "
        "hugepages-<size> or domain-prefixed (example.com/gpu)",
    ),
    (
        lambda s: s.update(job={"resources": {"limits": {"gpu": 1}}}),
        "spec.job.resources.limits",
        "spec.job.resources",
        ".limits",
        "limits "
        "may name only container resources: cpu, memory, ephemeral-storage, "
        "hugepages-<size> or domain-prefixed (example.com/gpu)",
    ),
    (
        lambda s: s.update(
            job={"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}
        ),
        "spec.job.resources.limits",
        "spec.job.resources",
        ".limits",
        "limits must not be below requests for the same resource",
    ),
]


@pytest.mark.parametrize("case", CROSS_FIELD_CASES, ids=lambda c: c[4][:30])
def test_each_cross_field_rule_has_a_cel_rule(case: Any) -> None:
    change, error_path, holder, field_path, message = case
    with pytest.raises(SpecError) as caught:
        parse_spec(_mutated(change))
    assert caught.value.path == error_path
    rules = _object_at(holder).get("x-kubernetes-validations", [])
    matching = [r for r in rules if r["message"] == message]
    assert len(matching) == 1, f"no CEL rule at {holder} for {message!r}"
    assert matching[0].get("fieldPath") == field_path
    assert matching[0]["reason"] in (
        "FieldValueInvalid",
        "FieldValueRequired",
        "FieldValueForbidden",
    )


def test_cel_rules_fall_back_to_the_spec_defaults() -> None:
    """The rules hold before defaulting too: they name the same defaults as spec.py."""
    rules = {
        r["message"]: r["rule"]
        for _, s in _all_schemas(version_schema())
        for r in s.get("x-kubernetes-validations", [])
    }
    assert '"label"' in rules["label must not also be listed as a feature"]
    assert '"incremental"' in rules["window is required when strategy is retrain"]
    minmax = rules["minHoldout must not exceed maxHoldout"]
    defaults = spec_module.EvaluationSpec()
    assert f": {defaults.minHoldout})" in minmax and f": {defaults.maxHoldout})" in minmax
    floor = rules["floor must be within [0, 1] for accuracy, f1_macro and roc_auc"]
    assert f'(has(self.metric) ? self.metric : "{defaults.metric}")' in floor
    # One rule per case below; uniqueness of features is listType set, not a rule.
    assert set(rules) == {case[4] for case in CROSS_FIELD_CASES}


def test_unique_features_are_enforced_by_list_type_set() -> None:
    features = _schema_at("spec.source.kafka.features")
    assert features["x-kubernetes-list-type"] == "set"
    raw = _mutated(lambda s: s["source"]["kafka"]["features"].append("px1"))
    with pytest.raises(SpecError, match="unique"):
        parse_spec(raw)
    assert any("duplicate" in e for e in validate(_schema_at("spec"), raw, "spec"))


# --- (c) sample objects against the schema ---------------------------------------------------


def test_the_example_policy_is_valid() -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document.pop("metadata")  # the API server validates metadata itself
    assert validate(version_schema(), document) == []


def test_the_secured_example_is_valid_and_names_its_secret_only() -> None:
    user, document = yaml.safe_load_all(SECURED_EXAMPLE.read_text())
    policy = parse_policy(document)
    auth = policy.spec.source.kafka.authentication
    assert auth is not None and auth.passwordSecret is not None
    assert auth.passwordSecret.secretName == user["metadata"]["name"] == auth.username
    assert user["spec"]["authentication"]["type"] == auth.type
    document.pop("metadata")
    assert validate(version_schema(), document) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["trigger"].update(minNewRecords=0), "spec.trigger.minNewRecords: below"),
        (lambda s: s["trigger"].update(minNewRecords="10"), "must be integer"),
        (lambda s: s["evaluation"].update(metric="auc"), "not in"),
        (lambda s: s["evaluation"].update(holdoutFraction=0.95), "above maximum"),
        (lambda s: s["model"].update(estimator="os.system"), "does not match"),
        (lambda s: s["target"].update(deployment="other/ns"), "does not match"),
        (lambda s: s["trigger"].update(maxInterval="6 hours"), "does not match"),
        (lambda s: s["source"]["kafka"].update(topic="."), "topic: '.' does not match"),
        (lambda s: s["source"]["kafka"].update(topic="a" * 250), "topic: longer than 249"),
        (lambda s: s["trigger"].update(minNewRecords=10**10), "above maximum"),
        (lambda s: s["trigger"].update(schedule="every 5 minutes"), "does not match"),
        (lambda s: s["source"]["kafka"].update(features=[]), "fewer than 1"),
        (lambda s: s["source"]["kafka"].update(extra=True), "unknown field"),
        (lambda s: s["model"].update(classes=[0, 1.5]), "integer or a string"),
        (lambda s: s.pop("mlflow"), "spec.mlflow: required"),
    ],
)
def test_invalid_specs_are_refused(change: Any, expected: str) -> None:
    errors = validate(_schema_at("spec"), _mutated(change), "spec")
    assert any(expected in e for e in errors), errors


def test_free_form_fields_keep_what_they_are_given() -> None:
    raw = _mutated(lambda s: None)
    raw["model"]["params"] = {"nested": {"deep": [1, {"x": None}]}}
    assert validate(_schema_at("spec"), raw, "spec") == []
    assert parse_spec(raw).model.params == raw["model"]["params"]


def test_job_resources_are_typed_quantities() -> None:
    raw = _mutated(
        lambda s: s.update(
            job={"resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi", "cpu": 2}}}
        )
    )
    assert validate(_schema_at("spec"), raw, "spec") == []
    resources = parse_spec(raw).job.resources
    assert resources.to_container() == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "1Gi", "cpu": 2},
    }
    raw["job"]["resources"]["anything"] = [1]
    assert validate(_schema_at("spec"), raw, "spec") == [
        "spec.job.resources.anything: unknown field (would be pruned)"
    ]
    with pytest.raises(SpecError, match=r"^spec\.job\.resources\.anything: unknown field"):
        parse_spec(raw)


@pytest.mark.parametrize("value", ["1 GB", "-1Gi", -1, 0.5, "1Gi" * 30])
def test_a_malformed_quantity_is_refused_by_both(value: Any) -> None:
    path = "spec.job.resources.limits.memory"
    raw = _mutated(lambda s: s.update(job={"resources": {"limits": {"memory": value}}}))
    assert any(e.startswith(path) for e in validate(_schema_at("spec"), raw, "spec"))
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert caught.value.path == path


def test_quantity_pattern_reads_the_api_servers_quantities() -> None:
    quantity = spec_module.QUANTITY
    good = ["1", "500m", "1.5Gi", "1e9", "+.5", "0", "2E3", "1e-3", "100Ki", "1k", "3n"]
    bad = ["", "-1", "1 Gi", "1GB", "1.5.5", "Gi", "1e", "1ki", "1Gi\n"]
    assert [q for q in good if not re.fullmatch(quantity, q)] == []
    assert [q for q in bad if re.fullmatch(quantity, q)] == []


def test_every_integer_field_has_a_maximum() -> None:
    for path, cls in _dataclasses_from(PolicySpec):
        for f in dataclasses.fields(cls):
            if get_type_hints(cls)[f.name] is int:
                assert "maximum" in f.metadata["schema"], f"{path}.{f.name}"


def test_schema_and_parser_agree_on_samples() -> None:
    """What the schema accepts the parser accepts (cross-field rules aside), and vice versa."""
    samples = [
        _mutated(lambda s: None),
        _mutated(lambda s: s["trigger"].update(schedule="*/5 * * * 1-5")),
        _mutated(lambda s: s["trigger"].update(maxInterval="1h30m")),
        _mutated(lambda s: s["evaluation"].update(significance=0.00001)),
        _mutated(lambda s: s["source"]["kafka"].update(maxRecordBytes=8)),
        _mutated(lambda s: s.update(job={"backoffLimit": 11})),
        _mutated(lambda s: s["source"]["kafka"].update(topic="..")),
        _mutated(lambda s: s["source"]["kafka"].update(topic="...")),
        _mutated(lambda s: s["source"]["kafka"].update(deadLetterTopic="a b")),
        _mutated(lambda s: s["source"]["kafka"].update(maxRecordBytes=2**27)),
        _mutated(lambda s: s["trigger"].update(minNewRecords=2**31)),
        _mutated(lambda s: s["trigger"].update(maxInterval="1234567890s")),
        _mutated(lambda s: s["evaluation"].update(maxHoldout=10**8)),
        _mutated(lambda s: s.update(job={"activeDeadlineSeconds": 10**6})),
        _mutated(lambda s: s.update(job={"resources": {"limits": {"memory": "1Gi"}}})),
        _mutated(lambda s: s.update(job={"resources": {"limits": {"memory": "1 Gi"}}})),
    ]
    for raw in samples:
        schema_ok = validate(_schema_at("spec"), raw, "spec") == []
        try:
            parse_spec(raw)
            parser_ok = True
        except SpecError:
            parser_ok = False
        assert schema_ok == parser_ok, raw


def world(stored: PolicyStatus, finished: FinishedRun | None) -> World:
    document = yaml.safe_load(EXAMPLE.read_text())
    return World(
        now=NOW,
        policy=ObservedPolicy(
            ref=PolicyRef("ml", "digits", "uid-1"),
            generation=4,
            created=NOW,
            policy=parse_policy(document),
            spec_error=None,
            status=stored,
            stored_status=stored.to_wire(),
        ),
        finished=finished,
        kafka=KafkaView(connection=KafkaConnection("kafka:9092"), pending=3),
    )


def test_status_written_by_the_operator_is_not_pruned() -> None:
    """Every key status.py writes is in the status schema, with the right types."""
    result = decode(
        '{"outcome":"Promoted","reasons":["Improved"],"message":"better","runId":"r1",'
        '"runKey":"k","metric":"f1_macro","candidateScore":0.93,"championScore":0.9,'
        '"modelVersion":"7","modelUri":"models:/digits/7","records":{"read":10,"valid":9},'
        '"offsets":{"0":[0,10]}}'
    )
    assert result.outcome == "Promoted"
    finished = FinishedRun("digits-update-7", 7, "Lag", NOW, result)
    v6 = Champion(uri="models:/digits/6", version="6", metric=0.9)
    current = PolicyStatus(
        champion=v6,
        conditions=set_condition((), Condition("Ready", "True", "ChampionServing", "", NOW), NOW),
    )
    progress = Progress(
        spec_error=None,
        decision=Decision(False, "BelowThreshold", "3 of 2000", schedule_time=NOW),
        running_job=None,
        running_trigger=None,
        champion=champion_of(finished, NOW),
        previous=v6,
        rollout=Rollout(True, False, Problem("RolloutFailed", "forbidden")),
    )
    status, _ = desired_status(world(current, finished), progress)
    document = status.to_wire()
    assert {"champion", "previousChampion", "lastRun", "lastScheduleTime"} <= set(document)
    assert document["lastRun"]["offsets"] == {"0": {"start": 0, "end": 10}}
    assert validate(_schema_at("status"), document, "status") == []
    crashed = FinishedRun("digits-update-8", 8, "Lag", NOW, decode("boom"))
    failed, _ = desired_status(
        world(status, crashed),
        Progress(None, None, None, None, status.champion, status.previousChampion, Rollout()),
    )
    assert failed.lastRun is not None and failed.lastRun.outcome == "Failed"
    assert validate(_schema_at("status"), failed.to_wire(), "status") == []


def _status_classes(
    cls: type, schema: dict[str, Any], path: str = "status"
) -> list[tuple[str, type, dict[str, Any]]]:
    """Every status dataclass with its schema (through arrays and maps)."""
    found = [(path, cls, schema)]
    for f in dataclasses.fields(cls):
        prop = schema["properties"][f.name]
        for tp in (get_type_hints(cls)[f.name], *get_args(get_type_hints(cls)[f.name])):
            if dataclasses.is_dataclass(tp):
                node = prop.get("items") or prop.get("additionalProperties") or prop
                found += _status_classes(tp, node, f"{path}.{f.name}")  # type: ignore[arg-type]
    return found


def test_every_status_field_is_in_the_schema() -> None:
    walked = _status_classes(PolicyStatus, _schema_at("status"))
    assert {cls for _, cls, _ in walked} == {
        PolicyStatus,
        Condition,
        Champion,
        LastRun,
        RecordCounts,
        OffsetRange,
        KafkaStatus,
    }
    for path, cls, schema in walked:
        assert schema["type"] == "object", path
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(schema["properties"]) == set(fields), path
        required = [
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        assert schema.get("required", []) == required, path
        for name, f in fields.items():
            for key, value in (f.metadata.get("schema") or {}).items():
                assert schema["properties"][name][key] == value, f"{path}.{name}: {key}"


def test_the_status_schema_has_no_defaults() -> None:
    """Only the operator writes status: the API server must not fill anything in."""
    assert all("default" not in s for _, s in _all_schemas(_schema_at("status")))


def test_a_full_status_is_valid_and_an_old_offsets_shape_is_not() -> None:
    document = FULL_STATUS.to_wire()
    assert validate(_schema_at("status"), document, "status") == []
    assert PolicyStatus.from_wire(document) == FULL_STATUS
    document["lastRun"]["offsets"] = {"0": {"from": 0, "to": 10}}
    errors = validate(_schema_at("status"), document, "status")
    assert "status.lastRun.offsets.0.start: required" in errors
    assert "status.lastRun.offsets.0.from: unknown field (would be pruned)" in errors
    document["lastRun"]["records"] = {"read": 1, "bad": 2}
    assert "status.lastRun.records.bad: unknown field (would be pruned)" in validate(
        _schema_at("status"), document, "status"
    )
