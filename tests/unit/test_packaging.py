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
    assert dockerfile_sources() == {
        "pyproject.toml",
        "README.md",
        *PRODUCT.values(),
        *images.BUILT_DIRS,
    }
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
    assert copied - set(images.SOURCE_DIRS) <= {*images.ROOT_INPUTS, *images.BUILT_DIRS}


def test_the_native_wheel_folder_is_committed_so_a_plain_build_has_it() -> None:
    """`COPY .build/native/` needs the folder even where no wheel was built (docker build .)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--error-unmatch", ".build/native/README.md"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", ".build/native/x.whl"], check=False
    )
    assert ignored.returncode == 0, "built wheels stay out of git"


def test_the_image_installs_a_native_wheel_only_when_there_is_one() -> None:
    text = (ROOT / "Dockerfile").read_text()
    step = text[text.index("source=/native") :]
    assert '[ -f "$w" ] || continue' in step  # no wheel: the glob stays literal, skipped
    assert "|| echo" in step  # a wheel for another glibc: msgspec, not a failed build


def copy_tree(into: Path) -> None:
    for name in (*images.ROOT_INPUTS, "api/a.py", "jobs/native/crate/src/lib.rs"):
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_text(name)


def test_the_image_hash_follows_the_native_source_and_wheel_not_cargo_output(
    tmp_path: Path,
) -> None:
    copy_tree(tmp_path)
    first = images.input_hash(tmp_path, "base")
    target = tmp_path / "jobs/native/crate/target/release/big.so"
    target.parent.mkdir(parents=True)
    target.write_text("cargo output")
    assert images.input_hash(tmp_path, "base") == first
    (tmp_path / "jobs/native/crate/src/lib.rs").write_text("changed")
    second = images.input_hash(tmp_path, "base")
    assert second != first
    (tmp_path / ".build/native").mkdir(parents=True)
    (tmp_path / ".build/native/w.whl").write_bytes(b"wheel")
    assert images.input_hash(tmp_path, "base") != second


def test_the_native_wheel_is_cached_by_the_crate_sources(tmp_path: Path) -> None:
    from inshape_hack import native_wheel

    crate = tmp_path / "crate"
    for name in (*native_wheel.CRATE_INPUTS, "src/lib.rs"):
        (crate / name).parent.mkdir(parents=True, exist_ok=True)
        (crate / name).write_text(name)
    first = native_wheel.source_hash(crate)
    (crate / "target").mkdir()
    (crate / "target" / "out").write_text("x")
    assert native_wheel.source_hash(crate) == first
    (crate / "src" / "json.rs").write_text("fn f() {}")
    assert native_wheel.source_hash(crate) != first
    real = ROOT / native_wheel.CRATE
    assert {p.name for p in native_wheel.crate_files(real)} >= {"Cargo.lock", "lib.rs"}
