"""A Docker daemon to build images and run kind on: the user's own, or one the project starts.

Where a daemon already answers (``$DOCKER_HOST`` or docker's default socket: a user's laptop),
it is used as is. Otherwise Debian's ``docker.io`` is installed if missing and a daemon of the
project's own is started: data root in the tool cache (images survive across runs and
checkouts), its own socket and exec root under ``/run/inshape-docker``, stopped by ``down``.

    python -m inshape_hack.docker up|down|env|status
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.debian import ensure_commands
from inshape_hack.paths import cache_dir
from inshape_hack.polling import wait_until

# Short paths: a unix socket path may not exceed 108 bytes, and containerd nests sockets
# under the exec root.
OWN_RUN_DIR = Path("/run/inshape-docker")
OWN_SOCKET = OWN_RUN_DIR / "docker.sock"
OWN_PIDFILE = OWN_RUN_DIR / "dockerd.pid"
DAEMON_START_SECONDS = 90.0


@dataclass(frozen=True)
class DockerEndpoint:
    """Where the docker CLI talks to: ``host`` is a DOCKER_HOST value, or None for the default."""

    host: str | None
    owned: bool  # started by the project (and so stopped by `down`)

    def env(self) -> dict[str, str]:
        """The process environment for docker, kind and anything that shells out to docker."""
        env = dict(os.environ)
        if self.host:
            env["DOCKER_HOST"] = self.host
        return env

    def exports(self) -> str:
        return f"export DOCKER_HOST={self.host}" if self.host else "unset DOCKER_HOST"


SHIM_NAME = "docker-shim"  # hack/kind/docker-shim


def docker_cli() -> str:
    """The real docker CLI on PATH (never the kind shim, which may come first on PATH)."""
    found = _real_docker_on_path()
    if found is None:
        ensure_commands({"docker": "docker.io"})
        found = _real_docker_on_path()
    if found is None:
        raise RuntimeError("no docker CLI on PATH after installing docker.io")
    return found


def _is_shim(path: str) -> bool:
    """The kind shim of any checkout (several may share the tool cache and its links)."""
    return os.path.basename(os.path.realpath(path)) == SHIM_NAME


def _real_docker_on_path() -> str | None:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, "docker")
        is_file = os.path.isfile(candidate) and os.access(candidate, os.X_OK)
        if is_file and not _is_shim(candidate):
            return candidate
    return None


def answers(host: str | None, timeout: float = 10.0) -> bool:
    """True when a daemon answers `docker info` at ``host`` (None: the CLI's default)."""
    if shutil.which("docker") is None:
        return False
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if host:
        env["DOCKER_HOST"] = host
    return _succeeds([docker_cli(), "info", "--format", "{{.ServerVersion}}"], env, timeout)


def _succeeds(argv: list[str], env: dict[str, str], timeout: float | None = None) -> bool:
    """The command exits 0 within ``timeout`` (a command that hangs counts as failed)."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# A node image is ~1 GiB on a slow link; where no registry answers a pull fails at once.
PULL_SECONDS = 900.0


def pull(docker: DockerEndpoint, image: str, cli: str | None = None) -> bool:
    """True when ``image`` is here or could be pulled (where no registry answers, this fails
    fast). ``cli``: a docker CLI other than the default one."""
    binary = cli or docker_cli()
    env = docker.env()
    if _succeeds([binary, "image", "inspect", image], env):
        return True
    return _succeeds([binary, "pull", "--quiet", image], env, PULL_SECONDS)


def own_host() -> str:
    return f"unix://{OWN_SOCKET}"


def find_running() -> DockerEndpoint | None:
    """The daemon to use if one already answers: the user's first, then the project's own."""
    user_host = os.environ.get("DOCKER_HOST")
    if user_host and user_host != own_host():
        return DockerEndpoint(user_host, owned=False) if answers(user_host) else None
    if answers(own_host()):
        return DockerEndpoint(own_host(), owned=True)
    if answers(None):
        return DockerEndpoint(None, owned=False)
    return None


def dockerd_argv(data_root: Path) -> list[str]:
    return [
        "dockerd",
        f"--data-root={data_root}",
        f"--exec-root={OWN_RUN_DIR / 'exec'}",
        f"--pidfile={OWN_PIDFILE}",
        f"--host={own_host()}",
        # The project's images and containers live in the cache; its logs stay small.
        "--log-driver=json-file",
        "--log-opt=max-size=20m",
    ]


def start_own_daemon() -> DockerEndpoint:
    """Start the project's dockerd in the background and wait until it answers."""
    # Debian's docker.io brings dockerd, containerd and runc.
    ensure_commands({"dockerd": "docker.io"})
    data_root = cache_dir() / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    OWN_RUN_DIR.mkdir(parents=True, exist_ok=True)
    log_path = data_root.parent / "dockerd.log"
    with log_path.open("ab") as log:
        subprocess.Popen(
            dockerd_argv(data_root),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command; `down` stops it
        )
    wait_until(
        lambda: answers(own_host(), timeout=5),
        timeout=DAEMON_START_SECONDS,
        what=f"dockerd answers on {OWN_SOCKET} (log: {log_path})",
    )
    return DockerEndpoint(own_host(), owned=True)


def ensure_docker() -> DockerEndpoint:
    """A daemon that answers: the one running already, else the project's own, started now."""
    return find_running() or start_own_daemon()


def stop_own_daemon(timeout: float = 60.0) -> bool:
    """Stop the project's dockerd (not a user's); True if one was running."""
    try:
        pid = int(OWN_PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        OWN_PIDFILE.unlink(missing_ok=True)
        return False
    wait_until(lambda: not _alive(pid), timeout=timeout, what=f"dockerd {pid} exits")
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child, not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        endpoint = ensure_docker()
        print(f"docker: {'own daemon' if endpoint.owned else 'existing daemon'} {endpoint.host}")
    elif args.command == "down":
        print("docker: stopped own daemon" if stop_own_daemon() else "docker: no own daemon")
    elif args.command == "env":
        running = find_running()
        if running is not None:
            print(running.exports())
    else:
        running = find_running()
        print(f"docker: {running.host if running else 'no daemon answers'}")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
