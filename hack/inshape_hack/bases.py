"""The Debian base filesystems the offline images start from (see rootfs.py)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from inshape_hack.rootfs import RootfsSpec, rootfs_tar

PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# A kind node: what kind's images/base/Dockerfile installs, from Debian's packages (containerd,
# runc and the CNI plugins included, so nothing is fetched from elsewhere).
KIND_NODE = RootfsSpec(
    "kind-node-rootfs",
    (
        "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2",
        "ethtool", "util-linux", "mount", "kmod", "libseccomp2", "pigz", "fuse-overlayfs",
        "bash", "ca-certificates", "curl", "jq", "procps", "containerd", "runc",
        "containernetworking-plugins", "socat", "ebtables", "ipset", "patch",
    ),
)  # fmt: skip

# kube-proxy's base: the netfilter tools it shells out to, nothing else.
IPTABLES = RootfsSpec(
    "debian-iptables",
    ("iptables", "nftables", "conntrack", "ipset", "iproute2"),
    (PATH_ENV,),
)

# The Python base for the project's Dockerfile where python:3.11-slim-bookworm can't be pulled:
# Debian's python3 is 3.11, as in the public image.
PYTHON = RootfsSpec(
    "python",
    ("python3", "python3-venv", "python-is-python3", "ca-certificates"),
    (PATH_ENV, "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)

# The Kafka broker's runtime: Debian's JRE 17 (the broker jars come from Maven Central).
JRE = RootfsSpec(
    "jre",
    ("openjdk-17-jre-headless", "ca-certificates"),
    (PATH_ENV, "ENV LANG=C.UTF-8"),
)

ALL = (KIND_NODE, IPTABLES, PYTHON, JRE)


def prefetch() -> list[Path]:
    """Debootstrap every base into the cache, side by side (they wait on the network)."""
    with ThreadPoolExecutor(max_workers=len(ALL)) as pool:
        return list(pool.map(rootfs_tar, ALL))


def main() -> int:
    for tar in prefetch():
        print(tar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
