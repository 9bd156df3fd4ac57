"""Readiness probes (httpGet, tcpSocket, exec) against a pod's loopback IP."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


def timing(probe: JSON) -> ProbeTiming:
    """The probe's timing with the API's defaults."""
    return ProbeTiming(
        initial_delay=float(probe.get("initialDelaySeconds", 0)),
        period=float(probe.get("periodSeconds", 10)),
        timeout=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )


def resolve_port(port: int | str, container: JSON) -> int:
    """A probe port may name one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def run_probe(probe: JSON, container: JSON, pod_ip: str, env: Mapping[str, str], cwd: str) -> bool:
    """One probe attempt: True on success. Never raises for an unhealthy target."""
    limit = timing(probe).timeout
    try:
        if "httpGet" in probe:
            return _http(probe["httpGet"], container, pod_ip, limit)
        if "tcpSocket" in probe:
            target = probe["tcpSocket"]
            port = resolve_port(target["port"], container)
            with socket.create_connection((target.get("host") or pod_ip, port), timeout=limit):
                return True
        if "exec" in probe:
            result = subprocess.run(
                probe["exec"]["command"],
                env=dict(env),
                cwd=cwd,
                timeout=limit,
                capture_output=True,
                check=False,
            )
            return result.returncode == 0
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException):
        return False
    return False


def _http(action: JSON, container: JSON, pod_ip: str, limit: float) -> bool:
    host = action.get("host") or pod_ip
    port = resolve_port(action["port"], container)
    conn: http.client.HTTPConnection
    if action.get("scheme", "HTTP").upper() == "HTTPS":
        # The kubelet does not verify probe certificates either.
        conn = http.client.HTTPSConnection(
            host, port, timeout=limit, context=ssl._create_unverified_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=limit)
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    try:
        conn.request("GET", action.get("path", "/"), headers=headers)
        return 200 <= conn.getresponse().status < 400
    finally:
        conn.close()
