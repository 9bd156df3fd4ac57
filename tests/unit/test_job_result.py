"""The Job's report: the whole result printed as the last line, the compact one written to the
termination message. (Encoding and compacting themselves: tests/unit/test_api_result.py.)"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from inshape_api.result import TERMINATION_MESSAGE_LIMIT, RunResult, decode
from inshape_jobs.result import emit
from tests.samples import PROMOTED


def with_many_offsets(partitions: int) -> RunResult:
    offsets = {str(p): (10**9 + p, 2 * 10**9 + p) for p in range(partitions)}
    return replace(PROMOTED, offsets=offsets)


def test_emit_prints_the_full_result_and_writes_the_compact_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = with_many_offsets(150)
    path = tmp_path / "termination-log"
    emit(result, str(path))
    printed = capsys.readouterr().out
    assert printed.endswith("\n") and printed.count("\n") == 1
    assert printed == result.encode() + "\n"
    assert decode(printed) == result
    written = path.read_text()
    assert len(written.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(written)["truncated"] is True
    assert written == result.compact()
    assert decode(written).modelUri == result.modelUri


def test_emit_small_result_writes_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    emit(PROMOTED, str(path))
    assert path.read_text() == PROMOTED.encode()
    assert decode(path.read_text()) == PROMOTED


@pytest.mark.parametrize("termination_path", [None, ""])
def test_emit_without_a_termination_path_only_prints(
    termination_path: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emit(PROMOTED, termination_path)
    assert decode(capsys.readouterr().out) == PROMOTED
    assert list(tmp_path.iterdir()) == []
