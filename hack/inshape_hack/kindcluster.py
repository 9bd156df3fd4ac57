"""The project's kind cluster: the tools, the node image and the cluster, created or reused.

``prepare_kind()`` gets everything kind needs: a Docker daemon (docker.py), kind and kubectl
(gotools.py), and a node image (pulled where a registry answers, built offline otherwise,
nodeimage.py). Where docker refuses ``--privileged`` it puts hack/kind/docker-shim in front of
docker for kind. ``KindCluster`` (pytest-kind's) then creates or reuses the cluster.

    python -m inshape_hack.kindcluster up|down|env|status [--name inshape]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pytest_kind import KindCluster

from inshape_hack import gotools, netpolicy, nodeimage, rootfs
from inshape_hack.docker import DockerEndpoint, docker_cli, ensure_docker, pull
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.paths import REPO_ROOT, cache_dir, run_dir

# The published node image for the kind release we pin, used where a registry answers. Any
# other (e.g. a digest-pinned one) can be named with INSHAPE_KIND_NODE_IMAGE.
PUBLISHED_NODE_IMAGE = "kindest/node:v1.34.3"
KIND_CONFIG = REPO_ROOT / "kind-config.yaml"
DEFAULT_CLUSTER = "inshape"


@dataclass(frozen=True)
class KindTooling:
    """What creating, using and deleting a kind cluster here takes."""

    docker: DockerEndpoint
    kind: Path
    kubectl: Path
    node_image: str
    shimmed: bool  # docker refuses --privileged: kind runs through hack/kind/docker-shim
    path_dir: Path  # first on PATH for kind: `docker` (the shim or the real CLI)

    def env(self) -> dict[str, str]:
        """Environment for kind and anything it starts (pytest-kind reads os.environ)."""
        env = self.docker.env()
        env["PATH"] = f"{self.path_dir}{os.pathsep}{env.get('PATH', '')}"
        env["INSHAPE_REAL_DOCKER"] = docker_cli()
        env["INSHAPE_EMPTY_MODULES"] = str(empty_modules_dir())
        return env

    @property
    def offline_image(self) -> bool:
        return self.node_image.startswith(rootfs.IMAGE_PREFIX)


def empty_modules_dir() -> Path:
    path = cache_dir() / "kind" / "empty-lib-modules"
    path.mkdir(parents=True, exist_ok=True)
    return path


def privileged_refused(docker: DockerEndpoint, image: str) -> bool:
    """True where `docker run --privileged` fails to apply capabilities (see docker-shim)."""
    done = subprocess.run(
        [docker_cli(), "run", "--rm", "--privileged", "--entrypoint", "true", image],
        env=docker.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return False
    if "apply caps" in done.stderr or "operation not permitted" in done.stderr:
        return True
    raise RuntimeError(f"docker run --privileged failed for another reason: {done.stderr}")


def docker_path_dir(shimmed: bool) -> Path:
    """A folder whose `docker` is the shim (if needed) or the real CLI."""
    folder = cache_dir() / "kind" / ("shim" if shimmed else "plain")
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "docker"
    target = nodeimage.KIND_FILES / "docker-shim" if shimmed else Path(docker_cli())
    if not link.is_symlink() or link.readlink() != target:
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return folder


def published_node_image() -> str:
    return os.environ.get("INSHAPE_KIND_NODE_IMAGE", PUBLISHED_NODE_IMAGE)


def prepare_kind(with_node_image: bool = True) -> KindTooling:
    """Docker, kind, kubectl and (unless only an existing cluster is to be reached or deleted)
    a node image: the published one where it can be pulled, else one built offline. Cached
    after the first time."""
    docker = ensure_docker()
    kind = gotools.build(gotools.tool_named("kind"), quiet=True)
    kubectl = gotools.build(gotools.tool_named("kubectl"), quiet=True)
    wanted = published_node_image()
    pulled = with_node_image and pull(docker, wanted)
    probe = wanted if pulled else nodeimage.busybox_base(docker)
    shimmed = privileged_refused(docker, probe)
    path_dir = docker_path_dir(shimmed)
    tooling = KindTooling(docker, kind, kubectl, wanted if pulled else "", shimmed, path_dir)
    if not with_node_image or pulled:
        return tooling
    built = nodeimage.ensure_offline_node_image(docker, tooling.env())
    return KindTooling(docker, kind, kubectl, built, shimmed, path_dir)


def config_for_image(config: dict[str, Any], offline_image: bool) -> dict[str, Any]:
    """kind-config.yaml as given, plus what the offline node image needs: its own static CNI
    (kindnetd cannot be built here, see nodeimage.py)."""
    if not offline_image:
        return config
    networking = {**config.get("networking", {}), "disableDefaultCNI": True}
    return {**config, "networking": networking}


def effective_config(tooling: KindTooling, source: Path = KIND_CONFIG) -> Path:
    """The config file kind is given for this node image (written under the run folder)."""
    config = config_for_image(yaml.safe_load(source.read_text()), tooling.offline_image)
    out = run_dir() / "kind" / f"config-{'offline' if tooling.offline_image else 'stock'}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def kubeconfig_path(name: str) -> Path:
    return run_dir() / "kind" / f"{name}.kubeconfig"


def kind_cluster(tooling: KindTooling, name: str = DEFAULT_CLUSTER) -> KindCluster:
    """pytest-kind's handle on cluster ``name`` with the project's binaries and image."""
    os.environ.update(tooling.env())  # pytest-kind runs kind with the process environment
    kubeconfig = kubeconfig_path(name)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    return KindCluster(
        name,
        kubeconfig=kubeconfig,
        image=tooling.node_image,
        kind_path=tooling.kind,
        kubectl_path=tooling.kubectl,
    )


def clusters(tooling: KindTooling) -> list[str]:
    out = subprocess.run(
        [str(tooling.kind), "get", "clusters"],
        env=tooling.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def cluster_exists(tooling: KindTooling, name: str) -> bool:
    return name in clusters(tooling)


def node_running(tooling: KindTooling, name: str) -> bool:
    done = subprocess.run(
        [docker_cli(), "inspect", "-f", "{{.State.Running}}", f"{name}-control-plane"],
        env=tooling.docker.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == "true"


def up(tooling: KindTooling, name: str = DEFAULT_CLUSTER) -> KindCluster:
    """Create the cluster, or reuse it when its node runs; a stopped one is made anew."""
    cluster = kind_cluster(tooling, name)
    if cluster_exists(tooling, name) and not node_running(tooling, name):
        cluster.delete()
    if cluster_exists(tooling, name) and not cluster.kubeconfig_path.exists():
        write_kubeconfig(tooling, name, cluster.kubeconfig_path)
    cluster.create(config_file=effective_config(tooling))
    if tooling.offline_image:
        enforce_network_policies(tooling, name, cluster.kubeconfig_path)
    return cluster


def enforce_network_policies(tooling: KindTooling, name: str, kubeconfig: Path) -> None:
    """What kindnetd would do for NetworkPolicies, on the offline image's cluster (idempotent:
    the image is loaded once, the manifest applied again changes nothing)."""
    image = netpolicy.ensure_image(tooling.docker)
    load_image(tooling, image, name)
    kubectl = KubectlRunner(tooling.kubectl, kubeconfig, netpolicy.NAMESPACE)
    kubectl("apply", "-f", "-", stdin=netpolicy.manifest(image))
    kubectl("rollout", "status", netpolicy.DAEMONSET, "--timeout=180s")


def write_kubeconfig(tooling: KindTooling, name: str, path: Path) -> None:
    out = subprocess.run(
        [str(tooling.kind), "get", "kubeconfig", "--name", name],
        env=tooling.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path.write_text(out)
    path.chmod(0o600)


def node_ip(tooling: KindTooling, name: str = DEFAULT_CLUSTER) -> str:
    """The node's address on docker's `kind` network (host -> NodePort services)."""
    out = subprocess.run(
        [docker_cli(), "inspect", f"{name}-control-plane"],
        env=tooling.docker.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return str(networks["kind"]["IPAddress"])


def load_image(tooling: KindTooling, image: str, name: str = DEFAULT_CLUSTER) -> None:
    """`kind load docker-image`, skipped when the node already has that image id."""
    image_id = subprocess.run(
        [docker_cli(), "image", "inspect", "-f", "{{.Id}}", image],
        env=tooling.docker.env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    listed = subprocess.run(
        [docker_cli(), "exec", f"{name}-control-plane", "crictl", "images", "-o", "json"],
        env=tooling.docker.env(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if image_id and image_id in listed:
        return
    subprocess.run(
        [str(tooling.kind), "load", "docker-image", image, "--name", name],
        env=tooling.env(),
        check=True,
    )


def tools_on_path() -> Path:
    """A folder of plain-named links (kubectl, helm, kind) to the project's cached binaries."""
    folder = cache_dir() / "kind" / "path"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "helm", "kind"):
        target = gotools.build(gotools.tool_named(name), quiet=True)
        link = folder / name
        if not link.is_symlink() or link.readlink() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return folder


def exports(tooling: KindTooling, name: str) -> str:
    """Shell exports pointing kubectl, helm and docker at the cluster (`make -s env`)."""
    lines = [
        tooling.docker.exports(),
        f"export KUBECONFIG={kubeconfig_path(name)}",
        f'export PATH="{tools_on_path()}:$PATH"',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "env", "image"])
    parser.add_argument("--name", default=DEFAULT_CLUSTER)
    args = parser.parse_args(argv)
    tooling = prepare_kind(with_node_image=args.command in ("up", "image"))
    if args.command == "image":
        print(tooling.node_image)
    elif args.command == "up":
        cluster = up(tooling, args.name)
        print(f"kind: cluster {args.name} up; KUBECONFIG={cluster.kubeconfig_path}")
    elif args.command == "down":
        if cluster_exists(tooling, args.name):
            kind_cluster(tooling, args.name).delete()
        kubeconfig_path(args.name).unlink(missing_ok=True)
        print(f"kind: cluster {args.name} deleted")
    else:
        print(exports(tooling, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
