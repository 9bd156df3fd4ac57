"""The kubelet's control loop: level-based, every half second, over all pods.

There is no scheduler in the local cluster, so the kubelet also binds every pending pod
that asks for the default scheduler to its own Node.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from inshape_hack.kubelet.env import EnvError, PodFacts, command_line, resolve_env
from inshape_hack.kubelet.env import configmap_data as _cm_data
from inshape_hack.kubelet.env import secret_data as _secret_data
from inshape_hack.kubelet.ippool import IpPool
from inshape_hack.kubelet.logserver import LogSource
from inshape_hack.kubelet.node import (
    lease_object,
    node_object,
    node_status,
    without_not_ready_taint,
)
from inshape_hack.kubelet.rest import ApiError, Rest, pod_path
from inshape_hack.kubelet.runtime import TERMINATION_ENV, Container, now_rfc3339
from inshape_hack.kubelet.status import ContainerState, init_failed, pod_status
from inshape_hack.kubelet.tokens import kubeconfig, pod_token

JSON = dict[str, Any]
log = logging.getLogger("inshape.kubelet")
SYNC_PERIOD = 0.5
LEASE_RENEW = 10.0
STATUS_HEARTBEAT = 30.0
TRANSIENT = (ApiError, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    host_ip: str
    port: int
    server: str
    ca_file: Path
    state_dir: Path
    python_bin: Path  # the project's venv bin: `python` in a pod command means this one
    version: str
    pod_ip_start: str = "127.0.0.2"


@dataclass
class PodRun:
    """A pod this kubelet runs: its processes, IP, directory and last written status."""

    uid: str
    namespace: str
    name: str
    ip: str
    directory: Path
    policy: str
    containers: list[Container]
    init_containers: list[Container]
    start_time: str
    base_env: dict[str, str]
    kill_at: float | None = None
    last_status: JSON | None = None
    config_retry_at: float = 0.0
    conditions: list[JSON] = field(default_factory=list)

    def all_containers(self) -> list[Container]:
        return self.init_containers + self.containers

    def any_running(self) -> bool:
        return any(c.running() for c in self.all_containers())

    def initialized(self) -> bool:
        return all(_succeeded(c) for c in self.init_containers)


def _succeeded(container: Container) -> bool:
    done = container.state.terminated
    return done is not None and done.exit_code == 0


def pod_key(pod: JSON) -> str:
    meta = pod["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def grace_seconds(pod: JSON) -> float:
    meta, spec = pod["metadata"], pod.get("spec", {})
    value = meta.get("deletionGracePeriodSeconds")
    if value is None:
        value = spec.get("terminationGracePeriodSeconds", 30)
    return float(value)


def wants_binding(pod: JSON) -> bool:
    spec = pod.get("spec", {})
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
        and not pod["metadata"].get("deletionTimestamp")
    )


def micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kubelet:
    def __init__(self, config: KubeletConfig, rest: Rest) -> None:
        self.config = config
        self.rest = rest
        self.runs: dict[str, PodRun] = {}
        self.by_name: dict[str, PodRun] = {}
        self.ips = IpPool(first=config.pod_ip_start)
        self.deleted: set[str] = set()
        self._ca_b64 = base64.b64encode(config.ca_file.read_bytes()).decode()
        self._next_lease = 0.0
        self._next_heartbeat = 0.0

    # --- node ---------------------------------------------------------------

    def register(self) -> None:
        name = self.config.node_name
        try:
            self.rest.post("/api/v1/nodes", node_object(name))
        except ApiError as err:
            if err.status != 409:
                raise
        self.heartbeat()
        node = self.rest.get(f"/api/v1/nodes/{name}")
        taints = node.get("spec", {}).get("taints") or []
        kept = without_not_ready_taint(taints)
        if kept != taints:
            self.rest.merge_patch(f"/api/v1/nodes/{name}", {"spec": {"taints": kept or None}})
        self.renew_lease()

    def heartbeat(self) -> None:
        cfg = self.config
        body = node_status(cfg.host_ip, cfg.port, now_rfc3339(), cfg.version)
        self.rest.merge_patch(f"/api/v1/nodes/{cfg.node_name}/status", body)
        self._next_heartbeat = time.monotonic() + STATUS_HEARTBEAT

    def renew_lease(self) -> None:
        name = self.config.node_name
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        lease = lease_object(name, micro_now())
        try:
            self.rest.merge_patch(path, {"spec": lease["spec"]})
        except ApiError as err:
            if err.status != 404:
                raise
            self.rest.post(path.rsplit("/", 1)[0], lease)
        self._next_lease = time.monotonic() + LEASE_RENEW

    # --- pods ---------------------------------------------------------------

    def sync_once(self) -> None:
        if time.monotonic() >= self._next_lease:
            self.renew_lease()
        if time.monotonic() >= self._next_heartbeat:
            self.heartbeat()
        pods = self.rest.get("/api/v1/pods").get("items", [])
        seen: set[str] = set()
        for pod in pods:
            try:
                self._sync_pod(pod, seen)
            except (*TRANSIENT, EnvError) as err:
                log.warning("Sync of pod %s failed: %s", pod_key(pod), err)
        for uid in list(self.runs):
            if uid not in seen:  # gone from the API (force-deleted): stop it now
                self._forget(self.runs[uid], kill=True)
        self.deleted &= seen

    def _sync_pod(self, pod: JSON, seen: set[str]) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        if wants_binding(pod):
            self._bind(pod)
            return
        if spec.get("nodeName") != self.config.node_name:
            return
        uid = meta["uid"]
        seen.add(uid)
        run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            self._terminate(pod, run)
            return
        if run is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before this kubelet started: nothing to run
            run = self._admit(pod)
        self._step(run, pod)

    def _bind(self, pod: JSON) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        }
        self.rest.post(pod_path(meta["namespace"], meta["name"], "binding"), body)
        log.info("Bound pod %s to %s", pod_key(pod), self.config.node_name)

    def _admit(self, pod: JSON) -> PodRun:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        directory = self.config.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{uid}"
        directory.mkdir(parents=True, exist_ok=True)
        base_env = self._base_env(pod, directory)  # may fail (API); nothing allocated yet
        ip = self.ips.allocate(uid)
        policy = spec.get("restartPolicy", "Always")
        # Init containers run one after another; a failed one is retried unless Never.
        init_policy = "Never" if policy == "Never" else "OnFailure"
        init_containers = [
            self._container(c, directory, init_policy, "PodInitializing")
            for c in spec.get("initContainers") or []
        ]
        waiting = "PodInitializing" if init_containers else "ContainerCreating"
        containers = [
            self._container(c, directory, policy, waiting) for c in spec.get("containers", [])
        ]
        run = PodRun(
            uid=uid,
            namespace=meta["namespace"],
            name=meta["name"],
            ip=ip,
            directory=directory,
            policy=policy,
            containers=containers,
            init_containers=init_containers,
            start_time=now_rfc3339(),
            base_env=base_env,
        )
        self.runs[uid] = run
        self.by_name[pod_key(pod)] = run
        log.info("Admitted pod %s with IP %s in %s", pod_key(pod), ip, directory)
        return run

    @staticmethod
    def _container(spec: JSON, directory: Path, policy: str, waiting: str) -> Container:
        state = ContainerState(
            name=spec["name"], image=spec.get("image", ""), waiting_reason=waiting
        )
        return Container(spec=spec, pod_dir=directory, state=state, policy=policy)

    def _base_env(self, pod: JSON, directory: Path) -> dict[str, str]:
        """What every container of the pod sees before its own env applies."""
        cfg = self.config
        host, port = cfg.server.removeprefix("https://").rsplit(":", 1)
        env = {
            "PATH": f"{cfg.python_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(cfg.python_bin.parent),
            "HOME": str(directory),
            "HOSTNAME": pod["metadata"]["name"],
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",  # so `kubectl logs` shows output while the pod runs
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "INSHAPE_POD_DIR": str(directory),
        }
        credentials = pod_token(self.rest, pod)
        if credentials is not None:
            account, token = credentials
            path = directory / "kubeconfig"
            config = kubeconfig(
                cfg.server,
                self._ca_b64,
                token,
                pod["metadata"]["namespace"],
                f"system:serviceaccount:{pod['metadata']['namespace']}:{account}",
            )
            path.write_text(json.dumps(config, indent=2))
            path.chmod(0o600)
            env["KUBECONFIG"] = str(path)
        return env

    def _lookup(self, kind: str, namespace: str, name: str) -> JSON | None:
        try:
            return self.rest.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _prepare(self, run: PodRun, container: Container, pod: JSON) -> bool:
        """Resolve env and command; on a config error the container waits and we retry."""
        facts = PodFacts(run.ip, self.config.host_ip, self.config.node_name)

        def configmaps(ns: str, name: str) -> dict[str, str] | None:
            obj = self._lookup("configmaps", ns, name)
            return None if obj is None else _cm_data(obj)

        def secrets(ns: str, name: str) -> dict[str, str] | None:
            obj = self._lookup("secrets", ns, name)
            return None if obj is None else _secret_data(obj)

        base = {**run.base_env, TERMINATION_ENV: str(container.message_path)}
        try:
            env = resolve_env(container.spec, pod, facts, configmaps, secrets, base=base)
            # No mounts here: a variable naming the terminationMessagePath gets the file the
            # kubelet reads instead (a real container sees that file at this path).
            in_container = str(container.spec.get("terminationMessagePath", "/dev/termination-log"))
            env = {
                k: str(container.message_path) if v == in_container else v for k, v in env.items()
            }
            container.argv = command_line(container.spec, env)
        except EnvError as err:
            container.state.waiting_reason = "CreateContainerConfigError"
            container.state.waiting_message = str(err)
            run.config_retry_at = time.monotonic() + 2.0
            return False
        container.env = env
        return True

    def _step(self, run: PodRun, pod: JSON) -> None:
        current = next((c for c in run.init_containers if not _succeeded(c)), None)
        if current is not None:
            if not init_failed([current.state], run.policy):
                self._advance(run, current, pod)
            if run.initialized():
                self._step(run, pod)  # start the app containers without waiting a period
                return
        else:
            for container in run.containers:
                self._advance(run, container, pod)
        self._write_status(run, pod)

    def _advance(self, run: PodRun, container: Container, pod: JSON) -> None:
        """Start, reap, restart or probe one container, whichever is due."""
        if not container.argv:
            if time.monotonic() >= run.config_retry_at and self._prepare(run, container, pod):
                container.start()
            return
        container.reap()
        container.pending_restart()
        container.probe(run.ip)

    def _write_status(self, run: PodRun, pod: JSON) -> None:
        previous = pod.get("status", {}).get("conditions") or []
        status = pod_status(
            [c.state for c in run.containers],
            run.policy,
            pod_ip=run.ip,
            host_ip=self.config.host_ip,
            start_time=run.start_time,
            previous_conditions=previous,
            now=now_rfc3339(),
            init_states=[c.state for c in run.init_containers],
            initialized=run.initialized(),
        )
        if status == run.last_status:
            return
        self.rest.merge_patch(pod_path(run.namespace, run.name, "status"), {"status": status})
        run.last_status = status

    def _terminate(self, pod: JSON, run: PodRun | None) -> None:
        """SIGTERM, the grace period, SIGKILL; then finish the deletion in the API."""
        uid = pod["metadata"]["uid"]
        if run is not None:
            if run.kill_at is None:
                run.kill_at = time.monotonic() + grace_seconds(pod)
                for container in run.all_containers():
                    container.signal(signal.SIGTERM)
                log.info("Stopping pod %s (grace %.0fs)", pod_key(pod), grace_seconds(pod))
            for container in run.all_containers():
                container.reap()
            if run.any_running():
                if time.monotonic() < run.kill_at:
                    return
                for container in run.all_containers():
                    container.signal(signal.SIGKILL)
                return
            self._forget(run, kill=False)
        if uid in self.deleted:
            return  # waiting for finalizers (a Job's pod tracking) to go
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.rest.delete(pod_path(pod["metadata"]["namespace"], pod["metadata"]["name"]), body)
        except ApiError as err:
            if err.status not in (404, 409):
                raise
        self.deleted.add(uid)

    def _forget(self, run: PodRun, kill: bool) -> None:
        if kill:
            for container in run.all_containers():
                container.kill_now()
        self.runs.pop(run.uid, None)
        if self.by_name.get(f"{run.namespace}/{run.name}") is run:
            del self.by_name[f"{run.namespace}/{run.name}"]
        self.ips.release(run.ip)
        shutil.rmtree(run.directory, ignore_errors=True)

    def find_log(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> LogSource | None:
        run = self.by_name.get(f"{namespace}/{pod}")
        candidates = run.all_containers() if run else []
        match = next((c for c in candidates if c.name == container), None)
        if match is None:
            return None
        path = match.previous_log_path if previous else match.log_path

        def more_may_come() -> bool:
            return not previous and (
                match.running() or match.state.waiting_reason == "CrashLoopBackOff"
            )

        return LogSource(path, more_may_come)

    # --- lifecycle ----------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.sync_once()
            except TRANSIENT as err:
                log.warning("Sync failed: %s", err)
            stop.wait(max(0.0, SYNC_PERIOD - (time.monotonic() - started)))

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop every pod process: TERM, a short grace, then KILL."""
        for run in self.runs.values():
            for container in run.all_containers():
                container.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(r.any_running() for r in self.runs.values()):
            time.sleep(0.1)
        for run in list(self.runs.values()):
            self._forget(run, kill=True)
