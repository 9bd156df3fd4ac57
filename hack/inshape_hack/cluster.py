"""The local cluster: etcd, kube-apiserver, kube-controller-manager, local kubelet, Kafka, MLflow.

`LocalCluster(state_dir).start()` brings it all up (pytest fixtures use this) and `stop()`
takes it down with no process left. From a shell:

    python -m inshape_hack.cluster up       # start in the background, print the env to use
    python -m inshape_hack.cluster status
    python -m inshape_hack.cluster env      # `eval "$(... env)"` to point kubectl & co at it
    python -m inshape_hack.cluster down

`up` runs a supervisor process (`serve`) that owns every component and stops them all on
SIGTERM; its state lives in `.run/cluster/` (or $INSHAPE_RUN_DIR/cluster), rebuilt fresh by
each `up`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from inshape_hack import gotools
from inshape_hack.certs import make_pki
from inshape_hack.components import (
    NODE_NAME,
    Ports,
    apiserver_argv,
    certificate_specs,
    controller_manager_argv,
    etcd_argv,
    kubelet_argv,
    pod_ip_start,
)
from inshape_hack.kafka import KafkaBroker
from inshape_hack.kubeconfig import client_cert_kubeconfig, write_kubeconfig
from inshape_hack.mlflow_server import MlflowServer
from inshape_hack.paths import run_dir
from inshape_hack.ports import free_port
from inshape_hack.process import ServiceProcess

JSON = dict[str, Any]
STATE_FILE = "state.json"


def default_state_dir() -> Path:
    return run_dir() / "cluster"


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] = lambda: True
) -> None:
    """Poll `check` until it holds; fail fast if the process behind it died."""
    deadline = time.monotonic() + timeout
    while not check():
        if not alive():
            raise RuntimeError(f"{what}: process exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(0.2)


def https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Endpoints:
    """How to reach a running cluster: what `state.json` holds and `env` prints."""

    kubeconfig: str
    server: str
    kube_version: str
    helm: str
    kubectl: str
    kafka_bootstrap: str
    mlflow_tracking_uri: str

    def env(self) -> dict[str, str]:
        out = {
            "KUBECONFIG": self.kubeconfig,
            "INSHAPE_KUBE_VERSION": self.kube_version,
            "INSHAPE_HELM": self.helm,
            "INSHAPE_KUBECTL": self.kubectl,
        }
        if self.kafka_bootstrap:
            out["INSHAPE_KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        if self.mlflow_tracking_uri:
            out["MLFLOW_TRACKING_URI"] = self.mlflow_tracking_uri
        return out


class LocalCluster:
    """Every component of the local cluster, started and stopped together."""

    def __init__(
        self, state_dir: Path | None = None, kafka: bool = True, mlflow: bool = True
    ) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.pki_dir = self.state_dir / "pki"
        self.logs_dir = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "admin.kubeconfig"
        self.with_kafka = kafka
        self.with_mlflow = mlflow
        self.kube_version = gotools.kube_version()
        self.ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
        self.server = f"https://127.0.0.1:{self.ports.apiserver}"
        self.processes: list[ServiceProcess] = []
        self.kafka: KafkaBroker | None = None
        self.mlflow: MlflowServer | None = None
        self.tools: dict[str, Path] = {}
        self.timings: dict[str, float] = {}
        self._side_errors: list[str] = []

    # --- start ----------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        atexit.register(self.stop)  # a test run that dies half-way still cleans up
        self.tools = gotools.ensure_tools()
        self.timings["tools"] = time.monotonic() - started
        shutil.rmtree(self.state_dir, ignore_errors=True)  # every start is a fresh cluster
        self.logs_dir.mkdir(parents=True)
        try:
            side = self._start_side_services()
            self._start_kubernetes()
            for thread in side:
                thread.join()
            if self._side_errors:
                raise RuntimeError(f"side services failed: {self._side_errors}")
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - started - self.timings["tools"]

    def _start_side_services(self) -> list[threading.Thread]:
        """Kafka and MLflow start in parallel with Kubernetes: they are the slow part."""
        threads = []
        if self.with_kafka:
            self.kafka = KafkaBroker(self.state_dir / "kafka")
            threads.append(self._in_thread("kafka", self.kafka.start))
        if self.with_mlflow:
            self.mlflow = MlflowServer(self.state_dir / "mlflow")
            threads.append(self._in_thread("mlflow", self.mlflow.start))
        return threads

    def _in_thread(self, name: str, start: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            begun = time.monotonic()
            try:
                start()
            except Exception as err:  # reported to the starting thread, which raises
                self._side_errors.append(f"{name}: {err!r}")
            self.timings[name] = time.monotonic() - begun

        thread = threading.Thread(target=run, name=f"start-{name}", daemon=True)
        thread.start()
        return thread

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ServiceProcess:
        process = ServiceProcess(name, argv, self.logs_dir / f"{name}.log", env or dict(os.environ))
        process.start(cwd=self.state_dir)
        self.processes.append(process)
        return process

    def _start_kubernetes(self) -> None:
        begun = time.monotonic()
        make_pki(self.pki_dir, certificate_specs())
        pki, ports = self.pki_dir, self.ports
        etcd = self._spawn("etcd", etcd_argv(self.tools["etcd"], self.state_dir / "etcd", ports))
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"),
            30,
            "etcd healthy",
            etcd.running,
        )

        apiserver = self._spawn(
            "kube-apiserver", apiserver_argv(self.tools["kube-apiserver"], pki, ports)
        )
        admin = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        admin.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        wait_until(
            lambda: https_ok(f"{self.server}/readyz", admin),
            90,
            "kube-apiserver ready",
            apiserver.running,
        )
        write_kubeconfig(
            self.kubeconfig,
            client_cert_kubeconfig(
                self.server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key", "inshape-admin"
            ),
        )
        self.timings["apiserver"] = time.monotonic() - begun

        kcm_config = write_kubeconfig(
            self.state_dir / "controller-manager.kubeconfig",
            client_cert_kubeconfig(
                self.server,
                pki / "ca.crt",
                pki / "controller-manager.crt",
                pki / "controller-manager.key",
                "system:kube-controller-manager",
            ),
        )
        kcm = self._spawn(
            "kube-controller-manager",
            controller_manager_argv(
                self.tools["kube-controller-manager"],
                pki,
                kcm_config,
                self.state_dir / "controller-manager",
                ports,
            ),
        )
        kubelet_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        kubelet = self._spawn(
            "kubelet",
            kubelet_argv(
                pki,
                self.state_dir / "kubelet",
                ports,
                self.kube_version,
                pod_ip_start(random.randint(10, 250)),
            ),
            kubelet_env,
        )

        insecure = ssl._create_unverified_context()  # kcm serves a self-signed cert
        wait_until(
            lambda: https_ok(f"https://127.0.0.1:{ports.controller_manager}/healthz", insecure),
            60,
            "kube-controller-manager healthy",
            kcm.running,
        )
        wait_until(
            lambda: self._node_ready(admin), 60, "node registered and ready", kubelet.running
        )
        # Pods can only be created once the namespace has its `default` ServiceAccount.
        wait_until(
            lambda: https_ok(
                f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", admin
            ),
            60,
            "default ServiceAccount created",
            kcm.running,
        )
        self.timings["kubernetes"] = time.monotonic() - begun

    def _node_ready(self, context: ssl.SSLContext) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.server}/api/v1/nodes/{NODE_NAME}", context=context, timeout=2
            ) as resp:
                node = json.load(resp)
        except (urllib.error.URLError, OSError):
            return False
        conditions = node.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- use --------------------------------------------------------------------

    def link_tools(self) -> Path:
        """A bin dir with plain `kubectl` and `helm` names for shells (see `env`)."""
        bin_dir = self.state_dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name in ("kubectl", "helm"):
            link = bin_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(self.tools[name])
        return bin_dir

    def endpoints(self) -> Endpoints:
        return Endpoints(
            kubeconfig=str(self.kubeconfig),
            server=self.server,
            kube_version=self.kube_version,
            helm=str(self.tools.get("helm", "")),
            kubectl=str(self.tools.get("kubectl", "")),
            kafka_bootstrap=self.kafka.bootstrap_servers if self.kafka else "",
            mlflow_tracking_uri=self.mlflow.tracking_uri if self.mlflow else "",
        )

    def running(self) -> dict[str, bool]:
        out = {p.name: p.running() for p in self.processes}
        if self.kafka:
            out["kafka"] = self.kafka.running()
        if self.mlflow:
            out["mlflow"] = self.mlflow.running()
        return out

    # --- stop -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop in reverse order: the kubelet first, so it kills the pods it runs."""
        atexit.unregister(self.stop)
        for process in reversed(self.processes):
            process.stop(grace=15 if process.name == "kubelet" else 10)
        self.processes.clear()
        kill_pod_orphans(self.state_dir / "kubelet")
        for service in (self.mlflow, self.kafka):
            if service is not None:
                service.stop()
        self.kafka = self.mlflow = None


def kill_pod_orphans(kubelet_dir: Path) -> list[int]:
    """SIGKILL pod processes a dead kubelet left behind, found by the pod dir in their env.

    Pods run in their own sessions, so killing the kubelet's group does not reach them; the
    kubelet stops them itself on SIGTERM, and this catches the case where it could not.
    """
    marker = f"INSHAPE_POD_DIR={kubelet_dir}/".encode()
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if any(var.startswith(marker) for var in environ.split(b"\0")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
    return killed


# --- the supervisor and the CLI ---------------------------------------------------------


def read_state(state_dir: Path) -> JSON | None:
    try:
        data: JSON = json.loads((state_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, data: JSON) -> None:
    """Write-then-rename, so a reader polling the file never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(path)


def started_here(pid: int, state_dir: Path) -> bool:
    """Whether `pid` is still one of this cluster's processes (its argv names the state dir)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(state_dir).encode() in argv


def serve(state_dir: Path, kafka: bool, mlflow: bool) -> int:
    """Run the cluster until SIGTERM/SIGINT, publishing where it is in state.json."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster = LocalCluster(state_dir, kafka=kafka, mlflow=mlflow)
    status_file = state_dir.parent / f"{state_dir.name}.starting.json"
    try:
        cluster.start()
    except Exception as err:
        write_json(status_file, {"error": repr(err)})
        raise
    state = {
        "supervisor_pid": os.getpid(),
        "pids": {p.name: p.pid for p in cluster.processes},
        "endpoints": cluster.endpoints().__dict__,
        "bin_dir": str(cluster.link_tools()),
        "timings": cluster.timings,
        "first_build": gotools.recorded_build_seconds(),
    }
    write_json(cluster.state_dir / STATE_FILE, state)
    write_json(status_file, {"ready": True})
    try:
        while not stop.wait(2):
            dead = [name for name, ok in cluster.running().items() if not ok]
            if dead:
                print(f"components exited: {dead}; stopping the cluster", flush=True)
                break
    finally:
        cluster.stop()
        (cluster.state_dir / STATE_FILE).unlink(missing_ok=True)
    return 0


def up(state_dir: Path, kafka: bool, mlflow: bool, timeout: float) -> int:
    if (state := read_state(state_dir)) and pid_alive(state["supervisor_pid"]):
        print(f"cluster already running (supervisor pid {state['supervisor_pid']})")
        print_env(state)
        return 0
    started = time.monotonic()
    build = gotools.ensure_tools()  # in the foreground, so its progress shows
    build_seconds = time.monotonic() - started
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    status_file = state_dir.parent / f"{state_dir.name}.starting.json"
    status_file.unlink(missing_ok=True)
    log_path = state_dir.parent / f"{state_dir.name}.supervisor.log"
    argv = [sys.executable, "-m", "inshape_hack.cluster", "serve", "--state-dir", str(state_dir)]
    argv += [] if kafka else ["--no-kafka"]
    argv += [] if mlflow else ["--no-mlflow"]
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    launched = time.monotonic()
    while True:
        status = json.loads(status_file.read_text()) if status_file.exists() else {}
        if status.get("ready"):
            break
        if (
            status.get("error")
            or supervisor.poll() is not None
            or time.monotonic() - launched > timeout
        ):
            print(log_path.read_text()[-4000:], file=sys.stderr)
            if supervisor.poll() is None:
                os.killpg(supervisor.pid, signal.SIGTERM)
                supervisor.wait(60)
            print("cluster failed to start", file=sys.stderr)
            return 1
        time.sleep(0.3)
    state = read_state(state_dir) or {}
    print(
        f"tools: {', '.join(sorted(build))} ready in {build_seconds:.1f}s"
        f" (their first build here took {_build_text(state.get('first_build', {}))})"
    )
    print(f"cluster started in {time.monotonic() - launched:.1f}s (warm start)", flush=True)
    print_env(state)
    return 0


def _build_text(builds: dict[str, float]) -> str:
    if not builds:
        return "unknown"
    parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in sorted(builds.items()))
    return f"{sum(builds.values()):.0f}s total: {parts}"


def print_env(state: JSON) -> None:
    endpoints = Endpoints(**state["endpoints"])
    for key, value in endpoints.env().items():
        print(f"export {key}={value}")
    # The project's kubectl (matching the cluster) and helm first on PATH.
    print(f'export PATH="{state["bin_dir"]}:$PATH"')


def down(state_dir: Path, timeout: float = 90) -> int:
    state = read_state(state_dir)
    if state is None:
        print("no cluster running")
        return 0
    pid = int(state["supervisor_pid"])
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    # If the supervisor could not finish, its components' groups are killed directly, but
    # only while their command line still names this state dir (pids get reused).
    for pgid in [pid, *state.get("pids", {}).values()]:
        if pgid and started_here(int(pgid), state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pgid), signal.SIGKILL)
    kill_pod_orphans(state_dir / "kubelet")
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    print("cluster stopped")
    return 0


def status(state_dir: Path) -> int:
    state = read_state(state_dir)
    if state is None or not pid_alive(int(state["supervisor_pid"])):
        print("cluster: not running")
        return 1
    endpoints = Endpoints(**state["endpoints"])
    for name, pid in state["pids"].items():
        print(f"{name:<24} pid {pid:<8} {'running' if pid_alive(pid) else 'EXITED'}")
    result = subprocess.run(
        [endpoints.kubectl, "--kubeconfig", endpoints.kubeconfig, "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"{'kube-apiserver /readyz':<24} {result.stdout.strip() or result.stderr.strip()}")
    print(f"{'kafka':<24} {endpoints.kafka_bootstrap or '-'}")
    print(f"{'mlflow':<24} {endpoints.mlflow_tracking_uri or '-'}")
    return 0 if result.returncode == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inshape-cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "serve"])
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    if args.command == "up":
        return up(state_dir, not args.no_kafka, not args.no_mlflow, args.timeout)
    if args.command == "serve":
        return serve(state_dir, not args.no_kafka, not args.no_mlflow)
    if args.command == "down":
        return down(state_dir)
    if args.command == "status":
        return status(state_dir)
    state = read_state(state_dir)
    if state is None:
        print("no cluster running", file=sys.stderr)
        return 1
    print_env(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
