"""Which MLflow 400 answers mean "not there" (a missing alias is one) and which are errors."""

from __future__ import annotations

import json

import pytest

from inshape_operator.mlflow_check import means_absent


def body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


@pytest.mark.parametrize(
    "answer",
    [
        # What MLflow 3 says of an alias that was never set (seen from `mlflow server`).
        body("INVALID_PARAMETER_VALUE", "Registered model alias champion not found."),
        body("RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found"),
    ],
)
def test_absent_things_are_none_not_errors(answer: bytes) -> None:
    assert means_absent(answer)


@pytest.mark.parametrize(
    "answer",
    [
        body("INVALID_PARAMETER_VALUE", "Invalid value 'x' for parameter 'alias'"),
        body("INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'"),
        body("BAD_REQUEST", "Registered model alias champion not found."),
        b"<html>400 Bad Request</html>",
        b'["not", "an", "object"]',
        b"",
    ],
)
def test_other_bad_requests_stay_errors(answer: bytes) -> None:
    assert not means_absent(answer)
