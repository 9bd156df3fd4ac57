"""`mlflow server` with a sqlite backend and a local artifact root, on a free loopback port;
with `admin`, MLflow's basic-auth app in front of it (users in a sqlite store of their own)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from inshape_hack.ports import free_port
from inshape_hack.process import LocalServer

Permission = Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]


@dataclass(frozen=True)
class MlflowUser:
    name: str
    password: str = field(repr=False)

    def env(self) -> dict[str, str]:
        """The user as MLflow's client reads it."""
        return {"MLFLOW_TRACKING_USERNAME": self.name, "MLFLOW_TRACKING_PASSWORD": self.password}


def new_user(name: str) -> MlflowUser:
    """A user with a fresh password (the auth app wants 12 characters at least)."""
    return MlflowUser(name, secrets.token_urlsafe(18))


class MlflowServer(LocalServer):
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        admin: MlflowUser | None = None,
        default_permission: Permission = "READ",
    ) -> None:
        super().__init__("mlflow")
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.admin = admin
        self.default_permission = default_permission

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        artifacts = self.data_dir / "artifacts"
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.data_dir / 'mlflow.db'}",
            # Artifacts are proxied through the server, so clients need no shared filesystem.
            "--artifacts-destination",
            str(artifacts),
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "2",
        ]
        env = dict(os.environ)
        if self.admin is not None:
            argv += ["--app-name", "basic-auth"]
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self._auth_config(self.admin))
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))
        # The dev server refuses non-localhost Host headers by default; pods use 127.0.0.x.
        env.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", "*")
        env.setdefault("MLFLOW_SERVER_CORS_ALLOWED_ORIGINS", "*")
        # No job runner (seven huey consumers, ~235 MiB each): nothing here submits jobs.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        self._launch(
            argv,
            self.data_dir / "mlflow.log",
            env,
            answers=self._healthy,
            what=f"the mlflow server at {self.tracking_uri} is healthy",
            timeout=timeout,
            retry_on=(OSError,),
        )

    def _auth_config(self, admin: MlflowUser) -> Path:
        """The basic-auth app's ini; the admin is created from it on first start (0600: it
        holds the password)."""
        path = self.data_dir / "basic_auth.ini"
        lines = [
            "[mlflow]",
            f"default_permission = {self.default_permission}",
            f"database_uri = sqlite:///{self.data_dir / 'basic_auth.db'}",
            f"admin_username = {admin.name}",
            f"admin_password = {admin.password}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
        return path

    def create_user(self, user: MlflowUser) -> None:
        """Add `user` through the auth app's REST API, as the admin (default permissions)."""
        assert self.admin is not None, "an MLflow server without auth has no users"
        pair = f"{self.admin.name}:{self.admin.password}".encode()
        request = urllib.request.Request(
            f"{self.tracking_uri}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": user.name, "password": user.password}).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(pair).decode("ascii"),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as resp:
            return bool(resp.status == 200)
