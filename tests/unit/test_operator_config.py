"""Operator settings from the environment."""

from __future__ import annotations

import dataclasses
import json

import pytest

from inshape_operator.config import (
    SETTINGS,
    ConfigError,
    OperatorConfig,
    describe,
    load,
    undocumented,
)


def test_defaults() -> None:
    config = load({})
    assert config.job_image == "inshape:dev"
    assert config.job_ttl_seconds == 3600
    assert config.job_run_as_user == 65532
    assert config.namespaces == () and config.cluster_wide
    assert config.poll_seconds == 30.0
    assert config.metrics_port == 9090
    assert config.log_level == "INFO" and config.log_level_number == 20


def test_values_are_read() -> None:
    config = load(
        {
            "INSHAPE_JOB_IMAGE": "registry/inshape:1",
            "INSHAPE_NAMESPACES": "ml, prod ,",
            "INSHAPE_JOB_TTL_SECONDS": "0",
            "INSHAPE_JOB_RUN_AS_USER": "",
            "INSHAPE_POLL_SECONDS": "2.5",
            "INSHAPE_LOG_LEVEL": "debug",
        }
    )
    assert config.job_image == "registry/inshape:1"
    assert config.namespaces == ("ml", "prod") and not config.cluster_wide
    assert config.job_ttl_seconds == 0
    assert config.job_run_as_user is None
    assert config.poll_seconds == 2.5
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("INSHAPE_METRICS_PORT", "70000"),
        ("INSHAPE_METRICS_PORT", "http"),
        ("INSHAPE_JOB_TTL_SECONDS", "-1"),
        ("INSHAPE_POLL_SECONDS", "0"),
        ("INSHAPE_POLL_SECONDS", "nan"),
        ("INSHAPE_LOG_LEVEL", "LOUD"),
        ("INSHAPE_JOB_IMAGE_PULL_POLICY", "Sometimes"),
        ("INSHAPE_JOB_IMAGE", " "),
    ],
)
def test_bad_values_name_the_variable(env: str, value: str) -> None:
    with pytest.raises(ConfigError, match=env):
        load({env: value})


def test_every_field_is_documented_once() -> None:
    assert undocumented() == set()
    fields = [f.name for f in dataclasses.fields(OperatorConfig)]
    assert sorted(s.field for s in SETTINGS) == sorted(fields)
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    assert all(s.env.startswith("INSHAPE_") and s.doc for s in SETTINGS)
    table = describe()
    assert all(f"`{s.env}`" in table for s in SETTINGS)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load({}).job_image = "x"  # type: ignore[misc]


def test_job_pull_secrets_default_resources_and_log_format() -> None:
    defaults = load({})
    assert defaults.job_image_pull_secrets == ()
    assert defaults.job_default_resources == {}
    assert defaults.log_format == "text"
    config = load(
        {
            "INSHAPE_JOB_IMAGE_PULL_SECRETS": "regcred, mirror ,",
            "INSHAPE_JOB_DEFAULT_RESOURCES": json.dumps(
                {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": 2e9}}
            ),
            "INSHAPE_LOG_FORMAT": "JSON",
        }
    )
    assert config.job_image_pull_secrets == ("regcred", "mirror")
    assert config.job_default_resources == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2000000000.0"},
    }
    assert config.log_format == "json"


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"request": {"cpu": "1"}}',
        '{"requests": "1"}',
        '{"requests": {"cpu": "one"}}',
        '{"limits": {"memory": true}}',
    ],
)
def test_bad_default_resources_name_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="INSHAPE_JOB_DEFAULT_RESOURCES"):
        load({"INSHAPE_JOB_DEFAULT_RESOURCES": text})


def test_a_bad_log_format_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="INSHAPE_LOG_FORMAT"):
        load({"INSHAPE_LOG_FORMAT": "xml"})
