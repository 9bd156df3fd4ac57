"""The operator's own MLflow credentials for one policy: spec.mlflow.credentialsSecret, read
through the API by name (the operator mounts nothing and never touches process env).

Each policy's `Registry` carries its own `MlflowCredentials`: policies reconcile concurrently on
a thread pool, so MLflow's process-wide env vars (MLFLOW_TRACKING_*) would leak one policy's
credentials into another's calls. Only MLflow's named keys are taken; values never reach a log,
a repr or a condition: errors name the Secret and the key, nothing more.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inshape_api.mlflow_access import CA_KEY, PASSWORD_KEY, TOKEN_KEY, USERNAME_KEY
from inshape_operator.kafka_credentials import CredentialsError, SecretData, decode_secret


@dataclass(frozen=True)
class MlflowCredentials:
    """Who the operator is to one tracking server; nothing when `secret` is None."""

    secret: str | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)

    @property
    def authorization(self) -> str | None:
        """The Authorization header, as MLflow's client builds it: basic auth when both user
        and password are set, else the bearer token."""
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if self.token:
            return f"Bearer {self.token}"
        return None

    def tls_context(self) -> ssl.SSLContext:
        """Verifies the server against the Secret's CA bundle, else the system's CAs."""
        if self.ca_pem:
            return ssl.create_default_context(cadata=self.ca_pem)
        return ssl.create_default_context()

    def describe(self) -> str:
        """Which credentials, for a message: the Secret's name only."""
        if self.secret is None:
            return "no credentials (spec.mlflow.credentialsSecret is not set)"
        return f"the credentials of Secret {self.secret}"


NO_CREDENTIALS = MlflowCredentials()


def _text(name: str, data: SecretData, key: str) -> str | None:
    if key not in data:
        return None
    try:
        return data[key].decode()
    except UnicodeDecodeError:
        raise CredentialsError(name, f"Secret {name} key {key!r} is not text") from None


def credentials(name: str | None, data: SecretData | None) -> MlflowCredentials:
    """The credentials in Secret `name`'s decoded data (None: the Secret is absent). Pure."""
    if name is None:
        return NO_CREDENTIALS
    if data is None:
        raise CredentialsError(name, f"Secret {name} does not exist")
    found = MlflowCredentials(
        secret=name,
        token=_text(name, data, TOKEN_KEY),
        username=_text(name, data, USERNAME_KEY),
        password=_text(name, data, PASSWORD_KEY),
        ca_pem=_text(name, data, CA_KEY),
    )
    if (found.username is None) != (found.password is None):
        missing = USERNAME_KEY if found.username is None else PASSWORD_KEY
        raise CredentialsError(name, f"Secret {name} has no key {missing!r}")
    if found.authorization is None and found.ca_pem is None:
        raise CredentialsError(
            name,
            f"Secret {name} has none of {TOKEN_KEY!r}, {USERNAME_KEY!r}/{PASSWORD_KEY!r}, "
            f"{CA_KEY!r}",
        )
    return found


def read_credentials(
    get_secret: Callable[[str], Mapping[str, Any] | None], name: str | None
) -> MlflowCredentials:
    """`credentials` with the Secret read through `get_secret` (in the policy's namespace)."""
    if name is None:
        return NO_CREDENTIALS
    secret = get_secret(name)
    return credentials(name, None if secret is None else decode_secret(secret))
