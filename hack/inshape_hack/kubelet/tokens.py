"""Service-account credentials for a pod: a bound TokenRequest token in a kubeconfig file.

Pods cannot get the projected token volume at /var/run/secrets/..., so each one gets a
kubeconfig (exported as KUBECONFIG) whose user is its service account, bound to the pod:
the API server rejects the token once the pod is gone, and RBAC applies to what it does.
"""

from __future__ import annotations

from typing import Any

from inshape_hack.kubelet.rest import Rest

JSON = dict[str, Any]
TOKEN_SECONDS = 24 * 3600


def automount(pod: JSON, service_account: JSON) -> bool:
    """The pod's automountServiceAccountToken wins over its service account's; default true."""
    pod_says = pod.get("spec", {}).get("automountServiceAccountToken")
    if pod_says is not None:
        return bool(pod_says)
    sa_says = service_account.get("automountServiceAccountToken")
    return True if sa_says is None else bool(sa_says)


def token_request(pod: JSON, seconds: int = TOKEN_SECONDS) -> JSON:
    meta = pod["metadata"]
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def kubeconfig(server: str, ca_data_b64: str, token: str, namespace: str, user: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "inshape-local",
                "cluster": {"server": server, "certificate-authority-data": ca_data_b64},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "pod",
                "context": {"cluster": "inshape-local", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "pod",
    }


def pod_token(rest: Rest, pod: JSON) -> tuple[str, str] | None:
    """(service account name, token) for the pod, or None when it must not get one."""
    meta = pod["metadata"]
    name = pod.get("spec", {}).get("serviceAccountName") or "default"
    base = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{name}"
    if not automount(pod, rest.get(base)):
        return None
    status = rest.post(f"{base}/token", token_request(pod)).get("status", {})
    return name, str(status["token"])
