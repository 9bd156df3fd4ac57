"""`mlflow server` with a sqlite backend and a local artifact root, on a free loopback port."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from inshape_hack.ports import free_port
from inshape_hack.process import LocalServer


class MlflowServer(LocalServer):
    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__("mlflow")
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)

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

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as resp:
            return bool(resp.status == 200)
