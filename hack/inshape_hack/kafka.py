"""The Apache Kafka broker in KRaft mode (one node, broker + controller), from Maven Central jars.

`ensure_jars()` resolves hack/kafka/pom.xml with Maven once and caches the jars by version and
pom hash; `KafkaBroker` formats a data dir and runs `kafka.Kafka` on free loopback ports.
Given test certificates (kafka_certs.py), it also opens the TLS, MTLS and SCRAM listeners of
kafka_listeners.py, each on its own port (`broker.address(Role.TLS)`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from kafka.admin import KafkaAdminClient

from inshape_hack.kafka_certs import KafkaPki
from inshape_hack.kafka_config import SINGLE_NODE_SETTINGS
from inshape_hack.kafka_listeners import BrokerTls, Role, loopback_tls
from inshape_hack.paths import HACK_DIR, cache_dir
from inshape_hack.ports import accepts, free_port
from inshape_hack.process import LocalServer

POM = HACK_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = HACK_DIR / "kafka" / "log4j2.properties"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise RuntimeError(f"{POM} does not set kafka.version")
    return match.group(1)


def ensure_jars() -> Path:
    """The folder of broker jars, fetched through Maven the first time only."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    libs = cache_dir() / f"kafka-{kafka_version()}-{digest}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka broker jars")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    (libs / ".complete").write_text(f"fetched in {time.monotonic() - started:.1f}s\n")
    return libs


def _cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64 without padding, as kafka-storage makes.
    Like Kafka's Uuid.randomUuid, never one starting with '-': the CLI would read an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    data_dir: Path, port: int, controller_port: int, tls: BrokerTls | None = None
) -> str:
    listeners = [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller_port}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    if tls is not None:
        listeners += tls.bound()
        advertised += tls.advertised()
        protocols += tls.protocol_map()
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(protocols),
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir / "log"),
        **SINGLE_NODE_SETTINGS,  # shared with the broker image (kafka_image.py)
        **(tls.properties() if tls is not None else {}),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class KafkaBroker(LocalServer):
    """One KRaft broker. Keeps its ports across restart() so clients can reconnect.
    With ``pki``, its certificates (for 127.0.0.1) serve the secure listeners too."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        heap: str = "1g",
        pki: KafkaPki | None = None,
    ) -> None:
        super().__init__("kafka", stop_grace=20)
        self.data_dir = data_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.tls: BrokerTls | None = None
        if pki is not None:
            ports = {role: free_port() for role in Role}
            self.tls = loopback_tls(str(pki.broker_keystore), str(pki.ca_file), ports)

    @property
    def bootstrap_servers(self) -> str:
        """The PLAINTEXT listener, always there."""
        return f"127.0.0.1:{self.port}"

    def address(self, role: Role) -> str:
        """The bootstrap address of a secure listener (the broker needs ``pki`` for it)."""
        if self.tls is None:
            raise RuntimeError("this broker has no secure listeners: start it with pki")
        return self.tls.listener(role).address

    def _java(self, libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(
            server_properties(self.data_dir, self.port, self.controller_port, self.tls)
        )
        if not (self.data_dir / "log" / "meta.properties").exists():
            subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    _cluster_id(),
                    "-c",
                    str(config),
                ),
                check=True,
                capture_output=True,
            )
        self._launch(
            self._java(libs, "kafka.Kafka", str(config)),
            self.data_dir / "broker.log",
            dict(os.environ),
            answers=self._answers,
            what=f"the Kafka broker at {self.bootstrap_servers} answers",
            timeout=timeout,
            retry_on=(Exception,),
        )

    def _answers(self) -> bool:
        """The port opens before the broker has caught up with its metadata: then ask it."""
        if not accepts("127.0.0.1", self.port):
            return False
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000)
        admin.list_topics()
        admin.close()
        return True

    def restart(self) -> None:
        self.stop()
        self.start()


def main(argv: list[str] | None = None) -> int:
    """`python -m inshape_hack.kafka fetch`: fill the jar cache (what `make setup` runs)."""
    parser = argparse.ArgumentParser(prog="python -m inshape_hack.kafka")
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    started = time.monotonic()
    libs = ensure_jars()
    print(f"Kafka {kafka_version()} jars in {libs} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
