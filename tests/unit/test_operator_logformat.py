"""INSHAPE_LOG_FORMAT=json: one JSON object per line, with Kopf's object context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from inshape_operator.logformat import JsonFormatter, use_json


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("inshape.test.logformat")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    use_json(logger)
    yield logger, stream
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_plain_record_is_one_object_with_time_level_logger_message(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info("lag %d on %s", 5, "digits\nevents")
    (line,) = lines(stream)
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "INFO" and line["logger"] == "inshape.test.logformat"
    assert line["message"] == "lag 5 on digits\nevents"
    assert str(line["time"]).endswith("+00:00")


def test_kopf_object_context_and_exceptions(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    ref = {"apiVersion": "inshape.dev/v1alpha1", "kind": "ModelUpdatePolicy", "name": "digits",
           "namespace": "ml", "uid": None}  # fmt: skip
    adapter = logging.LoggerAdapter(logger, {"k8s_ref": ref, "k8s_skip": False})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        adapter.exception("run failed")
    (line,) = lines(stream)
    assert line["object"] == {k: v for k, v in ref.items() if v is not None}
    assert "RuntimeError: boom" in str(line["exception"])
    assert "\n" not in stream.getvalue().rstrip("\n")


def test_unserialisable_arguments_do_not_break_a_line() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%s", (object(),), None)
    record.k8s_ref = {"name": object()}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"].startswith("<object object")
    assert str(line["object"]["name"]).startswith("<object object")


def test_kopfs_own_object_logger_and_configure_end_in_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What __main__ does: kopf.configure's root handler, then use_json; a handler logs through
    Kopf's ObjectLogger (the `logger` Kopf passes to handlers)."""
    import kopf

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        kopf.configure(verbose=False)
        use_json()
        body = {"apiVersion": "inshape.dev/v1alpha1", "kind": "ModelUpdatePolicy",
                "metadata": {"name": "digits", "namespace": "ml", "uid": "u-1"}}  # fmt: skip
        logger = kopf.LocalObjectLogger(body=kopf.Body(body), settings=kopf.OperatorSettings())
        logger.info("started %s", "run 3")
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers[:], root.level = saved
    out = capsys.readouterr()
    (line,) = [json.loads(text) for text in (out.out + out.err).splitlines() if text.strip()]
    assert line["message"] == "started run 3" and line["level"] == "INFO"
    assert line["object"] == {"apiVersion": "inshape.dev/v1alpha1", "kind": "ModelUpdatePolicy",
                              "name": "digits", "namespace": "ml", "uid": "u-1"}  # fmt: skip
