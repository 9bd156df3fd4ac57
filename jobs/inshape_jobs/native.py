"""The compiled record decoder (jobs/native/inshape_fastdecode), when it is installed.

It decodes a chunk's JSON values where the fetch buffers hold them, straight into the float64
rows, with the reference parser's verdict on every record (records.ChunkParser: msgspec, then
json.loads for the reason). It hands back the few records whose verdict depends on Python's
json leniency (NaN tokens, BOMs, lone surrogates, invalid UTF-8); the reference decides those.
Without the extension, or for a schema it does not take, the reference parser runs alone.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from inshape_jobs.batches import RecordSpans
from inshape_jobs.records import (
    Chunk,
    ChunkParser,
    IntArray,
    ParsedChunk,
    RawChunk,
    RecordSchema,
    Reject,
    with_string_labels,
)
from inshape_jobs.spans import SpanChunk

log = logging.getLogger(__name__)

EXTENSION = "inshape_fastdecode"
# INSHAPE_DECODER=msgspec keeps the extension out (to compare, or to rule it out).
DECODER_ENV = "INSHAPE_DECODER"
# The extension's reason codes: the index of the reason here. 255: the reference decides.
REASONS = (
    Reject.OVERSIZED,
    Reject.NOT_JSON,
    Reject.NOT_OBJECT,
    Reject.MISSING_FEATURE,
    Reject.NON_NUMERIC_FEATURE,
    Reject.NON_FINITE,
    Reject.MISSING_LABEL,
    Reject.BAD_LABEL,
)
DEFER = 255


class _Decoder(Protocol):
    def parse(
        self,
        buffers: list[bytes],
        counts: list[int],
        starts: IntArray,
        lengths: IntArray,
        *,
        features: npt.NDArray[np.float64],
        labels: npt.NDArray[Any],
        kept: IntArray,
    ) -> tuple[int, list[tuple[int, int]], list[tuple[int, str]]]: ...


class Parser(Protocol):
    """records.ChunkParser, or NativeParser: the same ParsedChunk from the same chunk."""

    schema: RecordSchema

    def parse(self, chunk: Chunk) -> ParsedChunk: ...


@cache
def extension() -> Any | None:
    """The extension module, or None (not installed, or turned off); logs once which."""
    if os.environ.get(DECODER_ENV, "").lower() == "msgspec":
        log.info("Record decoder: msgspec (%s=msgspec)", DECODER_ENV)
        return None
    try:
        module = importlib.import_module(EXTENSION)
    except ImportError as exc:
        log.info("Record decoder: msgspec (the compiled %s is not installed: %s)", EXTENSION, exc)
        return None
    log.info("Record decoder: compiled (%s)", EXTENSION)
    return module


def record_spans() -> RecordSpans | None:
    """The extension's record-section walker, for batches.decode_spans; None without it."""
    module = extension()
    return None if module is None else cast(RecordSpans, module.record_spans)


def make_parser(schema: RecordSchema, *, native: bool = True) -> Parser:
    """The compiled parser when it is installed and takes the schema, else the reference."""
    module = extension() if native else None
    if module is not None and flat_schema(schema):
        return NativeParser(schema, module)
    return ChunkParser(schema)


def flat_schema(schema: RecordSchema) -> bool:
    """Features and label all named once: what the compiled decoder is written for."""
    names = (*schema.features, schema.label)
    return bool(schema.features) and len(set(names)) == len(names)


@dataclass
class _Part:
    """Rows decided by one parser, addressed by their index in the chunk."""

    index: IntArray
    features: npt.NDArray[np.float64]
    labels: npt.NDArray[Any]


class NativeParser:
    def __init__(self, schema: RecordSchema, module: Any) -> None:
        self.schema = schema
        self._decoder = cast(
            _Decoder,
            module.Decoder(
                list(schema.features), schema.label, schema.max_bytes, schema.classification
            ),
        )
        self._reference = ChunkParser(schema)

    def parse(self, chunk: Chunk) -> ParsedChunk:
        spans = chunk if isinstance(chunk, SpanChunk) else SpanChunk.of_raw(_raw(chunk))
        n, n_features = len(spans), len(self.schema.features)
        features = np.empty((n, n_features), dtype=np.float64)
        labels = np.empty(n, dtype=np.int64 if self.schema.classification else np.float64)
        kept = np.empty(n, dtype=np.int64)
        segments = spans.segments
        # One call for the whole chunk: the extension splits it across cores.
        filled, codes, strs = self._decoder.parse(
            [segment.buffer for segment in segments],
            [len(segment) for segment in segments],
            _concatenated([segment.starts for segment in segments]),
            _concatenated([segment.lengths for segment in segments]),
            features=features,
            labels=labels,
            kept=kept,
        )
        str_labels = dict(strs)
        part = _Part(
            kept[:filled], features[:filled], with_string_labels(labels[:filled], str_labels)
        )
        rejected = [(index, REASONS[code]) for index, code in codes if code != DEFER]
        deferred = [index for index, code in codes if code == DEFER]
        if deferred:
            decided, more_rejected = self._decide(spans, deferred)
            part = _merge(part, decided)
            rejected = sorted([*rejected, *more_rejected])
        return ParsedChunk(
            features=part.features,
            labels=part.labels,
            partitions=spans.partitions[part.index],
            offsets=spans.offsets[part.index],
            rejects=Counter(reason.value for _, reason in rejected),
            rejected=[
                (
                    int(spans.partitions[index]),
                    int(spans.offsets[index]),
                    reason.value,
                    spans.value(index),
                )
                for index, reason in rejected
            ],
        )

    def _decide(
        self, spans: SpanChunk, deferred: list[int]
    ) -> tuple[_Part, list[tuple[int, Reject]]]:
        """The reference parser's verdict on the deferred records. It runs on them as a chunk
        of their own whose offsets are their positions in the deferred list."""
        index = np.asarray(deferred, dtype=np.int64)
        parsed = self._reference.parse(
            RawChunk(
                partitions=np.zeros(len(index), dtype=np.int64),
                offsets=np.arange(len(index), dtype=np.int64),
                values=[spans.value(i) for i in deferred],
            )
        )
        rejected = [
            (deferred[position], Reject(reason)) for _, position, reason, _ in parsed.rejected
        ]
        return _Part(index[parsed.offsets], parsed.features, parsed.labels), rejected


def _concatenated(arrays: list[IntArray]) -> IntArray:
    if not arrays:
        return np.empty(0, dtype=np.int64)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _raw(chunk: Chunk) -> RawChunk:
    if isinstance(chunk, RawChunk):
        return chunk
    return RawChunk(chunk.partitions, chunk.offsets, chunk.values)


def _merge(first: _Part, second: _Part) -> _Part:
    """Both parts' rows in chunk order (arrival order, as the reference keeps them)."""
    if not len(second.index):
        return first
    order = np.argsort(np.concatenate([first.index, second.index]), kind="stable")
    labels = [first.labels, second.labels]
    if any(part.dtype == object for part in labels):
        # One string class anywhere makes every label a string, as in the reference.
        labels = [np.asarray([str(v) for v in part.tolist()], dtype=object) for part in labels]
    return _Part(
        np.concatenate([first.index, second.index])[order],
        np.concatenate([first.features, second.features])[order],
        np.concatenate(labels)[order],
    )
