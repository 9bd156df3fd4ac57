"""Free loopback ports for the services the dev tooling starts."""

from __future__ import annotations

import socket

from inshape_hack.polling import wait_until


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it, so parallel runs don't collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    """Block until something accepts connections on host:port, or raise TimeoutError."""

    def connects() -> bool:
        with socket.create_connection((host, port), timeout=1):
            return True

    wait_until(connects, timeout, f"{what} listens on {host}:{port}", retry_on=(OSError,))
