"""What Pod Security `restricted` asks of a pod, for the manifests the dev harness writes."""

from __future__ import annotations

ENFORCE_RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"  # a namespace label
NONROOT_UID = 65532  # the project's image's user (Dockerfile)

# A container `restricted` admits, running as the image's user on a read-only root.
RESTRICTED_CONTAINER: dict[str, object] = {
    "runAsNonRoot": True,
    "runAsUser": NONROOT_UID,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
