"""The kind tier runs only where Docker works; everywhere else it skips, saying why."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def docker_unavailable() -> str | None:
    """Why Docker cannot run kind here, or None when it can."""
    docker = shutil.which("docker")
    if docker is None:
        return "no `docker` on PATH (the kind tier needs Docker and kind)"
    try:
        info = subprocess.run(
            [docker, "info"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out: the Docker daemon does not answer"
    if info.returncode != 0:
        reason = (info.stderr or info.stdout).strip().splitlines()
        return f"`docker info` failed: {reason[-1] if reason else info.returncode}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    kind_items = [item for item in items if item.get_closest_marker("kind")]
    if not kind_items:
        return
    reason = docker_unavailable()
    if reason is not None:
        for item in kind_items:
            item.add_marker(pytest.mark.skip(reason=reason))
