"""Debian packages the tooling needs, installed with apt the first time they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def ensure_commands(packages: dict[str, str]) -> None:
    """Install, from Debian's packages, each package whose command (the key) is missing."""
    missing = sorted(
        {package for command, package in packages.items() if not shutil.which(command)}
    )
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"Installing {' '.join(missing)} from Debian's packages", file=sys.stderr, flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", *missing],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
