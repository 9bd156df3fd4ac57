"""The operator's MLflow credentials from a Secret's data: pure, values never shown."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from inshape_api.mlflow_access import CERT_PATH_ENV, drop_absent_ca
from inshape_operator.kafka_credentials import CredentialsError
from inshape_operator.mlflow_check import Registry
from inshape_operator.mlflow_credentials import NO_CREDENTIALS, credentials, read_credentials

SECRET_VALUE = "s3cr3t-Pa55word"


def test_user_and_password_give_basic_auth_as_mlflow_builds_it() -> None:
    found = credentials(
        "mlf", {"MLFLOW_TRACKING_USERNAME": b"alice", "MLFLOW_TRACKING_PASSWORD": b"pw"}
    )
    assert found.authorization == "Basic " + base64.b64encode(b"alice:pw").decode()


def test_a_token_gives_a_bearer_header_and_user_and_password_win_over_it() -> None:
    assert credentials("mlf", {"MLFLOW_TRACKING_TOKEN": b"t0k"}).authorization == "Bearer t0k"
    both = credentials(
        "mlf",
        {
            "MLFLOW_TRACKING_TOKEN": b"t0k",
            "MLFLOW_TRACKING_USERNAME": b"a",
            "MLFLOW_TRACKING_PASSWORD": b"b",
        },
    )
    assert both.authorization is not None and both.authorization.startswith("Basic ")


def test_only_the_named_keys_are_taken_and_a_ca_alone_is_enough() -> None:
    found = credentials("mlf", {"ca.crt": b"PEM", "other": b"ignored"})
    assert (found.authorization, found.ca_pem) == (None, "PEM")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (None, "Secret mlf does not exist"),
        ({"MLFLOW_TRACKING_USERNAME": b"alice"}, "no key 'MLFLOW_TRACKING_PASSWORD'"),
        ({"unrelated": b"x"}, "has none of"),
        ({"MLFLOW_TRACKING_TOKEN": b"\xff"}, "is not text"),
    ],
)
def test_a_missing_or_unusable_secret_is_named(data: dict[str, bytes] | None, says: str) -> None:
    with pytest.raises(CredentialsError, match=says) as caught:
        credentials("mlf", data)
    assert caught.value.secret == "mlf"


def test_no_secret_no_credentials_and_no_read() -> None:
    def never(name: str) -> None:
        raise AssertionError(f"read {name}")

    assert read_credentials(never, None) == NO_CREDENTIALS
    assert credentials(None, None) == NO_CREDENTIALS


def test_values_never_reach_a_repr_or_a_message() -> None:
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    secret = {"data": {"MLFLOW_TRACKING_USERNAME": "YWxpY2U=", "MLFLOW_TRACKING_PASSWORD": encoded}}
    found = read_credentials(lambda name: secret if name == "mlf" else None, "mlf")
    assert found.password == SECRET_VALUE
    registry = Registry("http://mlflow:5000", found)
    for text in (repr(found), repr(registry), found.describe()):
        assert SECRET_VALUE not in text and "alice" not in text
    assert "mlf" in found.describe()


def test_an_absent_ca_bundle_leaves_mlflow_on_the_systems_cas(tmp_path: Path) -> None:
    env = {CERT_PATH_ENV: "/etc/inshape/mlflow/ca.crt"}
    drop_absent_ca(env, tmp_path)
    assert CERT_PATH_ENV not in env
    (tmp_path / "etc/inshape/mlflow").mkdir(parents=True)
    (tmp_path / "etc/inshape/mlflow/ca.crt").write_text("PEM")
    env = {CERT_PATH_ENV: "/etc/inshape/mlflow/ca.crt"}
    drop_absent_ca(env, tmp_path)
    assert env[CERT_PATH_ENV] == "/etc/inshape/mlflow/ca.crt"
    own = {CERT_PATH_ENV: "/elsewhere/ca.pem"}  # set by hand: not ours to drop
    drop_absent_ca(own, tmp_path)
    assert own == {CERT_PATH_ENV: "/elsewhere/ca.pem"}
