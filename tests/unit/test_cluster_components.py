"""The local cluster's command lines and PKI: the flags the issue depends on are really there."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from inshape_hack.certs import make_pki
from inshape_hack.components import (
    CONTROLLERS,
    Ports,
    apiserver_argv,
    certificate_specs,
    controller_manager_argv,
    pod_ip_start,
)
from inshape_hack.gotools import kubernetes_ldflags, required_version
from inshape_hack.helm import with_kube_version

PORTS = Ports(1, 2, 3, 4, 5)


def test_apiserver_has_rbac_service_accounts_and_verified_kubelet_tls() -> None:
    argv = apiserver_argv(Path("/bin/kube-apiserver"), Path("/pki"), PORTS)
    flags = dict(a.removeprefix("--").split("=", 1) for a in argv[1:])
    assert flags["authorization-mode"] == "Node,RBAC"
    assert flags["service-account-signing-key-file"] == "/pki/sa.key"
    assert flags["service-account-key-file"] == "/pki/sa.pub"
    assert flags["kubelet-certificate-authority"] == "/pki/ca.crt"
    assert flags["secure-port"] == "3"


def test_controller_manager_runs_the_controllers_the_cluster_needs() -> None:
    argv = controller_manager_argv(Path("/kcm"), Path("/pki"), Path("/kc"), Path("/c"), PORTS)
    controllers = next(a for a in argv if a.startswith("--controllers=")).split("=")[1]
    needed = {
        "job-controller",
        "deployment-controller",
        "replicaset-controller",
        "endpoints-controller",
        "endpointslice-controller",
        "garbage-collector-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
    }
    assert needed <= set(controllers.split(","))
    assert set(controllers.split(",")) == set(CONTROLLERS)


def test_pod_ip_ranges() -> None:
    assert pod_ip_start(42) == "127.42.0.2"
    with pytest.raises(ValueError, match="outside"):
        pod_ip_start(0)


def test_pki_leaves_chain_to_the_ca_with_the_right_identities(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, certificate_specs())
    ca = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.leaves["admin"].cert.read_bytes())
    admin.verify_directly_issued_by(ca)
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    serving = x509.load_pem_x509_certificate(pki.leaves["apiserver"].cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600


def test_required_version_reads_single_and_block_requires() -> None:
    gomod = "module x\n\nrequire a/b v1.2.3\n\nrequire (\n\tc/d v0.1.0 // indirect\n)\n"
    assert required_version(gomod, "a/b") == "v1.2.3"
    assert required_version(gomod, "c/d") == "v0.1.0"
    with pytest.raises(ValueError, match="e/f"):
        required_version(gomod, "e/f")


def test_kubernetes_version_stamp() -> None:
    flags = kubernetes_ldflags("v1.34.4", "2025-01-01T00:00:00Z")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=34" in flags


def test_helm_gets_a_kube_version_only_when_rendering_offline() -> None:
    assert with_kube_version(["template", "x", "charts/x"], "v1.34.4")[-1] == (
        "--kube-version=v1.34.4"
    )
    assert with_kube_version(["--debug", "lint", "c"], "v1.34.4")[-1] == "--kube-version=v1.34.4"
    assert with_kube_version(["template", "--kube-version", "1.30", "c"], "v1.34.4") == [
        "template",
        "--kube-version",
        "1.30",
        "c",
    ]
    assert with_kube_version(["install", "x", "c"], "v1.34.4") == ["install", "x", "c"]
