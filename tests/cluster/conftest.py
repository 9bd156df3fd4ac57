"""A bare API server (etcd + kube-apiserver, no kind) for the tests here that need nothing
else: one per session, started the first time a test asks for it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inshape_hack.apiserver import ApiServer


@pytest.fixture(scope="session")
def api_server() -> Iterator[ApiServer]:
    with (
        tempfile.TemporaryDirectory(prefix="inshape-apiserver-") as folder,
        ApiServer(Path(folder)) as server,
    ):
        yield server
