"""Reporting the run's result: printed as the last line, written to the termination message."""

from __future__ import annotations

from pathlib import Path

from inshape_api.result import RunResult


def emit(result: RunResult, termination_path: str | None) -> None:
    """Print the whole result; write it, shortened to Kubernetes' limit if need be, to
    `termination_path` (the container's terminationMessagePath) for the operator."""
    print(result.encode(), flush=True)
    if termination_path:
        Path(termination_path).write_text(result.compact())
