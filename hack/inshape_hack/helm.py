"""Run the project's helm (built by gotools) with the cluster's Kubernetes version pinned.

A Go-built helm assumes Kubernetes 1.20 when it renders offline, so `template` and `lint`
always get an explicit `--kube-version` (the pinned k8s.io/kubernetes) unless one is given.
`python -m inshape_hack.helm template charts/inshape` is what the Makefile and tests call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from inshape_hack import gotools

OFFLINE_COMMANDS = ("template", "lint")


def with_kube_version(args: Sequence[str], kube_version: str) -> list[str]:
    """`args` plus `--kube-version` for the commands that render without a cluster."""
    out = list(args)
    command = next((a for a in out if not a.startswith("-")), "")
    given = any(a == "--kube-version" or a.startswith("--kube-version=") for a in out)
    if command in OFFLINE_COMMANDS and not given:
        out.append(f"--kube-version={kube_version}")
    return out


def helm_binary() -> str:
    tool = next(t for t in gotools.TOOLS if t.name == "helm")
    return str(gotools.build(tool, quiet=True))


def main(argv: list[str] | None = None) -> int:
    args = with_kube_version(sys.argv[1:] if argv is None else argv, gotools.kube_version())
    binary = helm_binary()
    os.execv(binary, [binary, *args])


if __name__ == "__main__":
    sys.exit(main())
