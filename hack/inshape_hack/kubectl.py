"""kubectl bound to one cluster (and optionally one namespace), for tooling, tests and benches."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inshape_hack.kubeconfig import kube_env

KUBECTL_SECONDS = 300


@dataclass(frozen=True)
class KubectlRunner:
    """`runner(*args, stdin=None, check=True) -> stdout`, with a few typed conveniences."""

    binary: Path
    kubeconfig: Path
    namespace: str | None = None

    def env(self) -> dict[str, str]:
        return kube_env(self.kubeconfig)

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_SECONDS,
    ) -> str:
        done = self.run(*args, stdin=stdin, timeout=timeout)
        if check and done.returncode != 0:
            command = " ".join(str(a) for a in done.args)
            raise AssertionError(f"{command} failed: {done.stderr or done.stdout}")
        return done.stdout if check else done.stdout + done.stderr

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = KUBECTL_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *(["-n", self.namespace] if self.namespace else []), *args]
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env(), timeout=timeout,
            check=False,
        )  # fmt: skip

    def in_namespace(self, namespace: str | None) -> KubectlRunner:
        return KubectlRunner(self.binary, self.kubeconfig, namespace)

    def apply(self, objects: Iterable[dict[str, Any]], *flags: str) -> str:
        document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        return self("apply", *flags, "-f", "-", stdin=json.dumps(document))

    def json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ... -o json` as a dict; {} when the object is not there (yet)."""
        text = self.run(*args, "-o", "json", "--ignore-not-found").stdout.strip()
        if not text.startswith("{"):
            return {}
        return dict(json.loads(text))
