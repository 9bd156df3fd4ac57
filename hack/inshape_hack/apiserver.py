"""A bare Kubernetes API server (etcd + kube-apiserver, the project's own builds) on loopback,
for tests that need only what the API server does: CRD schemas, the status subresource,
discovery, RBAC decisions, `apply --dry-run=server`. No kubelet, no controllers (so no
namespace deletion, no default ServiceAccounts), no containers, and much lighter than kind.

    with ApiServer(tmp) as server:
        server.kubectl()("get", "--raw", "/readyz")
"""

from __future__ import annotations

import secrets
import ssl
import urllib.request
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inshape_hack import gotools
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.polling import wait_until
from inshape_hack.ports import accepts, free_port
from inshape_hack.process import LocalServer, ServiceProcess

ADMIN = "inshape-admin"


def _service_account_keys(folder: Path) -> tuple[Path, Path]:
    """The key pair the API server signs and checks ServiceAccount tokens with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = folder / "sa.key"
    public = folder / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def kubeconfig(server: str, token: str, ca: Path) -> dict[str, object]:
    """An admin kubeconfig trusting the API server's self-signed serving certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": ADMIN, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": ADMIN}}],
        "current-context": "local",
    }


class ApiServer(LocalServer):
    """etcd and kube-apiserver in `folder`; `kubeconfig_path` reaches it as system:masters."""

    def __init__(self, folder: Path) -> None:
        super().__init__("kube-apiserver")
        self.folder = folder
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.kubeconfig_path = folder / "kubeconfig"
        self._etcd: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubectl(self, namespace: str | None = None) -> KubectlRunner:
        binary = gotools.build(gotools.tool_named("kubectl"), quiet=True)
        return KubectlRunner(binary, self.kubeconfig_path, namespace)

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        etcd = gotools.build(gotools.tool_named("etcd"), quiet=True)
        self._etcd = ServiceProcess(
            "etcd",
            [
                str(etcd),
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # test data: speed over durability
            ],
            self.folder / "etcd.log",
            {},
        )
        self._etcd.start()
        wait_until(lambda: accepts("127.0.0.1", client), 60, "etcd accepts connections")
        return f"http://127.0.0.1:{client}"

    def _ready(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return bool(response.status == 200)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        etcd = self._start_etcd()
        private, public = _service_account_keys(self.folder)
        tokens = self.folder / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN},{ADMIN},"system:masters"\n')
        binary = gotools.build(gotools.tool_named("kube-apiserver"), quiet=True)
        self._launch(
            [
                str(binary),
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.folder / 'certs'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={public}",
                f"--service-account-signing-key-file={private}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--disable-admission-plugins=ServiceAccount",  # no controller makes them
            ],
            self.folder / "kube-apiserver.log",
            {},
            answers=self._ready,
            what="kube-apiserver is ready",
            timeout=120,
            retry_on=(OSError,),
        )
        # Written at start-up for localhost and 127.0.0.1; it is its own CA.
        serving = self.folder / "certs" / "apiserver.crt"
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig(self.url, self.token, serving)))

    def stop(self) -> None:
        super().stop()
        if self._etcd is not None:
            self._etcd.stop()
            self._etcd = None
