"""From a cluster's kubeconfig file to what talks to that cluster, in one place: the environment
of a process that reaches it (kubectl, helm, the operator on the host) and a Python API client.
The file itself is written by kindcluster.py (`kind get kubeconfig`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import kubernetes


def kube_env(kubeconfig: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) pointed at ``kubeconfig``, with kubectl's
    discovery cache beside it, so each cluster gets its own."""
    return {
        **(os.environ if base is None else base),
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(kubeconfig.parent / "kubectl-cache"),
    }


def api_client(kubeconfig: Path, pool_size: int = 16) -> kubernetes.client.ApiClient:
    """A client of the cluster ``kubeconfig`` names, with room for ``pool_size`` connections
    (one per concurrent watch or request)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=config
    )
    config.connection_pool_maxsize = pool_size
    return kubernetes.client.ApiClient(config)
