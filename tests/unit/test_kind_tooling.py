"""The pure parts of the kind tooling: edits to kind's base files, names read from sources,
the config for the offline node image, input hashes, and the docker shim's rewriting."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from inshape_hack import gotools, kindcluster, netpolicy, nodeimage
from inshape_hack.rootfs import RootfsSpec

ENTRYPOINT = """#!/bin/bash
validate_userns() {
  :
}

# validate state
validate_userns

# run pre-init fixups
configure_containerd
"""


def test_entrypoint_remounts_cgroups_right_after_kind_validates_its_state() -> None:
    patched = nodeimage.patch_entrypoint(ENTRYPOINT)
    lines = patched.splitlines()
    assert lines.index("remount_cgroups_rw") == lines.index("validate_userns") + 1
    assert lines.index("remount_cgroups_rw() {") < lines.index("validate_userns")
    assert patched.count("configure_containerd") == 1


def test_an_entrypoint_without_the_anchor_is_refused_not_silently_left_alone() -> None:
    with pytest.raises(ValueError, match="validate state"):
        nodeimage.patch_entrypoint('#!/bin/bash\nexec "$@"\n')


def test_containerd_never_lowers_oom_score_adj() -> None:
    config = '[plugins]\n  restrict_oom_score_adj = false\n  sandbox_image = "x"\n'
    assert "restrict_oom_score_adj = true" in nodeimage.patch_containerd_config(config)
    with pytest.raises(ValueError):
        nodeimage.patch_containerd_config("[plugins]\n")


def test_image_names_are_read_from_kinds_go_source_and_containerd_config() -> None:
    source = 'package nodeimage\n\nconst kindnetdImage = "docker.io/kindest/kindnetd:v1-abc"\n'
    assert nodeimage.go_string_const(source, "kindnetdImage") == "docker.io/kindest/kindnetd:v1-abc"
    with pytest.raises(ValueError):
        nodeimage.go_string_const(source, "storageHelperImage")
    config = '[x]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n'
    assert nodeimage.toml_string(config, "sandbox_image") == "registry.k8s.io/pause:3.10"


@pytest.mark.parametrize(
    ("image", "component"),
    [
        ("registry.k8s.io/kube-apiserver:v1.34.4", "kube-apiserver"),
        ("registry.k8s.io/coredns/coredns:v1.12.1", "coredns"),
        ("registry.k8s.io/etcd:3.6.5-0", "etcd"),
        ("registry.k8s.io/pause:3.10.1", "pause"),
    ],
)
def test_image_component(image: str, component: str) -> None:
    assert nodeimage.image_component(image) == component


def test_cri_base_spec_adds_kinds_mount_hook_and_drops_rlimits() -> None:
    default = {"process": {"rlimits": [{"type": "RLIMIT_NOFILE"}], "cwd": "/"}, "hooks": {}}
    spec = nodeimage.cri_base_spec(json.dumps(default))
    hooks = spec["hooks"]
    assert isinstance(hooks, dict)
    assert hooks["createContainer"] == [{"path": "/kind/bin/mount-product-files.sh"}]
    process = spec["process"]
    assert isinstance(process, dict)
    assert "rlimits" not in process
    assert process["cwd"] == "/"


def test_the_offline_node_image_gets_its_static_cni_and_the_stock_one_kindnetd() -> None:
    config = {"kind": "Cluster", "networking": {"podSubnet": "10.244.0.0/16"}, "nodes": []}
    offline = kindcluster.config_for_image(config, offline_image=True)
    assert offline["networking"] == {"podSubnet": "10.244.0.0/16", "disableDefaultCNI": True}
    assert kindcluster.config_for_image(config, offline_image=False) == config
    assert "disableDefaultCNI" not in config["networking"]  # the input is not changed


def test_the_static_cni_covers_the_first_nodes_share_of_kinds_pod_subnet() -> None:
    conflist = json.loads(nodeimage.STATIC_CNI.read_text())
    ptp = conflist["plugins"][0]
    assert ptp["type"] == "ptp"
    assert ptp["ipam"]["ranges"] == [[{"subnet": "10.244.0.0/24"}]]


def test_rootfs_image_names_follow_their_inputs() -> None:
    base = RootfsSpec("python", ("python3",), ("ENV A=1",))
    assert base.image() == RootfsSpec("python", ("python3",), ("ENV A=1",)).image()
    assert base.image() != RootfsSpec("python", ("python3", "curl"), ("ENV A=1",)).image()
    assert base.image() != RootfsSpec("python", ("python3",), ("ENV A=2",)).image()
    assert base.image() != base.image(extra="prepared differently")
    # The debootstrap cache depends on the packages only, not on how the tree is imported.
    assert base.input_hash() == RootfsSpec("python", ("python3",), ("ENV A=2",)).input_hash()


def test_installed_tools_are_cached_per_version_and_flags(tmp_path: Path) -> None:
    tool = gotools.InstalledTool("crictl", "sigs.k8s.io/cri-tools/cmd/crictl", "v1.34.0")
    same = gotools.InstalledTool("crictl", "sigs.k8s.io/cri-tools/cmd/crictl", "v1.34.0")
    newer = gotools.InstalledTool("crictl", "sigs.k8s.io/cri-tools/cmd/crictl", "v1.35.0")
    stamped = gotools.InstalledTool(
        "crictl", "sigs.k8s.io/cri-tools/cmd/crictl", "v1.34.0", ("-X a.b=c",)
    )
    path = gotools.binary_path(tool, tmp_path)
    assert path == gotools.binary_path(same, tmp_path)
    assert path.name.startswith("crictl-v1.34.0-")
    assert path != gotools.binary_path(newer, tmp_path)
    assert path != gotools.binary_path(stamped, tmp_path)


def run_shim(tmp_path: Path, *args: str) -> list[str]:
    """Run hack/kind/docker-shim with a 'real docker' that prints the argv it was given."""
    printer = tmp_path / "print-argv"
    printer.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    printer.chmod(0o755)
    env = {
        **os.environ,
        "INSHAPE_REAL_DOCKER": str(printer),
        "INSHAPE_EMPTY_MODULES": str(tmp_path / "empty"),
    }
    shim = nodeimage.KIND_FILES / "docker-shim"
    out = subprocess.run([str(shim), *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def test_the_shim_swaps_privileged_for_every_capability_but_sys_resource(tmp_path: Path) -> None:
    argv = run_shim(tmp_path, "run", "--privileged", "--name", "n", "img")
    assert "--privileged" not in argv
    assert argv[:3] == ["run", "--cap-add=ALL", "--cap-drop=SYS_RESOURCE"]
    assert "systempaths=unconfined" in argv
    assert "--device=/dev/kmsg" in argv
    assert argv[-3:] == ["--name", "n", "img"]


def test_the_shim_drops_privileged_from_exec_and_passes_other_commands(tmp_path: Path) -> None:
    assert run_shim(tmp_path, "exec", "--privileged", "node", "true") == ["exec", "node", "true"]
    assert run_shim(tmp_path, "ps", "--privileged") == ["ps", "--privileged"]


def test_the_shim_mounts_an_empty_folder_where_the_host_has_no_modules(tmp_path: Path) -> None:
    argv = run_shim(tmp_path, "run", "-v", "/lib/modules:/lib/modules:ro", "img")
    expected = (
        "/lib/modules:/lib/modules:ro"
        if Path("/lib/modules").is_dir()
        else f"{tmp_path / 'empty'}:/lib/modules:ro"
    )
    assert argv == ["run", "-v", expected, "img"]


def test_kind_config_and_the_static_cni_agree_on_the_pod_range() -> None:
    import ipaddress

    import yaml

    config = yaml.safe_load(kindcluster.KIND_CONFIG.read_text())
    pods = ipaddress.ip_network(config["networking"]["podSubnet"])
    conflist = json.loads(nodeimage.STATIC_CNI.read_text())
    node = ipaddress.ip_network(conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])
    assert node.subnet_of(pods)  # type: ignore[arg-type]
    assert len(config["nodes"]) == 1  # one node: its range is the first /24


def test_the_shim_of_another_checkout_is_never_taken_for_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkouts share the tool cache: its `docker` link may point at any checkout's shim."""
    from inshape_hack.docker import _real_docker_on_path

    other = tmp_path / "other-checkout" / "hack" / "kind"
    other.mkdir(parents=True)
    (other / "docker-shim").write_text("#!/bin/sh\n")
    (other / "docker-shim").chmod(0o755)
    linked = tmp_path / "cache-kind-shim"
    linked.mkdir()
    (linked / "docker").symlink_to(other / "docker-shim")
    real = tmp_path / "bin"
    real.mkdir()
    (real / "docker").write_text("#!/bin/sh\n")
    (real / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{linked}{os.pathsep}{real}")
    assert _real_docker_on_path() == str(real / "docker")


def test_the_shim_refuses_to_run_itself_as_docker() -> None:
    shim = Path(__file__).resolve().parents[2] / "hack" / "kind" / "docker-shim"
    env = {**os.environ, "INSHAPE_REAL_DOCKER": str(shim)}
    done = subprocess.run(
        [str(shim), "-v"], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 2 and "is this shim" in done.stderr


def test_the_network_policy_manifest_runs_only_kube_routers_firewall_with_read_only_rbac() -> None:
    docs = list(yaml.safe_load_all(netpolicy.manifest("localhost/inshape/kube-router:abc")))
    kinds = {doc["kind"]: doc for doc in docs}
    assert set(kinds) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}
    verbs = {verb for rule in kinds["ClusterRole"]["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    container = kinds["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "localhost/inshape/kube-router:abc"
    args = set(container["args"])
    assert {"--run-firewall=true", "--run-router=false", "--run-service-proxy=false"} <= args
    assert "--enable-cni=false" in args  # the static ptp CNI stays the node's


def test_a_network_policy_template_must_name_its_image_exactly_once() -> None:
    with pytest.raises(ValueError, match="image: IMAGE"):
        netpolicy.manifest("x", template="kind: DaemonSet\n")
    with pytest.raises(ValueError, match="image: IMAGE"):
        netpolicy.manifest("x", template="image: IMAGE\nimage: IMAGE\n")


def test_the_policy_engines_image_follows_its_binary_and_base() -> None:
    first = netpolicy.image_tag(Path("kube-router-v2.1.0-aaa"), "base:1")
    assert first == netpolicy.image_tag(Path("kube-router-v2.1.0-aaa"), "base:1")
    assert first != netpolicy.image_tag(Path("kube-router-v2.1.0-bbb"), "base:1")
    assert first != netpolicy.image_tag(Path("kube-router-v2.1.0-aaa"), "base:2")
