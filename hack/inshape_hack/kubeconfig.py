"""Kubeconfig files for the local cluster's users (admin, controller manager)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

JSON = dict[str, Any]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def client_cert_kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> JSON:
    """A self-contained kubeconfig (data embedded, so it can be copied anywhere)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "inshape-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
            }
        ],
        "contexts": [
            {"name": "inshape-local", "context": {"cluster": "inshape-local", "user": user}}
        ],
        "current-context": "inshape-local",
    }


def write_kubeconfig(path: Path, config: JSON) -> Path:
    # JSON is YAML, and kubectl, client-go and the Python client all read it.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
