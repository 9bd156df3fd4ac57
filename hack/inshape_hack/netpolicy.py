"""NetworkPolicy enforcement on the cluster of the offline node image.

kind's kindnetd enforces NetworkPolicies (it embeds kube-network-policies); the offline node
image cannot carry it (nodeimage.py) and routes pods with a static ptp CNI instead, which
accepts NetworkPolicies and enforces none. kube-network-policies itself needs nftables'
``queue`` statement, which this kernel lacks (CONFIG_NFT_QUEUE unset), so the stand-in is
kube-router's network-policy controller alone: iptables and ipsets, built from the Go module
proxy (gotools.py) onto the Debian iptables base kube-proxy already uses, and run as a
DaemonSet (hack/kind/network-policy.yaml). Where the published node image is used, kindnetd
enforces policies itself and none of this runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from inshape_hack import bases, gotools, nodeimage
from inshape_hack.docker import DockerEndpoint
from inshape_hack.paths import HACK_DIR
from inshape_hack.rootfs import IMAGE_PREFIX, ensure_rootfs_image, image_exists

MANIFEST = HACK_DIR / "kind" / "network-policy.yaml"
DAEMONSET = "daemonset/inshape-network-policy"
NAMESPACE = "kube-system"
IMAGE_PLACEHOLDER = "image: IMAGE"


def image_tag(binary: Path, base: str) -> str:
    """The image's name: the binary's cache name (version + build hash) and the base decide it."""
    digest = hashlib.sha256(f"{binary.name}\n{base}".encode()).hexdigest()[:12]
    return f"{IMAGE_PREFIX}/kube-router:{digest}"


def ensure_image(docker: DockerEndpoint) -> str:
    """kube-router on the iptables base, built once and then found by its tag."""
    binary = gotools.build(gotools.tool_named("kube-router"), quiet=True)
    base = ensure_rootfs_image(docker, bases.IPTABLES)
    tag = image_tag(binary, base)
    if not image_exists(docker, tag):
        nodeimage.binary_image(
            docker,
            tag,
            base,
            binary,
            "/usr/local/bin/kube-router",
            'ENTRYPOINT ["/usr/local/bin/kube-router"]',
        )
    return tag


def manifest(image: str, template: str | None = None) -> str:
    """The DaemonSet and its read-only RBAC with ``image`` filled in."""
    text = MANIFEST.read_text() if template is None else template
    if text.count(IMAGE_PLACEHOLDER) != 1:
        raise ValueError(f"{MANIFEST.name} must name its image once as {IMAGE_PLACEHOLDER!r}")
    return text.replace(IMAGE_PLACEHOLDER, f"image: {image}")
