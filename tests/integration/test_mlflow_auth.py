"""MLflow behind its basic-auth app: the Job's credentials (MLflow's own env names, as the Job's
secretKeyRefs give them) and the operator's own (read from the Secret, carried per Registry),
right and wrong, against a real `mlflow server --app-name basic-auth`."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

from inshape_api.result import MLFLOW_SECRET_MISSING, MLFLOW_UNAUTHORIZED, decode
from inshape_api.spec import Policy
from inshape_hack.kafka import KafkaBroker
from inshape_hack.mlflow_server import MlflowServer, MlflowUser, new_user
from inshape_operator.kube import Kube
from inshape_operator.lag import LagReader
from inshape_operator.mlflow_check import MlflowUnauthorizedError, Registry, verify
from inshape_operator.mlflow_credentials import MlflowCredentials, read_credentials
from inshape_operator.observe import Readers, mlflow_view
from tests.integration.helpers import committed, digits_policy, fill, update_cli

pytestmark = pytest.mark.integration

SECRET = "mlflow-creds"


def secret_of(user: MlflowUser) -> dict[str, Any]:
    """The Secret object the API server would return for `user` (base64 data)."""
    data = {"MLFLOW_TRACKING_USERNAME": user.name, "MLFLOW_TRACKING_PASSWORD": user.password}
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def credentials_of(user: MlflowUser) -> MlflowCredentials:
    return read_credentials(lambda name: secret_of(user), SECRET)


def wrong(user: MlflowUser) -> MlflowUser:
    return MlflowUser(user.name, user.password + "-wrong")


@pytest.fixture
def policy(kafka_broker: KafkaBroker, mlflow_auth_server: MlflowServer, unique_name: str) -> Policy:
    return digits_policy(
        unique_name,
        kafka_broker.bootstrap_servers,
        mlflow_auth_server.tracking_uri,
        {"mlflow": {"credentialsSecret": SECRET}},
    )


def admin(server: MlflowServer) -> MlflowUser:
    assert server.admin is not None
    return server.admin


def test_a_run_with_the_right_credentials_logs_registers_and_the_operator_agrees(
    policy: Policy, mlflow_auth_server: MlflowServer, tmp_path: Path
) -> None:
    fill(policy, 800)
    log = tmp_path / "termination-log"
    user = admin(mlflow_auth_server)
    proc = update_cli(policy, "auth-1", INSHAPE_TERMINATION_LOG=str(log), **user.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = decode(log.read_text())
    assert (result.outcome, result.modelVersion) == ("Promoted", "1"), result.message
    assert sum(committed(policy).values()) == 800
    assert user.password not in proc.stdout + proc.stderr

    registry = Registry(policy.spec.mlflow.trackingUri, credentials_of(user))
    assert verify(registry, policy.experiment, policy.spec.model.name, "auth-1", "1").ok
    registry.set_champion(policy.spec.model.name, "1")  # a rollback's alias move

    refused = Registry(policy.spec.mlflow.trackingUri, credentials_of(wrong(user)))
    with pytest.raises(MlflowUnauthorizedError, match=f"Secret {SECRET}") as caught:
        verify(refused, policy.experiment, policy.spec.model.name, "auth-1", "1")
    assert caught.value.status == 401
    assert user.password not in str(caught.value)
    anonymous = Registry(policy.spec.mlflow.trackingUri)
    with pytest.raises(MlflowUnauthorizedError, match="credentialsSecret is not set"):
        anonymous.champion_version(policy.spec.model.name)


def test_a_wrong_password_fails_the_run_as_unauthorized_and_commits_nothing(
    policy: Policy, mlflow_auth_server: MlflowServer, tmp_path: Path
) -> None:
    fill(policy, 500)
    log = tmp_path / "termination-log"
    bad = wrong(admin(mlflow_auth_server))
    proc = update_cli(policy, "auth-bad", INSHAPE_TERMINATION_LOG=str(log), **bad.env())
    assert proc.returncode != 0
    result = decode(log.read_text())
    assert (result.outcome, result.reasons) == ("Failed", (MLFLOW_UNAUTHORIZED,))
    assert f"Secret {SECRET}" in result.message and bad.password not in result.message
    assert bad.password not in proc.stdout + proc.stderr
    assert committed(policy) == {}


def test_a_read_only_user_may_verify_but_not_move_the_alias(
    mlflow_auth_server: MlflowServer, unique_name: str
) -> None:
    reader = new_user(f"reader-{unique_name}")
    mlflow_auth_server.create_user(reader)  # default_permission READ
    owner = Registry(mlflow_auth_server.tracking_uri, credentials_of(admin(mlflow_auth_server)))
    model = f"{unique_name}-model"
    owner._call("POST", "registered-models/create", body={"name": model})
    registry = Registry(mlflow_auth_server.tracking_uri, credentials_of(reader))
    registry.probe(model)  # reading is allowed
    with pytest.raises(MlflowUnauthorizedError) as caught:
        registry.set_champion(model, "1")
    assert caught.value.status == 403


def test_two_credential_sets_used_concurrently_do_not_mix(
    mlflow_auth_server: MlflowServer, unique_name: str
) -> None:
    right = Registry(mlflow_auth_server.tracking_uri, credentials_of(admin(mlflow_auth_server)))
    refused = Registry(
        mlflow_auth_server.tracking_uri, credentials_of(wrong(admin(mlflow_auth_server)))
    )
    # Few threads: each request costs the 2-worker server a PBKDF2 hash on 2 shared cores.
    start = threading.Barrier(4)

    def ask(registry: Registry) -> str:
        start.wait(timeout=30)  # all threads in flight at once
        outcomes = []
        for _ in range(3):
            try:
                registry.find_run(f"{unique_name}-none", "key")
                outcomes.append("ok")
            except MlflowUnauthorizedError:
                outcomes.append("refused")
        return ",".join(sorted(set(outcomes)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(ask, [right, refused] * 2))
    assert answers == ["ok", "refused"] * 2


@dataclass
class SecretsOnly:
    """The one read mlflow_view makes of the API server: Secrets by name."""

    secrets: dict[str, dict[str, Any]]

    forbidden: bool = False

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        return self.secrets.get(name)


def test_the_operators_view_of_mlflow_per_policy(
    policy: Policy, mlflow_auth_server: MlflowServer
) -> None:
    def view(secrets: dict[str, dict[str, Any]], forbidden: bool = False) -> Any:
        kube = cast(Kube, SecretsOnly(secrets, forbidden))
        readers = Readers(kube=kube, lags=cast(LagReader, None))
        return mlflow_view(readers, policy)

    user = admin(mlflow_auth_server)
    good = view({SECRET: secret_of(user)})
    assert good.problem is None and not good.runs_blocked
    refused = view({SECRET: secret_of(wrong(user))})
    assert refused.problem is not None and refused.problem.reason == MLFLOW_UNAUTHORIZED
    assert SECRET in refused.problem.message and user.password not in refused.problem.message
    missing = view({})
    assert missing.problem is not None and missing.problem.reason == MLFLOW_SECRET_MISSING
    assert missing.runs_blocked
    denied = view({SECRET: secret_of(user)}, forbidden=True)
    assert denied.problem is not None and denied.problem.reason == MLFLOW_SECRET_MISSING
    assert "may not get Secret mlflow-creds" in denied.problem.message
