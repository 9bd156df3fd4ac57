"""Containers as local processes: start, watch, restart with back-off, stop with a grace period.

Each container runs in its own session (process group) so stopping it reaches whatever it
spawned. Its stdout and stderr go to `<pod dir>/<container>.log`; the previous run's log is
kept as `<container>.previous.log` for `kubectl logs --previous`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inshape_hack.kubelet.probes import run_probe, timing
from inshape_hack.kubelet.status import ContainerState, Terminated, termination_message

JSON = dict[str, Any]
BACKOFF_START = 1.0  # seconds; doubled per crash up to BACKOFF_MAX (the kubelet uses 10s/300s)
BACKOFF_MAX = 60.0
TERMINATION_ENV = "INSHAPE_TERMINATION_MESSAGE_PATH"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@dataclass
class Container:
    """One container of a pod: its spec, its process and what it reports."""

    spec: JSON
    pod_dir: Path
    state: ContainerState
    policy: str = "Always"  # the pod's restartPolicy
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started_mono: float = 0.0
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    probe_ok: int = 0
    probe_failed: int = 0
    probe_due: float = 0.0
    probe_thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def log_path(self) -> Path:
        return self.pod_dir / f"{self.name}.log"

    @property
    def previous_log_path(self) -> Path:
        return self.pod_dir / f"{self.name}.previous.log"

    @property
    def message_path(self) -> Path:
        return self.pod_dir / f"{self.name}.termination-log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Launch the process; a missing executable is a terminated StartError, as in Docker."""
        if self.log_path.exists() and self.state.last_terminated is not None:
            self.log_path.replace(self.previous_log_path)
        self.message_path.write_text("")
        started = now_rfc3339()
        try:
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.argv,
                    cwd=self.pod_dir,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as err:
            self.proc = None
            self._finish(Terminated(128, "StartError", str(err), started, started))
            return
        self.started_mono = time.monotonic()
        self.state.container_id = f"inshape://{self.proc.pid}"
        self.state.running_since = started
        self.state.terminated = None
        self.state.waiting_reason = ""
        self.state.ready = "readinessProbe" not in self.spec
        self.probe_ok = self.probe_failed = 0
        probe = self.spec.get("readinessProbe")
        self.probe_due = self.started_mono + (timing(probe).initial_delay if probe else 0)

    def reap(self) -> bool:
        """Record an exit if the process ended; True if it did."""
        if self.proc is None or self.proc.poll() is None:
            return False
        code = self.proc.returncode
        # A signal death is 128+signal in container runtimes, not Python's negative code.
        exit_code = 128 - code if code < 0 else code
        signal_group(self.proc.pid, signal.SIGKILL)  # orphans of the main process go with it
        self._finish(
            Terminated(
                exit_code=exit_code,
                reason="Completed" if exit_code == 0 else "Error",
                message=termination_message(
                    _read(self.message_path, 4096),
                    _tail(self.log_path, 4096),
                    exit_code,
                    str(self.spec.get("terminationMessagePolicy", "File")),
                ),
                started_at=self.state.running_since or now_rfc3339(),
                finished_at=now_rfc3339(),
                container_id=self.state.container_id,
            )
        )
        return True

    def _finish(self, done: Terminated) -> None:
        """Record an end; if the restart policy wants it back, wait out the back-off first."""
        self.state.running_since = None
        self.state.ready = False
        self.proc = None
        ran = time.monotonic() - self.started_mono
        self.backoff = BACKOFF_START if ran > 60 else min(self.backoff * 2, BACKOFF_MAX)
        if should_restart(self.policy, done.exit_code):
            self.next_start = time.monotonic() + self.backoff
            self.state.last_terminated, self.state.terminated = done, None
            self.state.waiting_reason = "CrashLoopBackOff"
            self.state.waiting_message = f"back-off {self.backoff:.0f}s restarting {self.name}"
        else:
            self.state.terminated = done

    def pending_restart(self) -> None:
        """A container in back-off (waiting with a last state) starts once its time comes."""
        if (
            self.proc is None
            and self.state.terminated is None
            and self.state.waiting_reason == "CrashLoopBackOff"
            and time.monotonic() >= self.next_start
        ):
            self.state.restart_count += 1
            self.start()

    def probe(self, pod_ip: str) -> None:
        """Run the readiness probe in a thread when it is due; results land in `state.ready`."""
        spec = self.spec.get("readinessProbe")
        if not spec or not self.running() or time.monotonic() < self.probe_due:
            return
        if self.probe_thread is not None and self.probe_thread.is_alive():
            return
        rules = timing(spec)
        self.probe_due = time.monotonic() + rules.period

        def attempt() -> None:
            if run_probe(spec, self.spec, pod_ip, self.env, str(self.pod_dir)):
                self.probe_ok, self.probe_failed = self.probe_ok + 1, 0
                if self.probe_ok >= rules.success_threshold:
                    self.state.ready = True
            else:
                self.probe_ok, self.probe_failed = 0, self.probe_failed + 1
                if self.probe_failed >= rules.failure_threshold:
                    self.state.ready = False

        self.probe_thread = threading.Thread(target=attempt, daemon=True)
        self.probe_thread.start()

    def kill_now(self) -> None:
        """SIGKILL the process group and wait for the leader, leaving no zombie."""
        if self.proc is not None:
            signal_group(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.reap()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, sig)


def _read(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            return f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
