"""A service process: started in its own process group, logged to a file, stopped for sure;
and a local server built on one, started and waited for until it answers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Self

from inshape_hack.polling import wait_until


class ServiceProcess:
    """One long-running child; `stop()` TERMs its whole group, then KILLs what is left."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=cwd,
                start_new_session=True,  # own process group: stop() reaches grandchildren too
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        # Children may outlive a leader that already exited (gunicorn workers, for one).
        _signal_group(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
            self.proc = None


class LocalServer:
    """A server of the dev harness (Kafka, MLflow) run as one ServiceProcess: started, then
    waited for until it answers; if it never does, its log's tail is printed and it is
    stopped. ``with server:`` starts it and stops it on the way out."""

    def __init__(self, name: str, stop_grace: float = 10.0) -> None:
        self._name = name
        self._stop_grace = stop_grace
        self._process: ServiceProcess | None = None

    def start(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(
        self,
        argv: list[str],
        log_path: Path,
        env: dict[str, str],
        *,
        answers: Callable[[], bool],
        what: str,
        timeout: float,
        retry_on: tuple[type[Exception], ...],
    ) -> None:
        """Start it, and wait until ``answers()`` holds (``what``: that, in words)."""
        self._process = ServiceProcess(self._name, argv, log_path, env)
        self._process.start()
        try:
            wait_until(answers, timeout, what, alive=self.running, interval=0.5, retry_on=retry_on)
        except Exception:
            print(self._process.log_tail())
            self.stop()
            raise

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=self._stop_grace)
            self._process = None

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
