"""How the update Job gets the credentials of `spec.mlflow.credentialsSecret`, by name only.

The Secret's keys are MLflow's own env names, so each becomes the env var of the same name from
a ``secretKeyRef`` and MLflow's client reads it as it would anywhere. Every reference is
optional: a token Secret has no user name, a user/password Secret no token, and a Secret
without a CA bundle mounts an empty folder (the Job then drops ``CERT_PATH_ENV``: see
``drop_absent_ca``). No value passes through the Job's spec.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from inshape_api.kafka_connection import SecretMount

TOKEN_KEY = "MLFLOW_TRACKING_TOKEN"
USERNAME_KEY = "MLFLOW_TRACKING_USERNAME"
PASSWORD_KEY = "MLFLOW_TRACKING_PASSWORD"
CREDENTIAL_KEYS = (TOKEN_KEY, USERNAME_KEY, PASSWORD_KEY)
CA_KEY = "ca.crt"
CERT_PATH_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
MOUNT_DIR = "/etc/inshape/mlflow"
CA_PATH = f"{MOUNT_DIR}/{CA_KEY}"
VOLUME = "mlflow-credentials"


@dataclass(frozen=True)
class SecretKeyEnv:
    """One env var of the Job from one key of a Secret (optional: absent keys are skipped)."""

    name: str
    secret: str
    key: str


def secret_env(secret: str | None) -> tuple[SecretKeyEnv, ...]:
    """The credential env vars of the Job for `secret` (pure); none without a Secret."""
    if secret is None:
        return ()
    return tuple(SecretKeyEnv(key, secret, key) for key in CREDENTIAL_KEYS)


def ca_mount(secret: str | None) -> SecretMount | None:
    """The optional volume holding the Secret's CA bundle at ``CA_PATH`` (pure)."""
    if secret is None:
        return None
    return SecretMount(VOLUME, secret, MOUNT_DIR, items=((CA_KEY, CA_KEY),), optional=True)


def drop_absent_ca(environ: MutableMapping[str, str], root: Path = Path("/")) -> None:
    """Forget ``CERT_PATH_ENV`` when it names our mount and the Secret had no ``ca.crt``:
    requests would refuse an https server over a missing bundle instead of using the
    system's CAs."""
    path = environ.get(CERT_PATH_ENV)
    if path == CA_PATH and not (root / CA_PATH.lstrip("/")).is_file():
        del environ[CERT_PATH_ENV]
