"""Pod phase, conditions and container statuses built by the local kubelet."""

from __future__ import annotations

from typing import Any

import pytest

from inshape_hack.kubelet.status import (
    ContainerState,
    Terminated,
    condition,
    container_status,
    pod_phase,
    pod_status,
    termination_message,
)

T0 = "2025-01-01T00:00:00Z"
T1 = "2025-01-01T00:01:00Z"


def running() -> ContainerState:
    return ContainerState("c", "img", running_since=T0, ready=True)


def exited(code: int) -> ContainerState:
    return ContainerState("c", "img", terminated=Terminated(code, "x", "", T0, T1))


def backing_off(code: int) -> ContainerState:
    return ContainerState(
        "c",
        "img",
        last_terminated=Terminated(code, "x", "", T0, T1),
        waiting_reason="CrashLoopBackOff",
        restart_count=1,
    )


@pytest.mark.parametrize(
    ("states", "policy", "phase"),
    [
        ([ContainerState("c", "img")], "Always", "Pending"),
        ([running()], "Never", "Running"),
        ([exited(0)], "Never", "Succeeded"),
        ([exited(3)], "Never", "Failed"),
        ([exited(0), exited(1)], "Never", "Failed"),
        ([exited(0)], "OnFailure", "Succeeded"),
        ([backing_off(1)], "OnFailure", "Running"),
        ([exited(0)], "Always", "Running"),
        ([running(), exited(0)], "Never", "Running"),
        ([running(), ContainerState("d", "img")], "Always", "Pending"),
    ],
)
def test_phase(states: list[ContainerState], policy: str, phase: str) -> None:
    assert pod_phase(states, policy) == phase


def test_terminated_container_status_carries_exit_code_and_message() -> None:
    state = ContainerState(
        "c",
        "img",
        restart_count=2,
        terminated=Terminated(7, "Error", "boom", T0, T1, "inshape://42"),
        last_terminated=Terminated(1, "Error", "", T0, T0),
    )
    status = container_status(state)
    assert status["state"] == {
        "terminated": {
            "exitCode": 7,
            "reason": "Error",
            "message": "boom",
            "startedAt": T0,
            "finishedAt": T1,
            "containerID": "inshape://42",
        }
    }
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["restartCount"] == 2
    assert status["started"] is False


def test_condition_transition_time_moves_only_on_flip() -> None:
    first = condition([], "Ready", False, T0)
    same = condition([first], "Ready", False, T1)
    flipped = condition([same], "Ready", True, T1)
    assert same["lastTransitionTime"] == T0
    assert flipped["lastTransitionTime"] == T1


def test_pod_status_ready_only_when_all_containers_ready() -> None:
    not_ready = ContainerState("d", "img", running_since=T0, ready=False)
    status = pod_status(
        [running(), not_ready],
        "Always",
        pod_ip="127.0.0.5",
        host_ip="127.0.0.1",
        start_time=T0,
        previous_conditions=[],
        now=T1,
    )
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == "False"
    assert status["podIP"] == "127.0.0.5"
    assert status["phase"] == "Running"
    done = pod_status(
        [exited(0)],
        "Never",
        pod_ip="127.0.0.5",
        host_ip="127.0.0.1",
        start_time=T0,
        previous_conditions=[],
        now=T1,
    )
    assert next(c for c in done["conditions"] if c["type"] == "Ready")["reason"] == "PodCompleted"


def test_termination_message_prefers_file_then_log_on_error() -> None:
    log = "\n".join(f"line {i}" for i in range(100))
    assert termination_message("written", log, 1, "FallbackToLogsOnError") == "written"
    fallback = termination_message("", log, 1, "FallbackToLogsOnError")
    assert fallback.startswith("line 20") and fallback.endswith("line 99")
    assert termination_message("", log, 0, "FallbackToLogsOnError") == ""
    assert termination_message("", log, 1, "File") == ""


def test_pod_is_pending_while_initializing_and_failed_when_init_fails_for_good() -> None:
    waiting = ContainerState("app", "img", waiting_reason="PodInitializing")
    common: dict[str, Any] = {
        "pod_ip": "127.0.0.5",
        "host_ip": "127.0.0.1",
        "start_time": T0,
        "previous_conditions": [],
        "now": T1,
    }
    pending = pod_status([waiting], "Never", init_states=[running()], initialized=False, **common)
    assert pending["phase"] == "Pending"
    assert pending["initContainerStatuses"][0]["state"] == {"running": {"startedAt": T0}}
    initialized = next(c for c in pending["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    failed = pod_status([waiting], "Never", init_states=[exited(1)], initialized=False, **common)
    assert failed["phase"] == "Failed"
    retrying = pod_status(
        [waiting], "OnFailure", init_states=[exited(1)], initialized=False, **common
    )
    assert retrying["phase"] == "Pending"
