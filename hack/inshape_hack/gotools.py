"""Build the Go tools the project needs from Go modules: Kubernetes, etcd, helm, kind and the
node image's components (crictl, coredns, local-path-provisioner).

A binary is built either from a wrapper module under ``hack/go/<module>`` (its go.mod pins
versions the upstream module cannot be installed with, e.g. Kubernetes' staging replaces) or
with ``go install package@version`` where the upstream module builds as published. It is
cached as ``$INSHAPE_CACHE/bin/<name>-<version>-<hash>``, the hash covering the wrapper's
go.mod/go.sum/Go files or the install line, so a change of pin rebuilds and a second run is
instant. ``python -m inshape_hack.gotools`` builds whatever is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.paths import HACK_DIR, cache_dir

GO_DIR = HACK_DIR / "go"


@dataclass(frozen=True)
class GoTool:
    """One binary: where its wrapper module is, what to build, how to stamp it."""

    name: str
    module: str  # directory under hack/go
    package: str  # import path of the main package
    version_of: str  # module whose pinned version names the binary
    ldflags: Callable[[str, str], list[str]]  # (version, release date) -> -X flags


@dataclass(frozen=True)
class InstalledTool:
    """One binary ``go install``ed from its own published module at a pinned version."""

    name: str
    package: str  # import path of the main package
    version: str
    ldflags: tuple[str, ...] = ()

    def install_line(self) -> str:
        return f"{self.package}@{self.version} {' '.join(self.ldflags)}"


def kubernetes_ldflags(version: str, date: str) -> list[str]:
    """The -X flags kubernetes' hack/lib/version.sh sets, so binaries report it."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "",
        "buildDate": date,
    }
    return [
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    ]


def etcd_ldflags(version: str, _date: str) -> list[str]:
    # etcd's version is a constant; only the commit is stamped by its build.
    return [f"-X go.etcd.io/etcd/api/v3/version.GitSHA=module-{version}"]


def helm_ldflags(version: str, _date: str) -> list[str]:
    pkg = "helm.sh/helm/v4/internal/version"
    return [f"-X {pkg}.version={version}", f"-X {pkg}.gitTreeState=clean"]


TOOLS: tuple[GoTool, ...] = (
    GoTool("etcd", "etcd", "inshape.local/hack/etcd", "go.etcd.io/etcd/server/v3", etcd_ldflags),
    GoTool(
        "kube-apiserver",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes",
        kubernetes_ldflags,
    ),
    GoTool(
        "kube-controller-manager",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes",
        kubernetes_ldflags,
    ),
    GoTool(
        "kubectl",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kubectl",
        "k8s.io/kubernetes",
        kubernetes_ldflags,
    ),
    GoTool("helm", "helm", "helm.sh/helm/v4/cmd/helm", "helm.sh/helm/v4", helm_ldflags),
)

# The node image's Kubernetes parts, from the same wrapper module as the control plane.
NODE_TOOLS: tuple[GoTool, ...] = tuple(
    GoTool(
        name, "kubernetes", f"k8s.io/kubernetes/cmd/{name}", "k8s.io/kubernetes", kubernetes_ldflags
    )
    for name in ("kubelet", "kubeadm", "kube-proxy", "kube-scheduler")
)

# Published modules that build as they are (versions the Go proxy serves; see
# shared/kind-offline: kind pins local-path-provisioner v0.0.34, the proxy has up to v0.0.30).
KIND_TOOLS: tuple[InstalledTool, ...] = (
    InstalledTool("kind", "sigs.k8s.io/kind", "v0.33.0"),
    InstalledTool(
        "crictl",
        "sigs.k8s.io/cri-tools/cmd/crictl",
        "v1.34.0",
        ("-X sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0",),
    ),
    InstalledTool("coredns", "github.com/coredns/coredns", "v1.12.1"),
    InstalledTool("local-path-provisioner", "github.com/rancher/local-path-provisioner", "v0.0.30"),
    # NetworkPolicy enforcement where kindnetd cannot run (netpolicy.py). v2.1.0 is the only
    # version the proxy serves here; it runs only inside the project's throwaway kind cluster.
    InstalledTool(
        "kube-router",
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router",
        "v2.1.0",
        ("-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v2.1.0",),
    ),
)


def required_version(gomod: str, module: str) -> str:
    """The version a go.mod requires of ``module`` (single-line or block form)."""
    for raw in gomod.splitlines():
        words = raw.split("//")[0].split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) == 2 and words[0] == module:
            return words[1]
    raise ValueError(f"go.mod does not require {module}")


def kube_version() -> str:
    """The Kubernetes release the cluster runs (and helm renders for)."""
    gomod = (GO_DIR / "kubernetes" / "go.mod").read_text()
    return required_version(gomod, "k8s.io/kubernetes")


def module_hash(module_dir: Path) -> str:
    """Short hash of the files that decide what a wrapper module builds."""
    digest = hashlib.sha256()
    for path in sorted(module_dir.iterdir()):
        if path.name in ("go.mod", "go.sum") or path.suffix == ".go":
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def binary_path(tool: GoTool | InstalledTool, root: Path | None = None) -> Path:
    """Where the cached binary for the current pin of ``tool`` lives."""
    bin_dir = (root or cache_dir()) / "bin"
    if isinstance(tool, InstalledTool):
        line_hash = hashlib.sha256(tool.install_line().encode()).hexdigest()[:12]
        return bin_dir / f"{tool.name}-{tool.version}-{line_hash}"
    module_dir = GO_DIR / tool.module
    version = required_version((module_dir / "go.mod").read_text(), tool.version_of)
    return bin_dir / f"{tool.name}-{version}-{module_hash(module_dir)}"


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOFLAGS"] = "-trimpath -buildvcs=false -mod=readonly"
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("CGO_ENABLED", "0")
    return env


def release_date(module_dir: Path, module: str, env: Mapping[str, str]) -> str:
    """The pinned module's publish time: a reproducible stand-in for a build date."""
    out = subprocess.run(
        ["go", "list", "-m", "-json", module],
        cwd=module_dir,
        env=dict(env),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stamp = str(json.loads(out).get("Time", "1970-01-01T00:00:00Z"))
    return stamp.split(".", maxsplit=1)[0].removesuffix("Z") + "Z"


def build(
    tool: GoTool | InstalledTool, root: Path | None = None, parallel: int = 2, quiet: bool = False
) -> Path:
    """Build ``tool`` into the cache unless it is already there; return its path."""
    target = binary_path(tool, root)
    if target.exists():
        if not quiet:
            print(f"{tool.name}: cached {target}", flush=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    if isinstance(tool, InstalledTool):
        _go_install(tool, partial, parallel)
    else:
        _go_build(tool, partial, parallel)
    partial.rename(target)  # atomic: a killed build never leaves a "cached" binary
    seconds = time.monotonic() - started
    _timing_path(target).write_text(f"{seconds:.1f}\n")
    print(f"{tool.name}: built in {seconds:.0f}s -> {target}", file=sys.stderr, flush=True)
    return target


def _go_build(tool: GoTool, output: Path, parallel: int) -> None:
    module_dir = GO_DIR / tool.module
    env = go_env()
    version = required_version((module_dir / "go.mod").read_text(), tool.version_of)
    flags = tool.ldflags(version, release_date(module_dir, tool.version_of, env))
    print(f"{tool.name}: building {tool.package} {version}", file=sys.stderr, flush=True)
    ldflags = " ".join(["-s", "-w", *flags])
    subprocess.run(
        ["go", "build", f"-p={parallel}", "-ldflags", ldflags, "-o", str(output), tool.package],
        cwd=module_dir,
        env=env,
        check=True,
    )


def _go_install(tool: InstalledTool, output: Path, parallel: int) -> None:
    """``go install`` into a scratch GOBIN (module mode outside any go.mod), then move."""
    env = go_env()
    env["GOFLAGS"] = "-trimpath -buildvcs=false"
    print(f"{tool.name}: installing {tool.package}@{tool.version}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as gobin:
        env["GOBIN"] = gobin
        ldflags = " ".join(["-s", "-w", *tool.ldflags])
        subprocess.run(
            [
                "go",
                "install",
                f"-p={parallel}",
                "-ldflags",
                ldflags,
                f"{tool.package}@{tool.version}",
            ],
            cwd=gobin,
            env=env,
            check=True,
        )
        built = Path(gobin) / tool.package.rsplit("/", 1)[-1]
        built.rename(output)


def _timing_path(binary: Path) -> Path:
    return binary.with_name(binary.name + ".build-seconds")


def recorded_build_seconds(root: Path | None = None) -> dict[str, float]:
    """How long each cached binary took to build when it was built (its cold build time)."""
    out: dict[str, float] = {}
    for tool in ALL_TOOLS:
        path = _timing_path(binary_path(tool, root))
        if path.exists():
            out[tool.name] = float(path.read_text())
    return out


ALL_TOOLS: tuple[GoTool | InstalledTool, ...] = (*TOOLS, *NODE_TOOLS, *KIND_TOOLS)


def tool_named(name: str) -> GoTool | InstalledTool:
    return next(t for t in ALL_TOOLS if t.name == name)


def ensure_tools(root: Path | None = None) -> dict[str, Path]:
    """Build every missing tool; return name -> binary path."""
    return {tool.name: build(tool, root) for tool in TOOLS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tools to build (default: the host's)")
    parser.add_argument("--kind", action="store_true", help="also the kind node image's tools")
    parser.add_argument("--print-path", action="store_true", help="only print cached paths")
    args = parser.parse_args(argv)
    selected = [t for t in ALL_TOOLS if t.name in args.names] if args.names else list(TOOLS)
    unknown = set(args.names) - {t.name for t in ALL_TOOLS}
    if unknown:
        parser.error(f"unknown tools: {sorted(unknown)}")
    if args.kind and not args.names:
        selected = list(ALL_TOOLS)
    if args.print_path:
        for tool in selected:
            print(binary_path(tool))
        return 0
    started = time.monotonic()
    for tool in selected:
        build(tool)
    print(f"tools ready in {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
