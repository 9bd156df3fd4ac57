"""Smaller kubelet pieces: IP pool, tokens policy, log tailing, probe ports, node taints."""

from __future__ import annotations

import pytest

from inshape_hack.kubelet.agent import grace_seconds, wants_binding
from inshape_hack.kubelet.ippool import IpPool
from inshape_hack.kubelet.logserver import parse_query, tail_lines
from inshape_hack.kubelet.node import without_not_ready_taint
from inshape_hack.kubelet.probes import resolve_port
from inshape_hack.kubelet.runtime import should_restart
from inshape_hack.kubelet.tokens import automount


def test_ip_pool_hands_out_unique_ips_and_reuses_released_ones() -> None:
    pool = IpPool()
    first, second = pool.allocate("a"), pool.allocate("b")
    assert (first, second) == ("127.0.0.2", "127.0.0.3")
    pool.release(first)
    assert pool.allocate("c") == "127.0.0.2"
    assert pool.owner("127.0.0.3") == "b"


def test_ip_pool_skips_dot_255_and_dot_0() -> None:
    pool = IpPool(first="127.0.0.254")
    assert [pool.allocate(str(i)) for i in range(3)] == ["127.0.0.254", "127.0.1.1", "127.0.1.2"]


@pytest.mark.parametrize(
    ("pod_flag", "sa_flag", "expected"),
    [(None, None, True), (False, None, False), (None, False, False), (True, False, True)],
)
def test_automount_pod_setting_wins(
    pod_flag: bool | None, sa_flag: bool | None, expected: bool
) -> None:
    pod = {"spec": {} if pod_flag is None else {"automountServiceAccountToken": pod_flag}}
    sa = {} if sa_flag is None else {"automountServiceAccountToken": sa_flag}
    assert automount(pod, sa) is expected


def test_tail_lines_and_query() -> None:
    assert tail_lines(b"a\nb\nc", 2) == b"b\nc"
    assert tail_lines(b"a\nb\n", 5) == b"a\nb\n"
    assert tail_lines(b"a\n", 0) == b""
    query = parse_query("follow=true&tailLines=10&previous=false")
    assert (query.follow, query.tail_lines, query.previous, query.limit_bytes) == (
        True,
        10,
        False,
        None,
    )


def test_probe_port_by_name_or_number() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(9000, container) == 9000
    with pytest.raises(ValueError, match="grpc"):
        resolve_port("grpc", container)


def test_restart_policy() -> None:
    assert should_restart("Always", 0)
    assert should_restart("OnFailure", 2) and not should_restart("OnFailure", 0)
    assert not should_restart("Never", 1)


def test_grace_period_prefers_deletion_grace() -> None:
    pod = {
        "metadata": {"deletionGracePeriodSeconds": 3},
        "spec": {"terminationGracePeriodSeconds": 30},
    }
    assert grace_seconds(pod) == 3
    assert grace_seconds({"metadata": {}, "spec": {}}) == 30


def test_binding_only_for_unscheduled_default_scheduler_pods() -> None:
    pod: dict[str, dict[str, str]] = {"metadata": {}, "spec": {}}
    assert wants_binding(pod)
    assert not wants_binding({"metadata": {}, "spec": {"nodeName": "n"}})
    assert not wants_binding({"metadata": {}, "spec": {"schedulerName": "other"}})
    assert not wants_binding({"metadata": {"deletionTimestamp": "x"}, "spec": {}})


def test_not_ready_taint_removed_others_kept() -> None:
    taints = [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoSchedule"},
    ]
    assert without_not_ready_taint(taints) == [{"key": "dedicated", "effect": "NoSchedule"}]
