"""The project's image, built from its Dockerfile (BuildKit), cached by a hash of its inputs.

``ensure_project_image(docker)`` returns ``inshape:<chart appVersion>``. The image carries a
label with the hash of what goes into it (Dockerfile, .dockerignore, pyproject.toml, README,
the sources of api/, jobs/ and operator/, the compiled decoder's wheel in .build/native/, the
base image's id), so a second call with nothing changed is a lookup. The wheel is built first
(native_wheel, cached by the crate's source hash; skipped without cargo). The base is the
public ``python:3.11-slim-bookworm`` where it is present or can be pulled, else a Debian
bookworm Python made from Debian's packages (bases.PYTHON). Where the host's pip trusts a
custom CA bundle, the build gets it as a BuildKit secret: it is mounted for the pip steps only
and lands in no layer.

    python -m inshape_hack.images       # build (or find) the image and print its name
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from inshape_hack import native_wheel
from inshape_hack.bases import PYTHON
from inshape_hack.docker import DockerEndpoint, ensure_docker, pull
from inshape_hack.paths import HACK_DIR, REPO_ROOT
from inshape_hack.rootfs import ensure_rootfs_image

PUBLIC_BASE = "python:3.11-slim-bookworm"
IMAGE_REPO = "inshape"
INPUTS_LABEL = "dev.inshape.build-inputs"
# The Dockerfile's secret id; it is used as PIP_CERT inside the build when given.
CA_SECRET_ID = "pip_ca"
# Files at the root that the Dockerfile copies or reads (with .dockerignore, which decides the
# context), and the source trees it copies whole.
ROOT_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
SOURCE_DIRS = ("api", "jobs", "operator")
# Built on the host before the image (native_wheel: the compiled decoder), then copied whole.
BUILT_DIRS = (".build/native",)
# Never in the context (.dockerignore): cargo's output, caches.
IGNORED_PARTS = ("__pycache__", "target")
STDERR_FD = 2
# Docker CLIs from 23.0 on build with BuildKit only through the buildx plugin; older ones
# have it built in (DOCKER_BUILDKIT=1).
FIRST_BUILDX_ONLY_MAJOR = 23


def source_files(root: Path) -> Iterator[Path]:
    """The files the build context takes from ``root``, sorted (.dockerignore drops caches)."""
    for name in ROOT_INPUTS:
        if (root / name).is_file():
            yield root / name
    for top in (*SOURCE_DIRS, *BUILT_DIRS):
        for path in sorted((root / top).rglob("*")):
            parts = path.relative_to(root).parts
            if path.is_file() and not set(parts) & set(IGNORED_PARTS) and path.suffix != ".pyc":
                yield path


def input_hash(root: Path, base_id: str) -> str:
    """Hash of every build input: each file's path and content, and the base image's id."""
    digest = hashlib.sha256(base_id.encode())
    for path in source_files(root):
        digest.update(b"\0" + path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def app_version(chart_yaml: Path) -> str:
    """The chart's appVersion: the tag the chart's default values run."""
    chart = yaml.safe_load(chart_yaml.read_text())
    return str(chart["appVersion"])


def pip_ca_bundle(env: Mapping[str, str]) -> Path | None:
    """The CA bundle the host's pip is told to trust (PIP_CERT, REQUESTS_CA_BUNDLE), if any."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE"):
        value = env.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return None


def client_major(version_output: str) -> int | None:
    """The major version in `docker --version` output ("Docker version 20.10.24+dfsg1, ...")."""
    found = re.search(r"version (\d+)\.", version_output)
    return int(found.group(1)) if found else None


def docker_clis(search_path: str) -> Iterator[str]:
    """Every distinct `docker` executable on ``search_path`` (a PATH value), in its order; never
    the kind shim (hack/kind/docker-shim), which only stands in front of docker for kind."""
    seen: set[Path] = {(HACK_DIR / "kind" / "docker-shim").resolve()}
    for entry in search_path.split(os.pathsep):
        found = shutil.which("docker", path=entry) if entry else None
        if found and Path(found).resolve() not in seen:
            seen.add(Path(found).resolve())
            yield found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def buildkit_cli() -> str:
    """A docker CLI that builds with BuildKit: one with buildx, or one from before 23.0.

    A machine can have both a recent CLI without the buildx plugin (which then refuses
    DOCKER_BUILDKIT=1) and Debian's docker.io 20.10 CLI, which has BuildKit built in.
    """
    for cli in docker_clis(os.environ.get("PATH", "")):
        if _run([cli, "buildx", "version"]).returncode == 0:
            return cli
        major = client_major(_run([cli, "--version"]).stdout)
        if major is not None and major < FIRST_BUILDX_ONLY_MAJOR:
            return cli
    raise RuntimeError(
        "no docker CLI on PATH can build with BuildKit: install the buildx plugin "
        "(docker-buildx-plugin) or Debian's docker.io"
    )


def _log(message: str, started: float) -> None:
    print(f"images: {message} ({time.monotonic() - started:.1f}s)", file=sys.stderr, flush=True)


def image_id(docker: DockerEndpoint, cli: str, image: str) -> str:
    done = subprocess.run(
        [cli, "image", "inspect", "--format", "{{.Id}}", image],
        env=docker.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def base_image(docker: DockerEndpoint, cli: str) -> str:
    """The public Python base where it is here or can be pulled, else the Debian-built one."""
    started = time.monotonic()
    base = PUBLIC_BASE if pull(docker, PUBLIC_BASE, cli) else ensure_rootfs_image(docker, PYTHON)
    _log(f"base {base}", started)
    return base


def labelled(docker: DockerEndpoint, cli: str, inputs: str) -> str | None:
    """The id of an image already built from these inputs, if any."""
    done = subprocess.run(
        [cli, "image", "ls", "--quiet", "--filter", f"label={INPUTS_LABEL}={inputs}"],
        env=docker.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    ids = done.stdout.split()
    return ids[0] if ids else None


def build_argv(
    cli: str, root: Path, *, image: str, base: str, inputs: str, ca: Path | None
) -> list[str]:
    """`docker build` of ``root`` as ``image`` on ``base``, labelled with its inputs' hash."""
    argv = ["nice", cli, "build", "--progress=plain", "--tag", image]
    argv += ["--build-arg", f"PYTHON_IMAGE={base}", "--label", f"{INPUTS_LABEL}={inputs}"]
    if ca is not None:
        argv += ["--secret", f"id={CA_SECRET_ID},src={ca}"]
    return [*argv, str(root)]


def ensure_project_image(docker: DockerEndpoint, root: Path = REPO_ROOT) -> str:
    """``inshape:<appVersion>`` built from ``root``'s Dockerfile, or found already built."""
    started = time.monotonic()
    native_wheel.ensure_wheel(root)
    cli = buildkit_cli()
    image = f"{IMAGE_REPO}:{app_version(root / 'charts' / 'inshape' / 'Chart.yaml')}"
    base = base_image(docker, cli)
    inputs = input_hash(root, image_id(docker, cli, base))
    found = labelled(docker, cli, inputs)
    if found is not None:
        # Built before, perhaps under another tag (the appVersion moved): tag it, no build.
        subprocess.run([cli, "tag", found, image], env=docker.env(), check=True)
        _log(f"{image} cached (inputs {inputs})", started)
        return image
    ca = pip_ca_bundle(os.environ)
    env = {**docker.env(), "DOCKER_BUILDKIT": "1"}
    # The progress goes to fd 2 (whatever sys.stderr is): stdout carries only the image name.
    subprocess.run(
        build_argv(cli, root, image=image, base=base, inputs=inputs, ca=ca),
        env=env,
        check=True,
        stdout=STDERR_FD,
    )
    _log(f"{image} built (inputs {inputs}, CA secret: {'yes' if ca else 'no'})", started)
    prune_untagged(docker, cli)
    return image


def prune_untagged(docker: DockerEndpoint, cli: str) -> None:
    """Drop earlier builds the new one untagged (a dependency change leaves ~1 GB each); the
    build cache keeps their layers, so going back to one rebuilds quickly."""
    subprocess.run(
        [cli, "image", "prune", "--force", "--filter", f"label={INPUTS_LABEL}"],
        env=docker.env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    print(ensure_project_image(ensure_docker()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
