"""Pod status from what the kubelet saw of its containers: pure functions, as the API wants it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str
    container_id: str = ""

    def to_api(self) -> JSON:
        out: JSON = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.message:
            out["message"] = self.message
        if self.container_id:
            out["containerID"] = self.container_id
        return out


@dataclass
class ContainerState:
    """What is known of one container right now; `runtime` keeps it up to date."""

    name: str
    image: str
    restart_count: int = 0
    running_since: str | None = None
    container_id: str = ""
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    ready: bool = False

    def state_api(self) -> JSON:
        if self.running_since is not None:
            return {"running": {"startedAt": self.running_since}}
        if self.terminated is not None:
            return {"terminated": self.terminated.to_api()}
        waiting: JSON = {"reason": self.waiting_reason}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}


def terminated_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def container_status(state: ContainerState) -> JSON:
    return {
        "name": state.name,
        "image": state.image,
        "imageID": "",
        "containerID": state.container_id,
        "ready": state.ready,
        "started": state.running_since is not None,
        "restartCount": state.restart_count,
        "state": state.state_api(),
        "lastState": (
            {"terminated": state.last_terminated.to_api()} if state.last_terminated else {}
        ),
    }


def pod_phase(states: list[ContainerState], restart_policy: str) -> str:
    """The kubelet's getPhase for pods without init containers."""
    running = stopped = succeeded = waiting = 0
    for state in states:
        if state.running_since is not None:
            running += 1
        elif state.terminated is not None:
            stopped += 1
            succeeded += state.terminated.exit_code == 0
        elif state.last_terminated is not None:
            stopped += 1  # waiting to restart: counts as having run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Running" if restart_policy == "OnFailure" else "Failed"


def condition(previous: list[JSON], kind: str, status: bool, now: str, reason: str = "") -> JSON:
    """One pod condition; lastTransitionTime moves only when the status flips."""
    value = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    moved = old is None or old.get("status") != value
    out: JSON = {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": now if moved or old is None else old.get("lastTransitionTime", now),
    }
    if reason:
        out["reason"] = reason
    return out


def init_failed(init_states: list[ContainerState], restart_policy: str) -> bool:
    """An init container that failed for good: only under restartPolicy Never."""
    return restart_policy == "Never" and any(
        s.terminated is not None and s.terminated.exit_code != 0 for s in init_states
    )


def pod_status(
    states: list[ContainerState],
    restart_policy: str,
    *,
    pod_ip: str,
    host_ip: str,
    start_time: str,
    previous_conditions: list[JSON],
    now: str,
    init_states: list[ContainerState] | None = None,
    initialized: bool = True,
) -> JSON:
    """The whole status the kubelet writes with one merge patch."""
    init_states = init_states or []
    if initialized:
        phase = pod_phase(states, restart_policy)
    else:
        phase = "Failed" if init_failed(init_states, restart_policy) else "Pending"
    all_ready = bool(states) and all(s.ready for s in states)
    not_ready = (
        ""
        if all_ready
        else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
    )
    conditions = [
        condition(previous_conditions, "PodReadyToStartContainers", True, now),
        condition(
            previous_conditions,
            "Initialized",
            initialized,
            now,
            "" if initialized else "ContainersNotInitialized",
        ),
        condition(previous_conditions, "Ready", all_ready, now, not_ready),
        condition(previous_conditions, "ContainersReady", all_ready, now, not_ready),
        condition(previous_conditions, "PodScheduled", True, now),
    ]
    status: JSON = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": [container_status(s) for s in states],
    }
    if init_states:
        status["initContainerStatuses"] = [container_status(s) for s in init_states]
    return status


def termination_message(
    written: str, log_tail: str, exit_code: int, policy: str, limit: int = 4096
) -> str:
    """What the container wrote to its termination-message file, else (if asked) its log tail."""
    if written.strip():
        return written[:limit]
    if policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines()[-80:]
        return "\n".join(lines)[-2048:]
    return ""
