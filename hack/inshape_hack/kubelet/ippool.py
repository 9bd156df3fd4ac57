"""Unique loopback pod IPs: Linux routes all of 127.0.0.0/8 to lo, so each pod gets its own."""

from __future__ import annotations

import ipaddress


class IpPool:
    """Hands out 127.0.0.2, 127.0.0.3, ... (lowest free first) and takes them back."""

    def __init__(self, first: str = "127.0.0.2", size: int = 250 * 256) -> None:
        self._first = int(ipaddress.IPv4Address(first))
        self._size = size
        self._owners: dict[int, str] = {}

    def allocate(self, owner: str) -> str:
        for offset in range(self._size):
            candidate = self._first + offset
            if (candidate & 0xFF) in (0, 255):
                continue  # skip network/broadcast-looking addresses
            if candidate not in self._owners:
                self._owners[candidate] = owner
                return str(ipaddress.IPv4Address(candidate))
        raise RuntimeError("loopback pod IP range exhausted")

    def release(self, ip: str) -> None:
        self._owners.pop(int(ipaddress.IPv4Address(ip)), None)

    def owner(self, ip: str) -> str | None:
        return self._owners.get(int(ipaddress.IPv4Address(ip)))
