"""Strimzi's CustomResourceDefinitions (Kafka, KafkaNodePool, KafkaTopic, KafkaUser) of two
releases, for tests against a real API server: 0.45.0 serves kafka.strimzi.io/v1beta2 only,
1.2.0 serves v1 only.

Strimzi publishes no CRD YAML on Maven Central, but it publishes what makes them: the
`io.strimzi:api` jar (the annotated model classes) and `io.strimzi:crd-generator` (a jar with
its dependencies). Running the generator with the arguments of that release's api/pom.xml
gives the YAML of packaging/install/cluster-operator/04*-Crd-*.yaml byte for byte; the
pinned SHA-256 sums below are those of the released files, so a difference fails loudly.
Jars come through Maven; the YAML is cached under ~/.cache/inshape/strimzi-crds/<version>/.

`python -m inshape_hack.strimzi_crds` prints the folders (generating what is missing).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inshape_hack.paths import cache_dir

MODEL = "io.strimzi.api.kafka.model"
# The classes whose CRDs the tests apply, and the file names the cache uses.
KINDS = {
    "kafka": f"{MODEL}.kafka.Kafka",
    "kafkanodepool": f"{MODEL}.nodepool.KafkaNodePool",
    "kafkatopic": f"{MODEL}.topic.KafkaTopic",
    "kafkauser": f"{MODEL}.user.KafkaUser",
}
# The generator's fixed arguments, as every release's api/pom.xml passes them.
COMMON_ARGS = (
    "--label",
    "app:strimzi",
    "--label",
    "strimzi.io/crd-install:true",
    "--target-kube",
    "1.16+",
    "--crd-api-version",
    "v1",
)


@dataclass(frozen=True)
class Release:
    version: str
    java: int  # the major Java version the generator was compiled for
    api_versions: dict[str, str]  # kind file name -> --api-versions (storage is the last)
    jars: dict[str, str]  # artifactId -> sha256 of the jar
    crds: dict[str, str]  # kind file name -> sha256 of the released YAML

    @property
    def served(self) -> str:
        """The kafka.strimzi.io version its Kafka CRD serves."""
        return self.api_versions["kafka"].split(",")[-1]


V1BETA2_ONLY = Release(
    version="0.45.0",
    java=17,
    api_versions={
        "kafka": "v1beta2",
        "kafkanodepool": "v1beta2",
        # KafkaTopic and KafkaUser kept their older versions for upgrades from v1beta1 CRDs.
        "kafkatopic": "v1alpha1,v1beta1,v1beta2",
        "kafkauser": "v1alpha1,v1beta1,v1beta2",
    },
    jars={
        "api": "7112a02ebf29d38b2eb2ad8da90353d2a3922aea2fe2bddc2abe4e5956fdfe9a",
        "crd-generator": "f03aab1b83d29bbd340ce484a4bb651faac7685c685865a30351a636da6008ea",
    },
    crds={
        "kafka": "396fec12840ccebbb9726442b9735a2d8938cec195ee0157efa13cb989e9e5a4",
        "kafkanodepool": "da217d6584f9460b58513a4e0678f549798b85825376f5cdcfb27718e76acfd9",
        "kafkatopic": "b6ef3c460eb018c63a37c662ef4251ccd03d321ba3a6ae27c7e0e6a94eb63395",
        "kafkauser": "58df902c3122452ecd3b207fcee395fbd84aea365bdd57ca4a69416eee4e2998",
    },
)
V1_ONLY = Release(
    version="1.2.0",
    java=21,
    api_versions=dict.fromkeys(KINDS, "v1"),
    jars={
        "api": "566961ae5e5646a001ae91312beda5cba3a5d467e740e205e1b761754335fe4e",
        "crd-generator": "76bb2430e702a1e6a24c071d26c865d5e9572cbc630d176d3b912033ae23ed00",
    },
    crds={
        "kafka": "b5b27fc8d52068a77cde7c40d47c068023c7b4e92fc266c45200db2d2506392a",
        "kafkanodepool": "411c1b32ef8c1a6408ac9d4fe791115a6ce2b41107204588f976a3ed19be2430",
        "kafkatopic": "36390f0731c699448076d4ee739e8b7f331d083e91a7fb71500aaa830ab1127e",
        "kafkauser": "c7e91b9b027a516b43dc7d369e781ee23a6ea177ae15fe0c33af6f722e26e05f",
    },
)
RELEASES = (V1BETA2_ONLY, V1_ONLY)


class CrdError(RuntimeError):
    """The CRDs could not be made (no Maven, no suitable Java, a checksum that differs)."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def java_major(version_output: str) -> int | None:
    """The major version from `java -version`'s output ("17.0.15", "21", "1.8.0_412")."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _java_candidates() -> Iterator[Path]:
    for variable in ("INSHAPE_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(variable):
            yield Path(os.environ[variable]) / "bin" / "java"
    if found := shutil.which("java"):
        yield Path(found)
    yield from sorted(Path("/usr/lib/jvm").glob("*/bin/java"))


def find_java(at_least: int) -> Path:
    """A Java runtime of major version `at_least` or newer."""
    seen = []
    for java in _java_candidates():
        if not java.exists():
            continue
        output = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, check=False, timeout=60
        ).stderr
        major = java_major(output)
        seen.append(f"{java} ({major})")
        if major is not None and major >= at_least:
            return java
    raise CrdError(
        f"Strimzi's CRD generator needs Java {at_least}+; found: {', '.join(seen) or 'none'} "
        "(set INSHAPE_JAVA_HOME to a newer JDK)"
    )


def fetch_jar(artifact: str, version: str, expected: str, into: Path) -> Path:
    """io.strimzi:<artifact>:<version> through Maven, checked against its pinned sum."""
    if shutil.which("mvn") is None:
        raise CrdError("Maven (mvn) is needed once to fetch Strimzi's jars")
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact=io.strimzi:{artifact}:{version}:jar",
            f"-DoutputDirectory={into}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    jar = into / f"{artifact}-{version}.jar"
    if sha256(jar) != expected:
        raise CrdError(f"{jar}: sha256 {sha256(jar)}, pinned {expected}")
    return jar


def _complete(folder: Path, release: Release) -> bool:
    return all(
        (folder / f"{kind}.yaml").is_file() and sha256(folder / f"{kind}.yaml") == digest
        for kind, digest in release.crds.items()
    )


def generate(release: Release, into: Path) -> None:
    """Run the release's CRD generator once per --api-versions, writing <kind>.yaml files."""
    java = find_java(release.java)
    with tempfile.TemporaryDirectory(prefix="strimzi-jars-") as scratch:
        jars = [
            fetch_jar(artifact, release.version, digest, Path(scratch))
            for artifact, digest in release.jars.items()
        ]
        for api_versions in sorted(set(release.api_versions.values())):
            kinds = [k for k, v in release.api_versions.items() if v == api_versions]
            outputs = [f"{KINDS[kind]}={into / f'{kind}.yaml'}" for kind in kinds]
            subprocess.run(
                [
                    str(java),
                    "-cp",
                    os.pathsep.join(str(jar) for jar in jars),
                    "io.strimzi.crdgenerator.CrdGenerator",
                    *COMMON_ARGS,
                    "--api-versions",
                    api_versions,
                    "--storage-version",
                    api_versions.split(",")[-1],
                    "--yaml",
                    *outputs,
                ],
                check=True,
                capture_output=True,
                timeout=600,
            )
    for kind, digest in release.crds.items():
        made = into / f"{kind}.yaml"
        if sha256(made) != digest:
            raise CrdError(f"{made}: sha256 {sha256(made)}, Strimzi {release.version} {digest}")


def ensure_crds(release: Release) -> Path:
    """The folder with the release's <kind>.yaml CRDs, made the first time only."""
    folder = cache_dir() / "strimzi-crds" / release.version
    if _complete(folder, release):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{release.version}.", dir=folder.parent))
    partial.chmod(0o755)
    try:
        generate(release, partial)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            partial.rename(folder)  # whole or not at all
        except OSError:
            if not _complete(folder, release):  # else another session made it meanwhile
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def main() -> int:
    for release in RELEASES:
        print(f"{release.version} ({release.served}): {ensure_crds(release)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
