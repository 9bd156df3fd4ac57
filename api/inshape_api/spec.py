"""The ModelUpdatePolicy spec: one typed model, parsed and validated with errors naming the field.

The dataclasses below are the single source of truth for the API: the operator's CRD schema is
generated from the same field metadata (`describe`), so the Job, the operator and the CRD agree.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

import yaml

from inshape_api import cron_syntax
from inshape_api.names import API_GROUP, API_VERSION, KIND, POLICY_ENV

Strategy = Literal["incremental", "retrain"]
Metric = Literal["accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2"]
RecordFormat = Literal["json"]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A Secret's name (a DNS subdomain) and one of its keys, as the API server checks them.
SECRET_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
AuthenticationType = Literal["tls", "scram-sha-512", "scram-sha-256", "plain"]
SASL_TYPES: tuple[AuthenticationType, ...] = ("scram-sha-512", "scram-sha-256", "plain")
# What a Strimzi listener can ask of a client (its `authentication.type`); oauth and custom
# listeners are not served.
STRIMZI_TYPES: tuple[AuthenticationType, ...] = ("tls", "scram-sha-512")
# Authentication that needs TLS under it when the address is given directly.
CLEAR_TEXT_RISKS: dict[AuthenticationType, str] = {
    "tls": "mutual TLS runs over TLS",
    "plain": "it sends the password as is",
}
# A run interval: at most 9 digits per unit, so the sum of up to 8 units fits an int64 (CEL's int).
DURATION = r"^([0-9]{1,9}(s|m|h|d)){1,8}$"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL_SECONDS = 60  # the operator polls about once a minute: less would never hold
MAX_INTERVAL_SECONDS = 3650 * 86400  # ten years; far beyond any use, far from date overflow
# Kafka's legal topic names (1-249 of [a-zA-Z0-9._-], not "." or ".."), without look-ahead
# (RE2 has none): one non-dot, or dot + non-dot, or non-dot + any, or any three or more.
TOPIC = r"^(\.?[a-zA-Z0-9_-]|[a-zA-Z0-9_-][a-zA-Z0-9._-]|[a-zA-Z0-9._-]{3,})$"
TOPIC_MAX = 249
# A Kubernetes quantity as the API server reads one (resource.Quantity), without a minus: a
# container's requests and limits must not be negative.
QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Resource names a container may ask for: the built-in ones, or domain-prefixed (extended).
CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HUGEPAGES_PREFIX = "hugepages-"
# Metrics whose scores lie in [0, 1], and those whose scores are errors (never negative);
# r2 is at most 1 but may be negative.
UNIT_METRICS: tuple[str, ...] = ("accuracy", "f1_macro", "roc_auc")
ERROR_METRICS: tuple[str, ...] = ("rmse", "mae")
AT_MOST_ONE_METRICS: tuple[str, ...] = ("r2",)


class SpecError(ValueError):
    """A policy that can never work; the message starts with the offending field's path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def doc(text: str, mismatch: Callable[[str], str | None] | None = None, **schema: Any) -> Any:
    """Field metadata: a description plus OpenAPI keywords (minimum, pattern, ...). `mismatch`
    says why a value fails a pattern too long to quote in an error (None: quote the pattern)."""
    return {"description": text, "schema": schema, "mismatch": mismatch}


def _opt(text: str, **schema: Any) -> Any:
    return field(default=None, metadata=doc(text, **schema))


def duration_seconds(text: str) -> int:
    """Seconds of a DURATION (`90s`, `1h30m`, `2d`); units may repeat and add up."""
    return sum(int(n) * DURATION_UNITS[u] for n, u in re.findall(r"([0-9]+)([smhd])", text))


def topic_mismatch(value: str) -> str:
    return (
        f"{value!r} is not a Kafka topic name: 1-{TOPIC_MAX} of a-z, A-Z, 0-9, '.', '_', '-', "
        "and not '.' or '..'"
    )


def _topic(text: str) -> Any:
    return doc(text, mismatch=topic_mismatch, pattern=TOPIC, minLength=1, maxLength=TOPIC_MAX)


@dataclass(frozen=True)
class WindowSpec:
    maxRecords: int = field(  # noqa: N815 - API field names are camelCase
        default=200_000,
        metadata=doc("Most recent records a retrain refits on.", minimum=100, maximum=50_000_000),
    )


def _secret_name(text: str) -> Any:
    return field(metadata=doc(text, pattern=SECRET_NAME, maxLength=253))


def _secret_key(text: str) -> Any:
    return field(metadata=doc(text, pattern=SECRET_KEY, maxLength=253))


@dataclass(frozen=True)
class CertSecretSource:
    """A CA certificate (or several) in a Secret of the policy's namespace; Strimzi's shape."""

    secretName: str = _secret_name("Secret holding the certificate(s).")  # noqa: N815
    certificate: str | None = _opt(
        "Key of the PEM certificate in the Secret; exactly one of certificate and pattern.",
        pattern=SECRET_KEY,
        maxLength=253,
    )
    pattern: str | None = _opt(
        "Glob over the Secret's keys (e.g. *.crt): every match is trusted.",
        minLength=1,
        maxLength=253,
    )


@dataclass(frozen=True)
class KafkaTlsSpec:
    trustedCertificates: list[CertSecretSource] = field(  # noqa: N815
        default_factory=list,
        metadata=doc(
            "CA certificates the brokers' certificates must chain to; empty trusts the "
            "system's CAs, or with strimziCluster the cluster CA (<cluster>-cluster-ca-cert).",
            maxItems=16,
        ),
    )


@dataclass(frozen=True)
class PasswordSecretSource:
    secretName: str = _secret_name("Secret holding the password.")  # noqa: N815
    password: str = _secret_key("Key of the password in the Secret.")


@dataclass(frozen=True)
class CertAndKeySecretSource:
    secretName: str = _secret_name("Secret holding the client certificate and key.")  # noqa: N815
    certificate: str = _secret_key("Key of the PEM client certificate (e.g. user.crt).")
    key: str = _secret_key("Key of the PEM private key (e.g. user.key).")


@dataclass(frozen=True)
class KafkaAuthenticationSpec:
    """Who the Job and the operator are to Kafka; Strimzi's KafkaClientAuthentication shape."""

    type: AuthenticationType = field(
        metadata=doc("tls (mutual TLS) or a SASL mechanism over the connection.")
    )
    username: str | None = _opt("SASL user name (scram-*, plain).", minLength=1, maxLength=256)
    passwordSecret: PasswordSecretSource | None = _opt(  # noqa: N815
        "Where the SASL password is (scram-*, plain)."
    )
    certificateAndKey: CertAndKeySecretSource | None = _opt(  # noqa: N815
        "Where the client certificate and key are (tls)."
    )


@dataclass(frozen=True)
class KafkaSourceSpec:
    topic: str = field(metadata=_topic("Topic the records arrive on."))
    features: list[str] = field(
        metadata=doc("Names of the numeric JSON fields used as features, in order.", minItems=1)
    )
    bootstrapServers: str | None = _opt(  # noqa: N815
        "host:port[,host:port]; exactly one of bootstrapServers and strimziCluster.", minLength=1
    )
    strimziCluster: str | None = _opt(  # noqa: N815
        "Name of a Strimzi Kafka resource in the policy's namespace.", pattern=DNS_LABEL
    )
    consumerGroup: str | None = _opt(  # noqa: N815
        "Consumer group whose committed offsets mark what was trained on; "
        "default inshape-<namespace>-<name>.",
        minLength=1,
    )
    format: RecordFormat = field(default="json", metadata=doc("Record encoding."))
    label: str = field(default="label", metadata=doc("JSON field holding the label.", minLength=1))
    maxRecordBytes: int = field(  # noqa: N815
        default=65_536,
        metadata=doc(
            "Records larger than this are rejected as oversized (at most 64 MiB: Kafka's brokers "
            "refuse far smaller messages by default, and the Job holds a batch in memory).",
            minimum=16,
            maximum=64 * 1024 * 1024,
        ),
    )
    deadLetterTopic: str | None = field(  # noqa: N815
        default=None,
        metadata=_topic(
            "Topic rejected records are copied to, with the reason in a header; not the topic "
            "itself (the Job would read its own rejects back)."
        ),
    )
    tls: KafkaTlsSpec | None = _opt(
        "Connect over TLS (implied by a Strimzi listener with tls: true)."
    )
    authentication: KafkaAuthenticationSpec | None = _opt(
        "How to authenticate; none when absent. With strimziCluster, the listener whose "
        "authentication matches is used."
    )


@dataclass(frozen=True)
class SourceSpec:
    kafka: KafkaSourceSpec = field(metadata=doc("Kafka topic the training records come from."))


@dataclass(frozen=True)
class ModelSpec:
    name: str = field(
        metadata=doc("MLflow registered model name.", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )
    estimator: str = field(
        metadata=doc(
            "Dotted path of a scikit-learn estimator class.",
            pattern=r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        )
    )
    params: dict[str, Any] = field(
        default_factory=dict, metadata=doc("Keyword arguments for the estimator.")
    )
    strategy: Strategy = field(
        default="incremental",
        metadata=doc(
            "incremental: champion + partial_fit on new data; retrain: refit on a window."
        ),
    )
    window: WindowSpec | None = _opt("Bounded window for strategy retrain.")
    classes: list[int | str] | None = _opt(
        "All class labels a classifier may see; default: the champion's, else the first chunk's."
    )


@dataclass(frozen=True)
class TriggerSpec:
    minNewRecords: int = field(  # noqa: N815
        default=1000,
        metadata=doc(
            "Start a run when the group's lag reaches this (at most a billion: more would wait "
            "for ever on any real topic; use maxInterval or schedule for rare runs).",
            minimum=1,
            maximum=1_000_000_000,
        ),
    )
    schedule: str | None = _opt(
        "Cron expression that also starts runs, in UTC: minute hour day-of-month month "
        "day-of-week (*, */n, a, a-b, a-b/n, a/n, comma lists; jan-dec, sun-sat) or one of "
        + ", ".join(cron_syntax.MACROS)
        + ".",
        mismatch=cron_syntax.shape_problem,
        pattern=cron_syntax.PATTERN,
    )
    maxInterval: str | None = _opt(  # noqa: N815
        "Start a run when this long has passed since the last one, if any record is pending: "
        "units s, m, h, d, e.g. 90s, 1h30m, 2d; from 1m (the operator looks about once a minute) "
        "to 3650d.",
        pattern=DURATION,
        maxLength=80,
    )


@dataclass(frozen=True)
class EvaluationSpec:
    metric: Metric = field(default="accuracy", metadata=doc("Metric the gate compares."))
    holdoutFraction: float = field(  # noqa: N815
        default=0.2,
        metadata=doc("Share of new records held out for evaluation.", minimum=0.01, maximum=0.9),
    )
    maxHoldout: int = field(  # noqa: N815
        default=50_000,
        metadata=doc(
            "Cap on held-out records kept (a deterministic sample, held in memory: at most ten "
            "million).",
            minimum=10,
            maximum=10_000_000,
        ),
    )
    minHoldout: int = field(  # noqa: N815
        default=30,
        metadata=doc(
            "Fewer held-out records than this and the run is rejected; at most maxHoldout.",
            minimum=1,
            maximum=10_000_000,
        ),
    )
    minImprovement: float = field(  # noqa: N815
        default=0.0,
        metadata=doc("Absolute improvement the candidate must show over the champion.", minimum=0),
    )
    minRelativeImprovement: float = field(  # noqa: N815
        default=0.0,
        metadata=doc("Improvement relative to the champion's score.", minimum=0, maximum=10),
    )
    floor: float | None = _opt(
        "Worst acceptable candidate score (a minimum, or a maximum for rmse/mae): within [0, 1] "
        "for accuracy, f1_macro and roc_auc, at most 1 for r2, at least 0 for rmse and mae."
    )
    significance: float | None = _opt(
        "p-value the paired test (McNemar / paired bootstrap) must beat.",
        minimum=0.0001,
        maximum=0.5,
    )


# Env vars a policy may not set on a Deployment: they change what runs or whom it trusts
# (the loader, the interpreter, the CA store, proxies, MLflow's credentials), not the model.
RESERVED_ENV_NAMES: tuple[str, ...] = (
    "PATH",
    "HOME",
    "SHELL",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
RESERVED_ENV_PREFIXES: tuple[str, ...] = ("LD_", "DYLD_", "PYTHON", "SSL_", "MLFLOW_TRACKING_")


def reserved_env(name: str) -> bool:
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


@dataclass(frozen=True)
class TargetSpec:
    deployment: str = field(metadata=doc("Serving Deployment, same namespace.", pattern=DNS_LABEL))
    container: str | None = _opt("Container to patch; default the first.", pattern=DNS_LABEL)
    env: str = field(
        default="MODEL_URI",
        metadata=doc("Env var holding the model URI.", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    )


@dataclass(frozen=True)
class MlflowSpec:
    trackingUri: str = field(metadata=doc("MLflow tracking server URI.", minLength=1))  # noqa: N815
    experiment: str | None = _opt("Experiment name; default <namespace>-<name>.", minLength=1)
    credentialsSecret: str | None = _opt(  # noqa: N815
        "Secret in the policy's namespace with MLflow's own env names as keys: "
        "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; "
        "optionally ca.crt (the CA bundle of an https tracking server).",
        pattern=SECRET_NAME,
        maxLength=253,
    )


def _quantities(text: str) -> Any:
    """A map of resource name to quantity; 16 entries are more than a container has kinds of
    resources (and bound the CEL rule's cost)."""
    return _opt(
        text,
        maxProperties=16,
        additionalProperties={"pattern": QUANTITY, "minimum": 0, "maxLength": 64},
    )


@dataclass(frozen=True)
class ResourcesSpec:
    """The update Job container's resources (Kubernetes' ResourceRequirements without claims)."""

    requests: dict[str, int | str] | None = _quantities(
        "Resources the container is guaranteed: name -> quantity (cpu: 500m, memory: 1Gi)."
    )
    limits: dict[str, int | str] | None = _quantities(
        "Most the container may use: name -> quantity (memory: 2Gi)."
    )

    def to_container(self) -> dict[str, dict[str, int | str]]:
        """The container's `resources`, without unset maps."""
        return {name: dict(value) for name, value in to_dict(self).items()}


@dataclass(frozen=True)
class JobSpec:
    image: str | None = _opt("Image of the update Job; default the operator's.", minLength=1)
    activeDeadlineSeconds: int = field(  # noqa: N815
        default=1800,
        metadata=doc(
            "Deadline of one update Job (at most a week: a longer run blocks the next for that "
            "long).",
            minimum=30,
            maximum=7 * 86400,
        ),
    )
    backoffLimit: int = field(  # noqa: N815
        default=2, metadata=doc("Retries of a failed update Job.", minimum=0, maximum=10)
    )
    resources: ResourcesSpec = field(
        default_factory=ResourcesSpec, metadata=doc("Container resources of the update Job.")
    )


@dataclass(frozen=True)
class PolicySpec:
    source: SourceSpec = field(metadata=doc("Where new records come from."))
    model: ModelSpec = field(metadata=doc("What is trained and registered."))
    mlflow: MlflowSpec = field(metadata=doc("Where runs and models are tracked."))
    trigger: TriggerSpec = field(
        default_factory=TriggerSpec, metadata=doc("When an update run starts.")
    )
    evaluation: EvaluationSpec = field(
        default_factory=EvaluationSpec, metadata=doc("How candidate and champion are compared.")
    )
    target: TargetSpec | None = _opt("Serving Deployment whose model URI follows the champion.")
    job: JobSpec = field(default_factory=JobSpec, metadata=doc("Update Job settings."))
    suspend: bool = field(default=False, metadata=doc("Start no new runs while true."))


@dataclass(frozen=True)
class Policy:
    """A policy with the identity the spec's defaults derive from."""

    name: str
    namespace: str
    spec: PolicySpec

    @property
    def consumer_group(self) -> str:
        return self.spec.source.kafka.consumerGroup or f"inshape-{self.namespace}-{self.name}"

    @property
    def experiment(self) -> str:
        return self.spec.mlflow.experiment or f"{self.namespace}-{self.name}"


# ---------------------------------------------------------------------------------------------
# Parsing: a generic walk over the dataclasses, driven by their type hints and metadata.


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        return "list"
    if origin is dict:
        return "object"
    if dataclasses.is_dataclass(tp):
        return "object"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, str(tp))


def _check_bounds(
    path: str,
    value: Any,
    schema: dict[str, Any],
    mismatch: Callable[[str], str | None] | None = None,
) -> None:
    # Each keyword applies to the values of its JSON type only, as in OpenAPI (an int-or-string
    # quantity has a minimum for the int and a pattern for the string).
    if isinstance(value, int | float):
        _check_number(path, value, schema)
    elif isinstance(value, str):
        _check_string(path, value, schema, mismatch)
    elif isinstance(value, list):
        _check_list(path, value, schema)
    elif isinstance(value, dict):
        _check_map(path, value, schema)


def _check_number(path: str, value: float, schema: dict[str, Any]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise SpecError(path, f"must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise SpecError(path, f"must be <= {schema['maximum']}, got {value}")


def _check_string(
    path: str, value: str, schema: dict[str, Any], mismatch: Callable[[str], str | None] | None
) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise SpecError(path, f"must have at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SpecError(path, f"must have at most {schema['maxLength']} characters")
    # fullmatch: Python's $ also matches before a trailing newline, the CRD's (ECMA) $ does not.
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        why = mismatch(value) if mismatch else None
        raise SpecError(path, why or f"{value!r} does not match {schema['pattern']}")


def _check_list(path: str, value: list[Any], schema: dict[str, Any]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SpecError(path, f"must have at least {schema['minItems']} item(s)")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SpecError(path, f"must have at most {schema['maxItems']} item(s)")


def _check_map(path: str, value: dict[str, Any], schema: dict[str, Any]) -> None:
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise SpecError(path, f"must have at most {schema['maxProperties']} entries")
    for key, item in value.items():
        _check_bounds(f"{path}.{key}", item, schema.get("additionalProperties") or {})


def _convert(path: str, tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors = []
        for option in options:
            try:
                return _convert(path, option, value)
            except SpecError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise SpecError(path, f"must be {_type_name(tp)}, got {type(value).__name__}")
    if origin is Literal:
        if value not in get_args(tp):
            raise SpecError(path, f"must be {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(path, f"must be a list, got {type(value).__name__}")
        (item_type,) = get_args(tp)
        return [_convert(f"{path}[{i}]", item_type, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(path, f"must be an object, got {type(value).__name__}")
        item_type = get_args(tp)[1]
        if item_type is Any:  # free-form (estimator params)
            return dict(value)
        return {k: _convert(f"{path}.{k}", item_type, v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(path, typing.cast(type, tp), value)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"must be a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(path, f"must be a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan/.inf; JSON (and so the CRD) has neither
            raise SpecError(path, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported spec type {tp!r} at {path}")


def _build(path: str, cls: type, value: Any) -> Any:
    if not isinstance(value, dict):
        raise SpecError(path, f"must be an object, got {type(value).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise SpecError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}"
        if name not in value or value[name] is None:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise SpecError(sub, "is required")
            continue
        converted = _convert(sub, hints[name], value[name])
        if converted is not None and not dataclasses.is_dataclass(converted):
            _check_bounds(sub, converted, f.metadata.get("schema", {}), f.metadata.get("mismatch"))
        kwargs[name] = converted
    return cls(**kwargs)


def _check_cross_fields(spec: PolicySpec) -> None:
    """Rules that span fields; the CRD states the same ones as CEL (x-kubernetes-validations)."""
    kafka = spec.source.kafka
    if (kafka.bootstrapServers is None) == (kafka.strimziCluster is None):
        raise SpecError(
            "spec.source.kafka", "exactly one of bootstrapServers and strimziCluster must be set"
        )
    if kafka.label in kafka.features:
        raise SpecError("spec.source.kafka.label", f"{kafka.label!r} is also listed as a feature")
    if len(set(kafka.features)) != len(kafka.features):
        raise SpecError("spec.source.kafka.features", "names must be unique")
    _check_kafka_security(kafka)
    if spec.target is not None and reserved_env(spec.target.env):
        raise SpecError(
            "spec.target.env",
            f"{spec.target.env!r} is reserved: it changes what the Deployment runs or trusts",
        )
    if spec.model.strategy == "retrain" and spec.model.window is None:
        raise SpecError("spec.model.window", "is required when strategy is retrain")
    if kafka.deadLetterTopic is not None and kafka.deadLetterTopic == kafka.topic:
        raise SpecError(
            "spec.source.kafka.deadLetterTopic",
            "must differ from topic (the Job would read its own rejects back)",
        )
    ev = spec.evaluation
    if ev.minHoldout > ev.maxHoldout:
        raise SpecError("spec.evaluation.minHoldout", "must not exceed maxHoldout")
    _check_floor(ev)
    _check_interval(spec.trigger)
    _check_resource_names(spec.job.resources)
    _check_limits_not_below_requests(spec.job.resources)


def _check_floor(ev: EvaluationSpec) -> None:
    """A floor no score of the metric can reach (or every score meets) is a mistake."""
    where, floor = "spec.evaluation.floor", ev.floor
    if floor is None:
        return
    if ev.metric in UNIT_METRICS and not 0 <= floor <= 1:
        raise SpecError(where, f"must be within [0, 1] for metric {ev.metric}, got {floor}")
    if ev.metric in AT_MOST_ONE_METRICS and floor > 1:
        raise SpecError(where, f"must be at most 1 for metric {ev.metric}, got {floor}")
    if ev.metric in ERROR_METRICS and floor < 0:
        raise SpecError(where, f"must be at least 0 for metric {ev.metric}, got {floor}")


def _check_interval(trigger: TriggerSpec) -> None:
    if trigger.maxInterval is None:
        return
    seconds = duration_seconds(trigger.maxInterval)
    where = "spec.trigger.maxInterval"
    if seconds < MIN_INTERVAL_SECONDS:
        raise SpecError(where, f"must be at least 1m, got {trigger.maxInterval}")
    if seconds > MAX_INTERVAL_SECONDS:
        raise SpecError(where, f"must be at most 3650d, got {trigger.maxInterval}")


def resource_name_ok(name: str) -> bool:
    """A name a container's resources may carry (the API server refuses others in the Job)."""
    return name in CONTAINER_RESOURCES or name.startswith(HUGEPAGES_PREFIX) or "/" in name


def _check_resource_names(resources: ResourcesSpec) -> None:
    for which in ("requests", "limits"):
        for name in getattr(resources, which) or {}:
            if not resource_name_ok(name):
                raise SpecError(
                    f"spec.job.resources.{which}",
                    f"{name!r} is not a container resource (cpu, memory, ephemeral-storage, "
                    "hugepages-<size> or domain-prefixed, e.g. example.com/gpu)",
                )


def _check_limits_not_below_requests(resources: ResourcesSpec) -> None:
    """The API server refuses a container whose limit is below its request: at apply, not at
    the first Job."""
    if not resources.requests or not resources.limits:
        return
    # Kubernetes' own quantity arithmetic, imported only for a policy that sets both (0.4 s of
    # the update Job's start otherwise).
    from kubernetes.utils import quantity  # noqa: PLC0415

    parse_quantity = cast("Callable[[int | str], Decimal]", quantity.parse_quantity)

    for name, limit in resources.limits.items():
        request = resources.requests.get(name)
        if request is not None and parse_quantity(limit) < parse_quantity(request):
            raise SpecError(
                "spec.job.resources.limits",
                f"{name} limit {limit} is below its request {request}",
            )


def _check_kafka_security(kafka: KafkaSourceSpec) -> None:
    """Combinations of tls and authentication that can never connect (or would send a password
    in clear text); crd.RULES states them again as CEL."""
    where = "spec.source.kafka"
    for i, trusted in enumerate(kafka.tls.trustedCertificates if kafka.tls else ()):
        if (trusted.certificate is None) == (trusted.pattern is None):
            raise SpecError(
                f"{where}.tls.trustedCertificates[{i}]",
                "exactly one of certificate and pattern must be set",
            )
    auth = kafka.authentication
    if auth is None:
        return
    where = f"{where}.authentication"
    if auth.type == "tls":
        if auth.certificateAndKey is None:
            raise SpecError(f"{where}.certificateAndKey", "is required when type is tls")
        if auth.username is not None or auth.passwordSecret is not None:
            raise SpecError(
                where, "username and passwordSecret are for SASL types; tls uses certificateAndKey"
            )
    else:
        if auth.username is None or auth.passwordSecret is None:
            raise SpecError(
                f"{where}.passwordSecret",
                "username and passwordSecret are required for SASL types",
            )
        if auth.certificateAndKey is not None:
            raise SpecError(
                f"{where}.certificateAndKey", "is for type tls; SASL types use passwordSecret"
            )
    if kafka.strimziCluster is not None and auth.type not in STRIMZI_TYPES:
        raise SpecError(
            f"{where}.type", "Strimzi listeners authenticate with tls or scram-sha-512 only"
        )
    if kafka.bootstrapServers is not None and kafka.tls is None and auth.type in CLEAR_TEXT_RISKS:
        raise SpecError(
            "spec.source.kafka.tls",
            f"is required with authentication type {auth.type} ({CLEAR_TEXT_RISKS[auth.type]})",
        )


def parse_spec(raw: Any) -> PolicySpec:
    spec: PolicySpec = _build("spec", PolicySpec, raw)
    _check_cross_fields(spec)
    return spec


def parse_policy(document: Any) -> Policy:
    """Parse a whole ModelUpdatePolicy object (as `kubectl get mup x -o yaml` prints it)."""
    if not isinstance(document, dict):
        raise SpecError("(document)", "must be an object")
    if document.get("kind", KIND) != KIND:
        raise SpecError("kind", f"must be {KIND}, got {document.get('kind')!r}")
    meta = document.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not re.fullmatch(DNS_LABEL, name):
        raise SpecError("metadata.name", "is required and must be a DNS label")
    namespace = meta.get("namespace") or "default"
    if "spec" not in document:
        raise SpecError("spec", "is required")
    return Policy(name=name, namespace=namespace, spec=parse_spec(document["spec"]))


def load_policy(path: str | None = None, environ: dict[str, str] | None = None) -> Policy:
    """Read a policy from a YAML/JSON file, or from $INSHAPE_POLICY (what the operator sets)."""
    env = os.environ if environ is None else environ
    if path:
        text = Path(path).read_text()
    elif env.get(POLICY_ENV):
        text = env[POLICY_ENV]
    else:
        raise SpecError("(policy)", f"give --policy FILE or set ${POLICY_ENV}")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("(policy)", f"not valid YAML/JSON: {exc}") from exc
    return parse_policy(document)


def to_dict(value: Any) -> Any:
    """The spec as plain JSON-able data, without unset optional fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_dict(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, list):
        return [to_dict(v) for v in value]
    return value


def dumps_policy(policy: Policy) -> str:
    return json.dumps(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": policy.name, "namespace": policy.namespace},
            "spec": to_dict(policy.spec),
        },
        sort_keys=True,
    )
