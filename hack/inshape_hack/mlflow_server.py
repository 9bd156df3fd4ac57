"""`mlflow server` with a sqlite backend and a local artifact root, on a free loopback port."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from inshape_hack.polling import wait_until
from inshape_hack.ports import free_port
from inshape_hack.process import ServiceProcess


class MlflowServer:
    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._process: ServiceProcess | None = None

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
        self._process = ServiceProcess("mlflow", argv, self.data_dir / "mlflow.log", env)
        self._process.start()
        try:
            self._wait_healthy(timeout)
        except Exception:
            print(self._process.log_tail())
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as resp:
                return bool(resp.status == 200)

        wait_until(
            healthy,
            timeout,
            f"the mlflow server at {self.tracking_uri} is healthy",
            alive=self.running,
            interval=0.5,
            retry_on=(OSError,),
        )

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None
