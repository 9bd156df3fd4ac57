"""Operator settings from the environment."""

from __future__ import annotations

import dataclasses

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
