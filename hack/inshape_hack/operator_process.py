"""The operator on the host, as a developer runs it: `python -m inshape_operator` with a
cluster's kubeconfig, its update Jobs on the project's image (loaded into the kind node), in a
process group of its own, logged to a file, its metrics and health endpoints on free ports.

Tests and benches start, SIGKILL and start it again; the fault tests run the chart's pod
instead (tests/faults/conftest.py).
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from inshape_hack.kubeconfig import kube_env
from inshape_hack.polling import wait_until
from inshape_hack.ports import free_port
from inshape_hack.process import ServiceProcess

OPERATOR_ARGV = (sys.executable, "-m", "inshape_operator")


class OperatorProcess:
    """One operator process; ``env`` adds to (or overrides) its INSHAPE_* settings, ``argv``
    runs another program in its place (the benches' idle Kopf reference)."""

    def __init__(
        self,
        kubeconfig: Path,
        image: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] = OPERATOR_ARGV,
    ) -> None:
        full = {
            **kube_env(kubeconfig),
            "INSHAPE_JOB_IMAGE": image,
            "INSHAPE_JOB_IMAGE_PULL_POLICY": "Never",
            "INSHAPE_METRICS_PORT": str(free_port()),
            "INSHAPE_HEALTH_PORT": str(free_port()),
            **(env or {}),
        }
        self.health_port = int(full["INSHAPE_HEALTH_PORT"])
        self.log = log
        self.process = ServiceProcess("operator", list(argv), log, full)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "the operator was not started"
        return self.process.pid

    def start(self) -> None:
        self.process.start()

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until Kopf's liveness endpoint answers (the operator has started its watches)."""

        def answers() -> bool:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2):
                return True

        wait_until(
            answers,
            timeout,
            f"the operator's /healthz on port {self.health_port} answers",
            alive=self.process.running,
            retry_on=(OSError,),
        )

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        self.process.kill()

    def stop(self, grace: float = 20) -> None:
        """SIGTERM, then SIGKILL what is left after ``grace`` seconds."""
        self.process.stop(grace=grace)

    def output(self, chars: int = 6000) -> str:
        """The end of its log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"
