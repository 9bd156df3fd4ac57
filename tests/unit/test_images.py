"""The project image's build inputs and choices (hack/inshape_hack/images.py): real files only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inshape_hack.images import (
    CA_SECRET_ID,
    app_version,
    build_argv,
    client_major,
    docker_clis,
    input_hash,
    pip_ca_bundle,
    source_files,
)

BASE_ID = "sha256:" + "ab" * 32


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small checkout: the build inputs, and files the build does not take."""
    files = {
        "Dockerfile": "FROM scratch\n",
        ".dockerignore": "**\n",
        "pyproject.toml": "[project]\nname = 'x'\n",
        "README.md": "# x\n",
        "jobs/inshape_jobs/__init__.py": "",
        "jobs/inshape_jobs/update.py": "X = 1\n",
        "operator/inshape_operator/handlers.py": "Y = 2\n",
        "hack/inshape_hack/images.py": "Z = 3\n",
        "tests/unit/test_x.py": "",
        "charts/inshape/Chart.yaml": 'apiVersion: v2\nname: inshape\nappVersion: "1.2.3"\n',
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_source_files_are_the_build_inputs_only(tree: Path) -> None:
    names = [p.relative_to(tree).as_posix() for p in source_files(tree)]
    assert names == [
        "Dockerfile",
        ".dockerignore",
        "pyproject.toml",
        "README.md",
        "jobs/inshape_jobs/__init__.py",
        "jobs/inshape_jobs/update.py",
        "operator/inshape_operator/handlers.py",
    ]


def test_hash_is_stable_for_the_same_inputs(tree: Path) -> None:
    assert input_hash(tree, BASE_ID) == input_hash(tree, BASE_ID)


@pytest.mark.parametrize(
    "name",
    ["jobs/inshape_jobs/update.py", "operator/inshape_operator/handlers.py", "Dockerfile",
     "pyproject.toml", "README.md", ".dockerignore"],
)  # fmt: skip
def test_hash_changes_when_a_build_input_changes(tree: Path, name: str) -> None:
    before = input_hash(tree, BASE_ID)
    (tree / name).write_text((tree / name).read_text() + "# changed\n")
    assert input_hash(tree, BASE_ID) != before


def test_hash_changes_when_a_source_file_is_added_or_renamed(tree: Path) -> None:
    before = input_hash(tree, BASE_ID)
    new = tree / "operator" / "inshape_operator" / "extra.py"
    new.write_text("")
    added = input_hash(tree, BASE_ID)
    assert added != before
    new.rename(new.with_name("other.py"))
    assert input_hash(tree, BASE_ID) not in (before, added)


def test_hash_changes_with_the_base_image(tree: Path) -> None:
    assert input_hash(tree, BASE_ID) != input_hash(tree, "sha256:" + "cd" * 32)


@pytest.mark.parametrize(
    "name",
    ["hack/inshape_hack/images.py", "tests/unit/test_x.py", "charts/inshape/Chart.yaml",
     "jobs/inshape_jobs/__pycache__/update.cpython-311.pyc", "notes.txt"],
)  # fmt: skip
def test_hash_ignores_files_the_build_does_not_take(tree: Path, name: str) -> None:
    before = input_hash(tree, BASE_ID)
    path = tree / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("unrelated\n")
    assert input_hash(tree, BASE_ID) == before


def test_app_version_is_the_charts(tree: Path) -> None:
    assert app_version(tree / "charts" / "inshape" / "Chart.yaml") == "1.2.3"


def test_pip_ca_bundle_only_when_the_file_exists(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    missing = str(tmp_path / "missing.crt")
    assert pip_ca_bundle({"PIP_CERT": str(bundle)}) == bundle
    assert pip_ca_bundle({"REQUESTS_CA_BUNDLE": str(bundle)}) == bundle
    assert pip_ca_bundle({"PIP_CERT": missing, "REQUESTS_CA_BUNDLE": str(bundle)}) == bundle
    assert pip_ca_bundle({"PIP_CERT": missing}) is None
    assert pip_ca_bundle({"PIP_CERT": ""}) is None
    assert pip_ca_bundle({}) is None


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("Docker version 20.10.24+dfsg1, build 297e128\n", 20),
        ("Docker version 28.2.2, build e6534b4\n", 28),
        ("podman version 4.3.1\n", 4),
        ("", None),
    ],
)
def test_client_major(output: str, major: int | None) -> None:
    assert client_major(output) == major


def test_build_argv_passes_the_ca_secret_only_when_given(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    plain = build_argv("docker", tmp_path, image="inshape:1", base="base:1", inputs="h", ca=None)
    with_ca = build_argv("docker", tmp_path, image="inshape:1", base="base:1", inputs="h", ca=ca)
    assert "--secret" not in plain
    assert with_ca[with_ca.index("--secret") + 1] == f"id={CA_SECRET_ID},src={ca}"
    assert plain[-1] == with_ca[-1] == str(tmp_path)
    assert "PYTHON_IMAGE=base:1" in plain


def test_docker_clis_in_path_order_without_duplicates(tmp_path: Path) -> None:
    first, second, third = (tmp_path / d for d in ("a", "b", "c"))
    for folder in (first, second, third):
        folder.mkdir()
    for folder in (first, third):
        (folder / "docker").write_text("#!/bin/sh\n")
        (folder / "docker").chmod(0o755)
    (second / "docker").symlink_to(third / "docker")  # the same CLI as c's
    found = list(docker_clis(os.pathsep.join(map(str, (first, second, third, tmp_path)))))
    assert found == [str(first / "docker"), str(second / "docker")]
