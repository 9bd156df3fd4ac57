"""MLflow I/O of the operator: cross-check a Promoted result, and move the champion alias back.

A termination message is only a claim: before the target is rolled, the MLflow run tagged
`inshape.run_key=<Job UID>` must exist with outcome Promoted, and the registered model's
`champion` alias must point at the result's version. Speaks MLflow's REST API directly (the
`mlflow` package is not imported: the operator stays small), with the policy's own credentials
on each request (see mlflow_credentials.py): never process-wide settings.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, cast

from inshape_api.names import CHAMPION_ALIAS, OUTCOME_TAG, RUN_KEY_TAG
from inshape_operator.mlflow_credentials import NO_CREDENTIALS, MlflowCredentials

_TIMEOUT = 10.0
_PROBE_TIMEOUT = 5.0  # every pass probes: a silent server must not hold a pass long
_NOT_FOUND = 404
_BAD_REQUEST = 400
_REFUSED = (401, 403)
# MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE, not 404.
_ALIAS_NOT_FOUND = re.compile(r"^Registered model alias \S+ not found")


def means_absent(error_body: bytes) -> bool:
    """Whether a 400 from MLflow says only that the thing asked for does not exist."""
    try:
        error = json.loads(error_body)
    except ValueError:
        return False
    if not isinstance(error, dict):
        return False
    code, message = error.get("error_code"), str(error.get("message", ""))
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and _ALIAS_NOT_FOUND.match(message) is not None
    )


class RegistryUnavailableError(Exception):
    """MLflow could not be asked (down, timeout, 5xx): try again later."""


class MlflowUnauthorizedError(Exception):
    """MLflow refused the credentials (401, 403): no retry helps until the Secret changes.
    The message names the Secret, never a value."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # CamelCase, when not ok
    message: str = ""


class Registry:
    """One MLflow tracking server, as one policy's credentials see it."""

    def __init__(self, tracking_uri: str, credentials: MlflowCredentials = NO_CREDENTIALS) -> None:
        self.base = tracking_uri.rstrip("/")
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"Registry({self.base!r}, {self.credentials!r})"

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        timeout: float = _TIMEOUT,
    ) -> dict[str, Any] | None:
        url = f"{self.base}/api/2.0/mlflow/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        authorization = self.credentials.authorization
        if authorization is not None:
            headers["Authorization"] = authorization
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        https = url.startswith("https:")
        context = self.credentials.tls_context() if https else None
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return cast(dict[str, Any], json.load(response))
        except urllib.error.HTTPError as exc:
            if exc.code in _REFUSED:
                raise MlflowUnauthorizedError(
                    f"MLflow {self.base} refused {self.credentials.describe()} "
                    f"({exc.code} on {method} {path})",
                    exc.code,
                ) from None
            if exc.code == _NOT_FOUND:
                return None
            if exc.code == _BAD_REQUEST and means_absent(exc.read(2000)):
                return None
            raise RegistryUnavailableError(f"MLflow {self.base}: {method} {path}: {exc}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryUnavailableError(f"MLflow {self.base}: {method} {path}: {exc}") from exc

    def probe(self, model: str) -> None:
        """One cheap authenticated read (the registered model, absent or not): raises
        MlflowUnauthorizedError when the credentials are refused."""
        self._call("GET", "registered-models/get", {"name": model}, timeout=_PROBE_TIMEOUT)

    def find_run(self, experiment: str, run_key: str) -> dict[str, str] | None:
        """The tags of the run tagged with run_key, or None."""
        found = self._call("GET", "experiments/get-by-name", {"experiment_name": experiment})
        if not found:
            return None
        experiment_id = found["experiment"]["experiment_id"]
        runs = self._call(
            "POST",
            "runs/search",
            body={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                "max_results": 1,
            },
        )
        items = (runs or {}).get("runs") or []
        if not items:
            return None
        tags = (items[0].get("data") or {}).get("tags") or []
        return {str(t["key"]): str(t.get("value", "")) for t in tags}

    def champion_version(self, model: str) -> str | None:
        found = self._call(
            "GET", "registered-models/alias", {"name": model, "alias": CHAMPION_ALIAS}
        )
        version = ((found or {}).get("model_version") or {}).get("version")
        return str(version) if version is not None else None

    def set_champion(self, model: str, version: str) -> None:
        self._call(
            "POST",
            "registered-models/alias",
            body={"name": model, "alias": CHAMPION_ALIAS, "version": version},
        )


def verify(
    registry: Registry, experiment: str, model: str, run_key: str, version: str | None
) -> Verdict:
    """Whether MLflow agrees that run `run_key` promoted `version` of `model`."""
    tags = registry.find_run(experiment, run_key)
    if tags is None:
        return Verdict(False, "RunNotInRegistry", f"no MLflow run tagged {RUN_KEY_TAG}={run_key}")
    if tags.get(OUTCOME_TAG) != "Promoted":
        return Verdict(
            False,
            "RegistryDisagrees",
            f"MLflow run {run_key} has {OUTCOME_TAG}={tags.get(OUTCOME_TAG)!r}, not Promoted",
        )
    champion = registry.champion_version(model)
    if champion != version:
        return Verdict(
            False,
            "ChampionAliasMismatch",
            f"alias {CHAMPION_ALIAS!r} of {model} points at version {champion}, not {version}",
        )
    return Verdict(True)
