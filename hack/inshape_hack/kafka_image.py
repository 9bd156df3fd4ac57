"""The Kafka broker image for kind: the JRE base + the Maven Central jars + an entrypoint.

``ensure_kafka_image(docker)`` builds ``localhost/inshape/kafka:<kafka version>-<hash>`` on
top of the Debian JRE base (bases.JRE, rootfs.py), from the jars kafka.py already fetches, the
log4j2 config and hack/kafka/entrypoint.sh. The tag hashes every input, so a second call is a
lookup. Nothing is pulled: the base is local and the build has no network.

    python -m inshape_hack.kafka_image      # build (or find) it and print its name
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.bases import JRE
from inshape_hack.docker import DockerEndpoint, docker_cli, ensure_docker
from inshape_hack.kafka import LOG4J_CONFIG, ensure_jars, kafka_version
from inshape_hack.kafka_config import BrokerConfig, properties_text
from inshape_hack.paths import HACK_DIR
from inshape_hack.rootfs import IMAGE_PREFIX, ensure_rootfs_image, image_exists

ENTRYPOINT = HACK_DIR / "kafka" / "entrypoint.sh"
KAFKA_HOME = "/opt/kafka"
KAFKA_UID = 65532  # distroless' "nonroot": no user of the base image has it
HEAP_OPTS = "-Xmx512m -Xms128m"  # a test broker: small, and below the pod's memory limit


def dockerfile(base: str) -> str:
    return f"""\
FROM {base}
# A passwd entry for the broker's uid (the JVM looks up its user's name and home), and the
# data dir owned by it: a fresh docker volume copies that ownership.
RUN echo 'kafka:x:{KAFKA_UID}:{KAFKA_UID}:Kafka broker:/var/lib/kafka:/usr/sbin/nologin' \\
      >> /etc/passwd \\
 && echo 'kafka:x:{KAFKA_UID}:' >> /etc/group \\
 && mkdir -p /var/lib/kafka \\
 && chown {KAFKA_UID}:{KAFKA_UID} /var/lib/kafka
COPY libs/ {KAFKA_HOME}/libs/
COPY config/ {KAFKA_HOME}/config/
COPY bin/ {KAFKA_HOME}/bin/
ENV KAFKA_HOME={KAFKA_HOME} KAFKA_HEAP_OPTS="{HEAP_OPTS}"
USER {KAFKA_UID}:{KAFKA_UID}
WORKDIR /var/lib/kafka
EXPOSE 9092 9094
ENTRYPOINT ["{KAFKA_HOME}/bin/kafka-entrypoint"]
"""


@dataclass(frozen=True)
class ImageInputs:
    """Everything the image is made of; its tag is a hash of all of it."""

    base: str
    libs: Path
    files: dict[str, bytes]  # build-context path -> content (all but the jars)

    def jars(self) -> list[Path]:
        return sorted(self.libs.glob("*.jar"))

    def digest(self) -> str:
        sha = hashlib.sha256(self.base.encode())
        for name, content in sorted(self.files.items()):
            sha.update(f"\0{name}\0".encode() + content)
        for jar in self.jars():
            # The libs folder is keyed by the pom's hash, but a jar could still be re-fetched.
            sha.update(f"\0{jar.name}\0".encode() + _file_digest(jar))
        return sha.hexdigest()[:12]

    def image(self) -> str:
        return f"{IMAGE_PREFIX}/kafka:{kafka_version()}-{self.digest()}"


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def image_inputs() -> ImageInputs:
    base = JRE.image()
    return ImageInputs(
        base=base,
        libs=ensure_jars(),
        files={
            "Dockerfile": dockerfile(base).encode(),
            "bin/kafka-entrypoint": ENTRYPOINT.read_bytes(),
            "config/log4j2.properties": LOG4J_CONFIG.read_bytes(),
            "config/defaults.properties": properties_text(BrokerConfig().properties()).encode(),
        },
    )


def write_context(inputs: ImageInputs, context: Path) -> None:
    """The docker build context: the files, and the jars hard-linked (or copied) beside them."""
    for name, content in inputs.files.items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o755 if name.startswith("bin/") else 0o644)  # COPY keeps the mode
    libs = context / "libs"
    libs.mkdir()
    for jar in inputs.jars():
        try:
            os.link(jar, libs / jar.name)
        except OSError:  # another filesystem
            shutil.copy2(jar, libs / jar.name)


def build(docker: DockerEndpoint, inputs: ImageInputs, image: str) -> None:
    base = ensure_rootfs_image(docker, JRE)
    if base != inputs.base:
        raise RuntimeError(f"JRE base is {base}, the image inputs say {inputs.base}")
    # The classic builder takes FROM from the local store when it is there (BuildKit would
    # ask a registry first); no network for RUN either.
    env = {**docker.env(), "DOCKER_BUILDKIT": "0"}
    with tempfile.TemporaryDirectory(prefix="kafka-image-") as tmp:
        context = Path(tmp)
        write_context(inputs, context)
        done = subprocess.run(
            [docker_cli(), "build", "--network", "none", "--tag", image, str(context)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"docker build of {image} failed:\n{done.stdout}{done.stderr}")


def ensure_kafka_image(docker: DockerEndpoint) -> str:
    """The broker image, built the first time and looked up after that."""
    inputs = image_inputs()
    image = inputs.image()
    if not image_exists(docker, image):
        build(docker, inputs, image)
    return image


def main() -> int:
    started = time.monotonic()
    image = ensure_kafka_image(ensure_docker())
    print(f"{image} ({time.monotonic() - started:.1f}s)", file=sys.stderr)
    print(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
