"""Debian bookworm root filesystems from Debian's packages (debootstrap), as local images.

Where no registry is reachable, every base image the project needs (kind's node base, the
Python base, the JRE base for Kafka, a slim iptables base for kube-proxy) starts here. Each is
cached as a docker image tagged with a hash of its inputs, so a second build is a lookup.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.debian import ensure_commands
from inshape_hack.docker import DockerEndpoint, docker_cli
from inshape_hack.paths import cache_dir

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_PREFIX = "localhost/inshape"


@dataclass(frozen=True)
class RootfsSpec:
    """One debootstrapped filesystem: its packages and the docker image it becomes."""

    name: str
    packages: tuple[str, ...]
    changes: tuple[str, ...] = ()  # Dockerfile instructions for `docker import --change`

    def input_hash(self) -> str:
        """Hash of what decides the debootstrapped tree."""
        return _short_hash("\n".join([SUITE, *self.packages]))

    def image(self, extra: str = "") -> str:
        """Image name; ``extra`` is whatever else went in (the hash of a `prepare` step)."""
        return f"{IMAGE_PREFIX}/{self.name}:{_short_hash(self.input_hash(), *self.changes, extra)}"


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources), else the CDN."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        for line in sources.read_text().splitlines():
            words = line.split()
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return DEFAULT_MIRROR


def image_exists(docker: DockerEndpoint, image: str) -> bool:
    done = subprocess.run(
        [docker_cli(), "image", "inspect", "--format", "{{.Id}}", image],
        env=docker.env(),
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def debootstrap(target: Path, packages: tuple[str, ...]) -> None:
    ensure_commands({"debootstrap": "debootstrap"})
    argv = ["debootstrap", "--variant=minbase"]
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += [SUITE, str(target), debian_mirror()]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def slim(root: Path) -> None:
    """What Debian's own images drop: package caches and lists, logs, the machine id."""
    subprocess.run(
        ["sh", "-c", "rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* var/log/*"],
        cwd=root,
        check=True,
    )
    machine_id = root / "etc" / "machine-id"
    if machine_id.exists():
        machine_id.write_text("")


def rootfs_tar(spec: RootfsSpec) -> Path:
    """The debootstrapped tree of ``spec`` as a tarball in the tool cache (built once)."""
    tar = cache_dir() / "rootfs" / f"{spec.name}-{spec.input_hash()}.tar"
    if tar.exists():
        return tar
    tar.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"rootfs: debootstrap {spec.name} ({len(spec.packages)} packages)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{spec.name}-", dir=tar.parent) as tmp:
        root = Path(tmp) / "root"
        debootstrap(root, spec.packages)
        slim(root)
        partial = tar.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tar)  # atomic: a killed build leaves no "cached" tarball
    print(f"rootfs: {tar.name} in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return tar


def import_tar(docker: DockerEndpoint, tar: Path, image: str, changes: tuple[str, ...]) -> None:
    """`docker import` a rootfs tarball with Dockerfile changes (ENV, ENTRYPOINT, USER...)."""
    argv = [docker_cli(), "import"]
    for change in changes:
        argv += ["--change", change]
    argv += [str(tar), image]
    subprocess.run(argv, env=docker.env(), check=True, stdout=subprocess.DEVNULL)


def ensure_rootfs_image(
    docker: DockerEndpoint,
    spec: RootfsSpec,
    prepare: Callable[[Path], None] | None = None,
    extra_hash: str = "",
) -> str:
    """The image for ``spec``, cached by its input hash; ``prepare`` edits the tree first."""
    image = spec.image(extra_hash)
    if image_exists(docker, image):
        return image
    tar = rootfs_tar(spec)
    if prepare is None:
        import_tar(docker, tar, image, spec.changes)
        return image
    with tempfile.TemporaryDirectory(prefix=f"prep-{spec.name}-", dir=tar.parent) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        subprocess.run(["tar", "-C", str(root), "-xf", str(tar)], check=True)
        prepare(root)
        slim(root)
        prepared = Path(tmp) / "prepared.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(prepared), "."], check=True)
        import_tar(docker, prepared, image, spec.changes)
    return image
