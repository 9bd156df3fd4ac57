"""Every setting of the operator, documented once, read from the environment.

`SETTINGS` is the table: environment variable, default, and what it does. The chart sets these
as container env; `python -m inshape_operator.config` prints the table (for docs and values).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """An environment setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    default: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "INSHAPE_JOB_IMAGE",
        "job_image",
        "inshape:dev",
        "Image of update Jobs whose policy sets no spec.job.image (normally the operator's own).",
    ),
    Setting(
        "INSHAPE_JOB_IMAGE_PULL_POLICY",
        "job_image_pull_policy",
        "IfNotPresent",
        "imagePullPolicy of update Jobs: Always, IfNotPresent or Never.",
    ),
    Setting(
        "INSHAPE_JOB_TTL_SECONDS",
        "job_ttl_seconds",
        "3600",
        "ttlSecondsAfterFinished of update Jobs: how long a finished Job and its logs stay.",
    ),
    Setting(
        "INSHAPE_JOB_RUN_AS_USER",
        "job_run_as_user",
        "65532",
        "runAsUser/runAsGroup of update Job pods; empty keeps the image's user.",
    ),
    Setting(
        "INSHAPE_JOB_IMAGES_ALLOWED",
        "job_images_allowed",
        "",
        "Comma-separated images a policy's spec.job.image may name besides INSHAPE_JOB_IMAGE; "
        "empty allows that one only (a policy author does not pick the code the operator runs).",
    ),
    Setting(
        "INSHAPE_JOB_IMAGE_PULL_SECRETS",
        "job_image_pull_secrets",
        "",
        "Comma-separated Secret names put in update Job pods' imagePullSecrets (each must exist"
        " in the policy's namespace).",
    ),
    Setting(
        "INSHAPE_JOB_DEFAULT_RESOURCES",
        "job_default_resources",
        "",
        'Container resources (JSON, e.g. {"requests": {"cpu": "500m"}}) of update Jobs whose'
        " policy sets no spec.job.resources; empty sets none.",
    ),
    Setting(
        "INSHAPE_NAMESPACES",
        "namespaces",
        "",
        "Comma-separated namespaces to watch; empty watches the whole cluster.",
    ),
    Setting(
        "INSHAPE_POLL_SECONDS",
        "poll_seconds",
        "30",
        "How often each policy is re-evaluated (lag read, triggers, status).",
    ),
    Setting(
        "INSHAPE_FAILURE_BACKOFF_SECONDS",
        "failure_backoff_seconds",
        "300",
        "After a Failed run, how long before a new run may start.",
    ),
    Setting(
        "INSHAPE_METRICS_PORT",
        "metrics_port",
        "9090",
        "Port of the Prometheus /metrics endpoint.",
    ),
    Setting(
        "INSHAPE_HEALTH_PORT",
        "health_port",
        "8080",
        "Port of the liveness endpoint (/healthz).",
    ),
    Setting(
        "INSHAPE_LOG_LEVEL",
        "log_level",
        "INFO",
        "Log level: DEBUG, INFO, WARNING or ERROR.",
    ),
    Setting(
        "INSHAPE_LOG_FORMAT",
        "log_format",
        "text",
        "Log format: text (Kopf's lines) or json (one object per line: time, level, logger,"
        " message, and the handled object).",
    ),
)

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")
_RESOURCE_KEYS = ("requests", "limits")
# A Kubernetes quantity: 500m, 1.5, 2Gi, 1e3.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+|[KMGTPE]i?|[numk])?$")

# Container resources: {"requests"|"limits": {resource name: quantity}}.
Resources = dict[str, dict[str, str]]


@dataclass(frozen=True)
class OperatorConfig:
    job_image: str
    job_image_pull_policy: str
    job_ttl_seconds: int
    job_run_as_user: int | None
    job_images_allowed: tuple[str, ...]
    job_image_pull_secrets: tuple[str, ...]
    job_default_resources: Resources = field(hash=False)
    namespaces: tuple[str, ...]
    poll_seconds: float
    failure_backoff_seconds: float
    metrics_port: int
    health_port: int
    log_level: str
    log_format: str

    def image_allowed(self, image: str) -> bool:
        return image == self.job_image or image in self.job_images_allowed

    @property
    def cluster_wide(self) -> bool:
        return not self.namespaces

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))


def _int(env: str, text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{env}={text!r}: not an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{env}={value}: must be {bound}")
    return value


def _number(env: str, text: str, low: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{env}={text!r}: not a number") from None
    if not value >= low:
        raise ConfigError(f"{env}={value}: must be >= {low}")
    return value


def _choice(env: str, text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise ConfigError(f"{env}={text!r}: must be one of {', '.join(choices)}")
    return text


def _names(env: str, text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _resources(env: str, text: str) -> Resources:
    """`{"requests": {...}, "limits": {...}}` of quantities (strings or numbers); "" is {}."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{env}: not JSON ({exc})") from None
    if not isinstance(value, dict) or not set(value) <= set(_RESOURCE_KEYS):
        raise ConfigError(f"{env}: must be an object of {' and/or '.join(_RESOURCE_KEYS)}")
    out: Resources = {}
    for key, amounts in value.items():
        if not isinstance(amounts, dict):
            raise ConfigError(f"{env}: {key} must be an object of quantities")
        out[key] = {}
        for name, amount in amounts.items():
            quantity = str(amount)
            if isinstance(amount, bool) or not _QUANTITY.match(quantity):
                raise ConfigError(f"{env}: {key}.{name}={amount!r} is not a quantity")
            out[key][name] = quantity
    return {k: v for k, v in out.items() if v}


def _nonempty(env: str, text: str) -> str:
    if not text.strip():
        raise ConfigError(f"{env}: must not be empty")
    return text.strip()


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "job_image": _nonempty,
    "job_image_pull_policy": lambda env, text: _choice(env, text, _PULL_POLICIES),
    "job_ttl_seconds": lambda env, text: _int(env, text, 0),
    "job_run_as_user": lambda env, text: _int(env, text, 1) if text.strip() else None,
    "job_images_allowed": _names,
    "job_image_pull_secrets": _names,
    "job_default_resources": _resources,
    "namespaces": _names,
    "poll_seconds": lambda env, text: _number(env, text, 1),
    "failure_backoff_seconds": lambda env, text: _number(env, text, 0),
    "metrics_port": lambda env, text: _int(env, text, 1, 65535),
    "health_port": lambda env, text: _int(env, text, 1, 65535),
    "log_level": lambda env, text: _choice(env, text.upper(), _LOG_LEVELS),
    "log_format": lambda env, text: _choice(env, text.lower(), _LOG_FORMATS),
}


def load(environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """Every setting from the environment (default os.environ); ConfigError names a bad one."""
    env = os.environ if environ is None else environ
    values = {s.field: _PARSERS[s.field](s.env, env.get(s.env, s.default)) for s in SETTINGS}
    return OperatorConfig(**values)


def describe() -> str:
    """The settings table in Markdown."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{s.env}` | `{s.default}` | {s.doc} |" for s in SETTINGS]
    return "\n".join(lines)


def undocumented() -> set[str]:
    """Fields of OperatorConfig the SETTINGS table and the parsers do not both cover (a unit
    test keeps this empty)."""
    fields = {f.name for f in dataclasses.fields(OperatorConfig)}
    documented = {s.field for s in SETTINGS}
    return (fields ^ documented) | (documented ^ set(_PARSERS))


if __name__ == "__main__":
    print(describe())
