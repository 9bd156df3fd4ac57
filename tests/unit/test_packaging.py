"""The product wheel and image hold what runs in the cluster (api/, jobs/, operator/) and
nothing of the dev harness (hack/), the tests or the benches."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from inshape_hack import images

ROOT = Path(__file__).resolve().parents[2]
# Each product package and the folder it lives in.
PRODUCT = {"inshape_api": "api", "inshape_jobs": "jobs", "inshape_operator": "operator"}
HARNESS = ("inshape_hack", "hack", "tests", "bench")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file names in the wheel `pip wheel .` builds, as the Dockerfile builds it.

    With hatchling in the venv (the dev group has it) the build is offline; without it, pip
    fetches the build backend into an isolated environment first.
    """
    out = tmp_path_factory.mktemp("wheel")
    offline = importlib.util.find_spec("hatchling") is not None
    flags = ["--no-build-isolation", "--no-index"] if offline else []
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    (built,) = out.glob("inshape-*.whl")
    with zipfile.ZipFile(built) as archive:
        return archive.namelist()


def test_the_wheel_holds_exactly_the_product_packages(wheel: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel}
    assert {t for t in tops if not t.endswith(".dist-info")} == set(PRODUCT)
    assert not [n for n in wheel if n.startswith(tuple(f"{h}/" for h in HARNESS))]
    assert not [n for n in wheel if n.endswith(".pyc") or "/__pycache__/" in n]


def test_the_wheel_holds_every_module_of_the_product(wheel: list[str]) -> None:
    sources = {
        path.relative_to(ROOT / folder).as_posix()
        for package, folder in PRODUCT.items()
        for path in (ROOT / folder / package).rglob("*.py")
    }
    assert sources <= set(wheel), sorted(sources - set(wheel))


def test_the_wheel_packages_are_the_product_folders() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(packages) == sorted(f"{folder}/{p}" for p, folder in PRODUCT.items())


def dockerfile_sources() -> set[str]:
    """What the Dockerfile's COPY instructions take from the build context (not --from)."""
    sources: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources.update(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    return sources


def test_the_image_copies_the_product_folders_and_no_harness() -> None:
    assert dockerfile_sources() == {"pyproject.toml", "README.md", *PRODUCT.values()}
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^(COPY|ADD)\b.*\b(hack|tests|bench|charts)\b", text, re.MULTILINE)


def test_the_build_context_lets_in_what_the_dockerfile_copies() -> None:
    """.dockerignore drops everything, then lets in exactly what the Dockerfile copies."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "**" in lines
    assert allowed == dockerfile_sources()


def test_the_image_hash_covers_what_the_dockerfile_copies() -> None:
    """The cached image is rebuilt when any copied folder or file changes."""
    copied = dockerfile_sources()
    assert set(images.SOURCE_DIRS) == copied & set(PRODUCT.values())
    assert copied - set(images.SOURCE_DIRS) <= set(images.ROOT_INPUTS)
