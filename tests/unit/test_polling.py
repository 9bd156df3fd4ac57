"""The one poll-until helper every wait of the harness, the tests and the benches stands on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inshape_hack.polling import wait_until


def answers(*values: object) -> Iterator[object]:
    yield from values
    while True:
        yield values[-1]


def test_returns_the_first_truthy_value() -> None:
    seen = answers(None, 0, "", "ready")
    assert wait_until(lambda: next(seen), 5, "ready", interval=0) == "ready"


def test_a_timeout_names_what_was_awaited_and_the_last_value() -> None:
    seen = answers(1, 2, 0)
    with pytest.raises(TimeoutError, match=r"waiting until the count is 3 \(last seen: 0\)"):
        wait_until(lambda: next(seen) == 3 or 0, 0.05, "the count is 3", interval=0.01)


def test_errors_retried_on_are_not_yet_and_the_last_one_is_reported_and_chained() -> None:
    attempts: list[int] = []

    def refused() -> bool:
        attempts.append(1)
        raise ConnectionRefusedError(f"attempt {len(attempts)}")

    with pytest.raises(TimeoutError, match="last seen: error ConnectionRefusedError") as failed:
        wait_until(refused, 0.05, "the port opens", interval=0.01, retry_on=(OSError,))
    assert len(attempts) > 1
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)
    assert str(failed.value.__cause__) == f"attempt {len(attempts)}"


def test_errors_not_retried_on_propagate_at_once() -> None:
    def broken() -> bool:
        raise KeyError("status")

    with pytest.raises(KeyError):
        wait_until(broken, 5, "never", retry_on=(OSError,))


def test_recovers_after_errors() -> None:
    seen = answers(OSError("refused"), OSError("refused"), "up")

    def check() -> object:
        value = next(seen)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(check, 5, "up", interval=0, retry_on=(OSError,)) == "up"


def test_a_dead_process_ends_the_wait_at_once() -> None:
    with pytest.raises(RuntimeError, match=r"the server answers: process exited \(last seen"):
        wait_until(lambda: False, 60, "the server answers", alive=lambda: False)
