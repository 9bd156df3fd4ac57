"""Which MLflow errors are refused credentials (MlflowUnauthorized) rather than an outage."""

from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
)

from inshape_jobs.tracking import unauthorized


@pytest.mark.parametrize("code", [UNAUTHENTICATED, PERMISSION_DENIED])
def test_401_and_403_are_unauthorized(code: int) -> None:
    assert unauthorized(MlflowException("refused", error_code=code))


def test_a_json_refusal_from_the_rest_store_is_unauthorized() -> None:
    assert unauthorized(RestException({"error_code": "PERMISSION_DENIED", "message": "no"}))


@pytest.mark.parametrize("code", [INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST])
def test_other_mlflow_errors_are_not(code: int) -> None:
    assert not unauthorized(MlflowException("boom", error_code=code))


@pytest.mark.parametrize(("status", "refused"), [(401, True), (403, True), (500, False)])
def test_an_artifact_upload_refused_by_the_proxy(status: int, refused: bool) -> None:
    response = requests.Response()
    response.status_code = status
    assert unauthorized(requests.HTTPError("upload", response=response)) is refused
    assert not unauthorized(ValueError("unrelated"))
