"""kind's node image, built offline from Debian packages and Go modules where none can be pulled.

The recipe follows kind's own (images/base + `kind build node-image --type file`), with every
image kind and kubeadm would fetch made here instead:

- base: a debootstrapped bookworm with kind's base files (from the kind module's source), two
  edits that matter only where ``--privileged`` is refused (cgroup mounts remounted read-write,
  ``restrict_oom_score_adj``) and a ``ctr`` shim (Debian's ctr 1.6 lacks two commands kind
  uses, and ``content fetch`` must find preloaded images instead of reaching a registry);
- the control-plane images kubeadm names (``kubeadm config images list``), kube-proxy on a slim
  iptables base, etcd, CoreDNS, pause (static, from its C source), local-path-provisioner and
  its helper: each a Go binary on a busybox base from Debian's ``busybox-static``;
- kindnetd is not built (its module is not served by the Go proxy); the cluster runs a static
  ptp CNI from Debian's plugins instead (kindcluster.py), and kind's name for kindnetd points
  at the pause image so the build's preload check passes.

The result is tagged ``localhost/inshape/kind-node:<kube version>-<hash of every input>``
(``localhost/`` so kind's unconditional pull only ever tries loopback); a second call with the
same inputs is a lookup.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inshape_hack import bases, gotools
from inshape_hack.docker import DockerEndpoint, docker_cli
from inshape_hack.paths import HACK_DIR, cache_dir
from inshape_hack.rootfs import IMAGE_PREFIX, ensure_rootfs_image, image_exists

KIND_FILES = HACK_DIR / "kind"
CTR_SHIM = KIND_FILES / "ctr-shim"
# kindnetd's stand-in: Debian's ptp plugin with the first node's pod range (kind's default pod
# subnet 10.244.0.0/16; one node gets 10.244.0.0/24). ptp routes every packet through the
# node's network namespace, so kube-proxy's rules see pod-to-service traffic both ways.
STATIC_CNI = KIND_FILES / "10-inshape-ptp.conflist"
# Bump when the recipe below changes what it builds (file inputs are hashed already).
RECIPE = "3"
BUSYBOX_PACKAGE = "busybox-static"


def go_module_dir(module: str, version: str) -> Path:
    """The unpacked source of a published module (downloaded into GOMODCACHE once)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env={**gotools.go_env(), "GOFLAGS": "-mod=mod"},
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(json.loads(out)["Dir"])


# --- names kind and kubeadm expect (read from their sources and binaries, not hard-coded) ----


@dataclass(frozen=True)
class KindImageNames:
    """The non-Kubernetes images kind v0.33's node-image build preloads."""

    kindnetd: str
    local_path_provisioner: str
    local_path_helper: str
    sandbox: str  # containerd's sandbox_image in kind's base config


def kind_image_names(kind_dir: Path) -> KindImageNames:
    nodeimage = kind_dir / "pkg" / "build" / "nodeimage"
    cni = (nodeimage / "const_cni.go").read_text()
    storage = (nodeimage / "const_storage.go").read_text()
    config = (kind_dir / "images/base/files/etc/containerd/config.toml").read_text()
    return KindImageNames(
        kindnetd=go_string_const(cni, "kindnetdImage"),
        local_path_provisioner=go_string_const(storage, "storageProvisionerImage"),
        local_path_helper=go_string_const(storage, "storageHelperImage"),
        sandbox=toml_string(config, "sandbox_image"),
    )


def go_string_const(source: str, name: str) -> str:
    match = re.search(rf'^const {name} = "([^"]+)"', source, re.MULTILINE)
    if not match:
        raise ValueError(f"no string constant {name}")
    return match.group(1)


def toml_string(source: str, key: str) -> str:
    match = re.search(rf'^\s*{key}\s*=\s*"([^"]+)"', source, re.MULTILINE)
    if not match:
        raise ValueError(f"no {key} in the containerd config")
    return match.group(1)


def kubeadm_images(kubeadm: Path, kube_version: str) -> list[str]:
    out = subprocess.run(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", kube_version],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def image_component(image: str) -> str:
    """`registry.k8s.io/coredns/coredns:v1.12.1` -> `coredns`."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


# --- edits to kind's base files --------------------------------------------------------------

CGROUP_REMOUNT = """
# inshape: where docker refuses --privileged (no CAP_SYS_RESOURCE in the host's bounding set),
# nodes start with every other capability and docker mounts the cgroup filesystems read-only;
# systemd, containerd and the kubelet need them writable. A no-op on a privileged node.
remount_cgroups_rw() {
  local m
  for m in $(findmnt -lun -o target -R /sys/fs/cgroup); do
    if findmnt -lun -o options "$m" | grep -q '^ro'; then
      mount -o remount,bind,rw "$m" || log_warn "failed to remount $m rw"
    fi
  done
}
"""


def patch_entrypoint(text: str) -> str:
    """Call remount_cgroups_rw right after kind's own state validation."""
    anchor = "\n# validate state\nvalidate_userns\n"
    if anchor not in text:
        raise ValueError("kind's entrypoint changed: no '# validate state' block")
    return text.replace(anchor, CGROUP_REMOUNT + anchor + "remount_cgroups_rw\n")


def patch_containerd_config(text: str) -> str:
    """Never ask runc to lower oom_score_adj: that needs CAP_SYS_RESOURCE, which may be absent."""
    old = "restrict_oom_score_adj = false"
    if old not in text:
        raise ValueError("kind's containerd config changed: no restrict_oom_score_adj = false")
    return text.replace(old, "restrict_oom_score_adj = true")


def prepare_node_rootfs(root: Path, kind_dir: Path) -> None:
    """What kind's images/base/Dockerfile does, on a Debian tree (Debian's paths linked)."""
    files = kind_dir / "images" / "base" / "files"
    shutil.copytree(files, root, dirs_exist_ok=True, copy_function=shutil.copy)
    for path in [root / "kind", root / "usr/local/bin", root / "etc/systemd/system"]:
        subprocess.run(["chmod", "-R", "u+w,go+rX", str(path)], check=True)
    # The module cache holds files read-only and without exec bits: restore them for scripts.
    scripts = [*(root / "usr/local/bin").iterdir(), *(root / "kind/bin").iterdir()]
    subprocess.run(["chmod", "0755", *map(str, scripts)], check=True)
    entrypoint = root / "usr/local/bin/entrypoint"
    entrypoint.write_text(patch_entrypoint(entrypoint.read_text()))
    containerd_config = root / "etc/containerd/config.toml"
    containerd_config.write_text(patch_containerd_config(containerd_config.read_text()))
    # kind's units expect /usr/local/bin/containerd and /opt/cni/bin; Debian uses other paths.
    (root / "usr/local/bin/containerd").symlink_to("/usr/bin/containerd")
    cni_bin = root / "opt/cni/bin"
    cni_bin.mkdir(parents=True, exist_ok=True)
    for plugin in ("host-local", "loopback", "ptp", "portmap", "bridge"):
        (cni_bin / plugin).symlink_to(f"/usr/lib/cni/{plugin}")
    shutil.copy(CTR_SHIM, root / "usr/local/bin/ctr")
    (root / "usr/local/bin/ctr").chmod(0o755)
    (root / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    (root / "etc/cni/net.d").mkdir(parents=True, exist_ok=True)
    shutil.copy(STATIC_CNI, root / "etc/cni/net.d" / STATIC_CNI.name)
    with (root / "etc/systemd/journald.conf").open("a") as journald:
        journald.write("ReadKMsg=no\n")
    _trim_systemd_units(root)
    chroot = ["chroot", str(root)]
    subprocess.run(
        [*chroot, "systemctl", "enable", "kubelet", "containerd", "undo-mount-hacks"], check=True
    )
    subprocess.run([*chroot, "systemctl", "mask", "systemd-binfmt.service"], check=True)
    spec = subprocess.run(
        [*chroot, "/usr/bin/ctr", "oci", "spec"], check=True, capture_output=True, text=True
    ).stdout
    (root / "etc/containerd/cri-base.json").write_text(json.dumps(cri_base_spec(spec), indent=2))


def cri_base_spec(default_spec: str) -> dict[str, object]:
    """kind's cri-base.json: containerd's default spec with kind's mount hook, no rlimits."""
    spec = json.loads(default_spec)
    hooks = spec.setdefault("hooks", {})
    hooks.setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec.get("process", {}).pop("rlimits", None)
    return dict(spec)


def _trim_systemd_units(root: Path) -> None:
    """The same unit clean-up as kind's base Dockerfile: a node boots only what it needs."""
    lib = root / "lib/systemd/system"
    doomed = [
        *lib.glob("sysinit.target.wants/systemd-tmpfiles-setup.service"),
        *lib.glob("multi-user.target.wants/*"),
        *(root / "etc/systemd/system").glob("*.wants/*"),
        *lib.glob("local-fs.target.wants/*"),
        *lib.glob("sockets.target.wants/*udev*"),
        *lib.glob("sockets.target.wants/*initctl*"),
        *lib.glob("basic.target.wants/*"),
    ]
    for path in doomed:
        path.unlink()


# --- small images ----------------------------------------------------------------------------


def run_docker(docker: DockerEndpoint, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        [docker_cli(), *args], env=docker.env(), input=stdin, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def build_from(
    docker: DockerEndpoint, tag: str, dockerfile: str, files: Mapping[str, Path]
) -> None:
    """`docker build` (classic builder: FROM local images only) from a small generated context."""
    with tempfile.TemporaryDirectory(prefix="ctx-") as ctx:
        for name, source in files.items():
            shutil.copy(source, Path(ctx) / name)
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        env = {**docker.env(), "DOCKER_BUILDKIT": "0"}
        subprocess.run(
            [docker_cli(), "build", "-q", "-t", tag, ctx],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def busybox_base(docker: DockerEndpoint) -> str:
    """A few-MiB base with a shell (local-path's helper runs `sh -c`), from Debian's deb."""
    with tempfile.TemporaryDirectory(prefix="busybox-") as tmp:
        subprocess.run(
            ["apt-get", "download", "-q", BUSYBOX_PACKAGE],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        deb = next(Path(tmp).glob("*.deb"))
        image = f"{IMAGE_PREFIX}/busybox:{_digest(deb.name, RECIPE)}"
        if image_exists(docker, image):
            return image
        root = Path(tmp) / "root"
        (root / "pkg").mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "pkg")], check=True)
        _busybox_tree(root, root / "pkg/bin/busybox")
        subprocess.run(
            [docker_cli(), "import", "--change", bases.PATH_ENV, "-", image],
            input=_tar_bytes(root / "tree"),
            env=docker.env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return image


def _busybox_tree(root: Path, busybox: Path) -> None:
    tree = root / "tree"
    for folder in ("bin", "etc", "tmp", "usr/local/bin", "var/run", "root", "home/nonroot"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
    (tree / "tmp").chmod(0o1777)
    shutil.copy(busybox, tree / "bin/busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (tree / "bin" / applet).symlink_to("busybox")
    (tree / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n"
    )
    (tree / "etc/group").write_text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
    (tree / "etc/nsswitch.conf").write_text("hosts: files dns\n")


def _tar_bytes(root: Path) -> bytes:
    return subprocess.run(
        ["tar", "-C", str(root), "-c", "."], check=True, capture_output=True
    ).stdout


def pause_image(docker: DockerEndpoint, kube_dir: Path, names: list[str]) -> None:
    """The sandbox image, from kubernetes' build/pause/linux/pause.c, static."""
    source = kube_dir / "build/pause/linux/pause.c"
    with tempfile.TemporaryDirectory(prefix="pause-") as tmp:
        binary = Path(tmp) / "tree" / "pause"
        binary.parent.mkdir()
        version = names[0].rsplit(":", 1)[-1]
        subprocess.run(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                f"-DVERSION=v{version}-inshape",
                "-o",
                str(binary),
                str(source),
            ],
            check=True,
        )
        subprocess.run(["strip", str(binary)], check=True)
        subprocess.run(
            [
                docker_cli(),
                "import",
                "--change",
                'ENTRYPOINT ["/pause"]',
                "--change",
                "USER 65535:65535",
                "-",
                names[0],
            ],
            input=_tar_bytes(binary.parent),
            env=docker.env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    for extra in names[1:]:
        run_docker(docker, "tag", names[0], extra)


def binary_image(
    docker: DockerEndpoint, tag: str, base: str, binary: Path, dest: str, *extra: str
) -> None:
    """An image of ``base`` plus one static binary at ``dest`` (and Dockerfile ``extra``)."""
    dockerfile = "\n".join(
        [f"FROM {base}", f"COPY {binary.name} {dest}", *extra, ""]
    )  # fmt: skip
    build_from(docker, tag, dockerfile, {binary.name: binary})


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


# --- the node image ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInputs:
    """Everything the offline node image is made of; its hash names the image."""

    kube_version: str
    kind_dir: Path
    kube_dir: Path
    tools: Mapping[str, Path]  # name -> cached binary (its path carries version and hash)

    def digest(self) -> str:
        files = sorted(p for p in KIND_FILES.rglob("*") if p.is_file())
        parts = [
            RECIPE,
            self.kube_version,
            str(self.kind_dir),
            bases.KIND_NODE.input_hash(),
            bases.IPTABLES.input_hash(),
            *(path.name for _, path in sorted(self.tools.items())),
            *(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in files),
            Path(__file__).read_text(),
        ]
        return _digest(*parts)

    def image(self) -> str:
        return f"{IMAGE_PREFIX}/kind-node:{self.kube_version}-{self.digest()}"


NODE_TOOL_NAMES = (
    "kubelet",
    "kubeadm",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "etcd",
    "crictl",
    "coredns",
    "local-path-provisioner",
    "kind",
)


def node_inputs() -> NodeInputs:
    tools = {name: gotools.build(gotools.tool_named(name)) for name in NODE_TOOL_NAMES}
    kube_version = gotools.kube_version()
    kind = next(t for t in gotools.KIND_TOOLS if t.name == "kind")
    return NodeInputs(
        kube_version=kube_version,
        kind_dir=go_module_dir("sigs.k8s.io/kind", kind.version),
        kube_dir=go_module_dir("k8s.io/kubernetes", kube_version),
        tools=tools,
    )


def component_images(docker: DockerEndpoint, inputs: NodeInputs) -> list[str]:
    """Build every image the node preloads or kind's tarball carries; return the preload list."""
    busybox = busybox_base(docker)
    iptables = ensure_rootfs_image(docker, bases.IPTABLES)
    kind_names = kind_image_names(inputs.kind_dir)
    wanted = kubeadm_images(inputs.tools["kubeadm"], inputs.kube_version)
    pauses = sorted({kind_names.sandbox, *(i for i in wanted if image_component(i) == "pause")})
    pause_image(docker, inputs.kube_dir, [*pauses, kind_names.kindnetd])
    for image in wanted:
        component = image_component(image)
        if component == "pause":
            continue
        if component == "coredns":
            # Root, as kubeadm's Deployment expects of an image without file capabilities: it
            # adds NET_BIND_SERVICE (port 53) and drops every other capability.
            entry = ['ENTRYPOINT ["/coredns"]']
            binary_image(docker, image, busybox, inputs.tools["coredns"], "/coredns", *entry)
        elif component == "kube-proxy":
            binary_image(
                docker, image, iptables, inputs.tools[component], f"/usr/local/bin/{component}"
            )
        else:
            binary_image(
                docker, image, busybox, inputs.tools[component], f"/usr/local/bin/{component}"
            )
    binary_image(
        docker,
        kind_names.local_path_provisioner,
        busybox,
        inputs.tools["local-path-provisioner"],
        "/usr/local/bin/local-path-provisioner",
        'ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]',
    )
    run_docker(docker, "tag", busybox, kind_names.local_path_helper)
    control_plane = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}
    preload = [i for i in wanted if image_component(i) not in control_plane]
    return sorted({*preload, *pauses, kind_names.kindnetd, kind_names.local_path_provisioner,
                   kind_names.local_path_helper})  # fmt: skip


def server_tarball(docker: DockerEndpoint, inputs: NodeInputs, out_dir: Path) -> Path:
    """kind's `--type file` input: kubernetes/{version,server/bin/...} as a .tar.gz."""
    bin_dir = out_dir / "kubernetes" / "server" / "bin"
    bin_dir.mkdir(parents=True)
    (out_dir / "kubernetes" / "version").write_text(inputs.kube_version + "\n")
    for name in ("kubeadm", "kubelet", "kubectl"):
        shutil.copy(inputs.tools[name], bin_dir / name)
    for image in kubeadm_images(inputs.tools["kubeadm"], inputs.kube_version):
        component = image_component(image)
        if component in {
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-proxy",
        }:
            run_docker(docker, "save", image, "-o", str(bin_dir / f"{component}.tar"))
            (bin_dir / f"{component}.docker_tag").write_text(inputs.kube_version + "\n")
    tarball = out_dir / "kubernetes-server-linux-amd64.tar.gz"
    subprocess.run(["tar", "-C", str(out_dir), "-czf", str(tarball), "kubernetes"], check=True)
    return tarball


def base_image(docker: DockerEndpoint, inputs: NodeInputs, preload: list[str]) -> str:
    """kind's base image: the prepared Debian node tree, with ``preload`` in containerd's store."""
    tag = f"{IMAGE_PREFIX}/kind-base:{inputs.digest()}"
    if image_exists(docker, tag):
        return tag
    raw = ensure_rootfs_image(
        docker,
        bases.KIND_NODE,
        prepare=lambda root: prepare_node_rootfs(root, inputs.kind_dir),
        extra_hash=inputs.digest(),
    )
    # docker import cannot set STOPSIGNAL; systemd wants SIGRTMIN+3 to shut down cleanly.
    stoppable = f"{IMAGE_PREFIX}/kind-base-raw:{inputs.digest()}"
    build_from(
        docker,
        stoppable,
        f"FROM {raw}\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\n"
        'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n',
        {},
    )
    preload_images(docker, stoppable, tag, preload, inputs.tools["crictl"])
    return tag


def preload_images(
    docker: DockerEndpoint, base: str, tag: str, images: list[str], crictl: Path
) -> None:
    """Start containerd in a throwaway container of ``base``, import ``images``, commit."""
    name = f"inshape-preload-{tag.rsplit(':', 1)[-1]}"
    _remove_container(docker, name)
    run_docker(docker, "run", "-d", "--name", name, "--entrypoint", "sleep", base, "infinity")
    try:
        run_docker(docker, "exec", "-d", name, "containerd")
        wait_socket = (
            "for i in $(seq 100); do "
            "[ -S /run/containerd/containerd.sock ] && exit 0; sleep 0.1; done; exit 1"
        )
        run_docker(docker, "exec", name, "sh", "-c", wait_socket)
        for image in images:
            saved = subprocess.run(
                [docker_cli(), "save", image], env=docker.env(), check=True, capture_output=True
            ).stdout
            ctr = ["exec", "-i", name, "/usr/bin/ctr", "-n", "k8s.io", "images"]
            run_docker(docker, *ctr, "import", "--all-platforms", "--no-unpack", "--digests",
                       "-", stdin=saved)  # fmt: skip
            run_docker(docker, *ctr, "label", image, "io.cri-containerd.pinned=pinned")
        run_docker(docker, "cp", str(crictl), f"{name}:/usr/local/bin/crictl")
        run_docker(docker, "exec", name, "pkill", "containerd")
        run_docker(
            docker, "exec", name, "sh", "-c", "while pgrep -x containerd; do sleep 0.1; done"
        )
        run_docker(
            docker, "commit", "--change",
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', name, tag,
        )  # fmt: skip
    finally:
        _remove_container(docker, name)


def _remove_container(docker: DockerEndpoint, name: str) -> None:
    subprocess.run(
        [docker_cli(), "rm", "-f", name], env=docker.env(), capture_output=True, check=False
    )


def ensure_offline_node_image(docker: DockerEndpoint, kind_env: Mapping[str, str]) -> str:
    """The node image for the pinned Kubernetes, built here unless the same inputs built it."""
    inputs = node_inputs()
    image = inputs.image()
    if image_exists(docker, image):
        return image
    started = time.monotonic()
    print(f"node image: building {image} offline", file=sys.stderr, flush=True)
    preload = component_images(docker, inputs)
    base = base_image(docker, inputs, preload)
    with tempfile.TemporaryDirectory(prefix="kind-tarball-", dir=cache_dir()) as tmp:
        tarball = server_tarball(docker, inputs, Path(tmp))
        subprocess.run(
            [str(inputs.tools["kind"]), "build", "node-image", "--type", "file",
             "--base-image", base, "--image", image, str(tarball)],
            env=dict(kind_env),
            check=True,
        )  # fmt: skip
    print(f"node image: {image} in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return image
