"""Turning raw Kafka values into feature rows and labels; bad records are counted, never fatal.

Pure: bytes in, arrays and reject counts out. The drain feeds it one chunk at a time.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import starmap
from typing import Annotated, Any, Protocol, cast

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec.structs import astuple

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NUMERIC = (int, float)
PARSE_BLOCK = 512
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Reject(StrEnum):
    """Why a record was skipped. The values appear in metrics and dead-letter headers."""

    OVERSIZED = "oversized"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FEATURE = "missing_feature"
    NON_NUMERIC_FEATURE = "non_numeric_feature"
    NON_FINITE = "non_finite"
    MISSING_LABEL = "missing_label"
    BAD_LABEL = "bad_label"
    UNKNOWN_LABEL = "unknown_label"


@dataclass(frozen=True)
class RawChunk:
    """Records as consumed: values with the partition and offset each came from."""

    partitions: IntArray
    offsets: IntArray
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.values)


class Chunk(Protocol):
    """What a parser reads: a RawChunk, or a spans.SpanChunk (values left in their buffers)."""

    @property
    def partitions(self) -> IntArray: ...
    @property
    def offsets(self) -> IntArray: ...
    @property
    def values(self) -> list[bytes | None]: ...
    def __len__(self) -> int: ...


@dataclass
class ParsedChunk:
    features: FloatArray  # (n, n_features)
    labels: npt.NDArray[Any]  # (n,)
    partitions: IntArray
    offsets: IntArray
    rejects: Counter[str] = field(default_factory=Counter)
    # (partition, offset, reason, value) of every rejected record, for the dead-letter topic.
    rejected: list[tuple[int, int, str, bytes | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class RecordSchema:
    features: tuple[str, ...]
    label: str
    max_bytes: int
    classification: bool


def _finite(value: int | float) -> bool:
    """math.isfinite, but an int too large for a float (a literal like 1 followed by 400 zeros)
    is not finite either, instead of raising OverflowError."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _label_ok(value: Any, classification: bool) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if classification:
        if isinstance(value, int):
            return INT64_MIN <= value <= INT64_MAX  # class labels are stored as int64
        return isinstance(value, str) and value != ""
    return isinstance(value, _NUMERIC) and _finite(value)


def classify_bad_record(value: bytes, schema: RecordSchema) -> Reject | None:
    """The reason a record is bad, or None if it is good. The slow path: called only for
    records the typed fast decoder refused, so the reason is exact without costing the good."""
    try:
        obj = json.loads(value)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return Reject.NOT_JSON
    if obj.__class__ is not dict:
        return Reject.NOT_OBJECT
    for name in schema.features:
        if name not in obj:
            return Reject.MISSING_FEATURE
        if obj[name].__class__ not in _NUMERIC:  # bool subclasses int, but is not a number here
            return Reject.NON_NUMERIC_FEATURE
        if not _finite(obj[name]):
            return Reject.NON_FINITE
    if obj.get(schema.label) is None:
        return Reject.MISSING_LABEL
    if not _label_ok(obj[schema.label], schema.classification):
        return Reject.BAD_LABEL
    return None


class ChunkParser:
    """Parses chunks for one schema. The decoder is typed from the schema (msgspec), so one C
    call per record both decodes and checks every feature is a number: ~4x json.loads."""

    def __init__(self, schema: RecordSchema) -> None:
        self.schema = schema
        # The same labels _label_ok accepts: an int64 or a non-empty string.
        label_type: Any = (
            Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
            | Annotated[str, msgspec.Meta(min_length=1)]
            if schema.classification
            else float
        )
        fields: list[tuple[str, Any]] = [(name, float) for name in schema.features]
        fields.append((schema.label, label_type))
        # Struct attribute names must be identifiers; JSON keys may be anything, so rename.
        # gc=False: a record of numbers and a string cannot form a cycle, and tracking a
        # struct per record makes the collector scan them all.
        record_type = msgspec.defstruct(
            "Record",
            [(f"f{i}", tp) for i, (_, tp) in enumerate(fields)],
            rename={f"f{i}": name for i, (name, _) in enumerate(fields)},
            gc=False,
        )
        self._decode = msgspec.json.Decoder(record_type).decode
        # A decoded row is packed straight into machine words: features as doubles, the label
        # as a double (regression) or an int64 (class); numpy reads a block of rows through
        # two views. A string class label cannot be packed: it goes aside.
        n = len(schema.features)
        self._pack = struct.Struct(f"={n}d{'q' if schema.classification else 'd'}").pack

    def parse(self, chunk: Chunk) -> ParsedChunk:
        """Validate every record of a chunk; keep the good rows in arrival order."""
        schema = self.schema
        n_features = len(schema.features)
        n = len(chunk)
        features = np.empty((n, n_features), dtype=np.float64)
        label_dtype = np.int64 if schema.classification else np.float64
        labels = np.empty(n, dtype=label_dtype)
        str_labels: dict[int, str] = {}  # row -> a string class label
        filled = 0
        kept: list[int] = []
        rejects: Counter[str] = Counter()
        rejected: list[tuple[int, int, str, bytes | None]] = []

        def reject(index: int, reason: Reject) -> None:
            rejects[reason.value] += 1
            rejected.append(
                (
                    int(chunk.partitions[index]),
                    int(chunk.offsets[index]),
                    reason.value,
                    chunk.values[index],
                )
            )

        # Block by block: a block of good records is decoded and packed without a Python-level
        # step per record; a block holding anything else is redone record by record.
        for first in range(0, n, PARSE_BLOCK):
            values = chunk.values[first : first + PARSE_BLOCK]
            packed = self._pack_block(values)
            block_kept: Sequence[int]
            if packed is None:
                packed, block_kept = self._pack_each(values, first, filled, str_labels, reject)
            else:
                block_kept = range(first, first + len(values))
            count = len(block_kept)
            if count:
                rows = np.frombuffer(packed, dtype=np.float64).reshape(count, n_features + 1)
                features[filled : filled + count] = rows[:, :n_features]
                labels[filled : filled + count] = rows.view(label_dtype)[:, n_features]
                filled += count
                kept.extend(block_kept)
        features = features[:filled]
        keep = np.asarray(kept, dtype=np.int64)
        label_array = with_string_labels(labels[:filled], str_labels)
        # Huge literals such as 1e999 decode to inf; one vectorised pass finds them.
        finite = np.isfinite(features).all(axis=1)
        if not schema.classification:
            finite &= np.isfinite(label_array)
        if not finite.all():
            for index in keep[~finite]:
                reject(int(index), Reject.NON_FINITE)
            features, keep, label_array = features[finite], keep[finite], label_array[finite]
        return ParsedChunk(
            features=features,
            labels=label_array,
            partitions=chunk.partitions[keep],
            offsets=chunk.offsets[keep],
            rejects=rejects,
            rejected=rejected,
        )

    def _pack_block(self, values: list[bytes | None]) -> bytes | None:
        """The packed rows of a block if every record in it is good, else None."""
        good = cast(list[bytes], values)  # a None fails len() below
        try:
            if max(map(len, good)) > self.schema.max_bytes:
                return None
            return b"".join(starmap(self._pack, map(astuple, map(self._decode, good))))
        # None has no len(); a string label does not pack; the rest are msgspec's refusals.
        except (TypeError, struct.error, UnicodeDecodeError, msgspec.MsgspecError):
            return None

    def _pack_each(
        self,
        values: list[bytes | None],
        first: int,
        filled: int,
        str_labels: dict[int, str],
        reject: Callable[[int, Reject], None],
    ) -> tuple[bytes, list[int]]:
        """A block record by record: the packed good rows and their indices; the rest rejected
        with their exact reason."""
        schema = self.schema
        n_features = len(schema.features)
        decode, pack = self._decode, self._pack
        pieces: list[bytes] = []
        kept: list[int] = []
        for index, value in enumerate(values, first):
            if value is None:
                reject(index, Reject.NOT_JSON)
                continue
            if len(value) > schema.max_bytes:
                reject(index, Reject.OVERSIZED)
                continue
            try:
                row = astuple(decode(value))
            # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                reason = classify_bad_record(value, schema)
                # Valid to json but not to the strict decoder (e.g. a bare NaN): no reason yet.
                reject(index, reason or Reject.NON_FINITE)
                continue
            try:
                pieces.append(pack(*row))
            except struct.error:
                label = row[n_features]
                if not isinstance(label, str):
                    raise
                str_labels[filled + len(kept)] = label
                pieces.append(pack(*row[:n_features], 0))
            kept.append(index)
        return b"".join(pieces), kept


def with_string_labels(labels: npt.NDArray[Any], str_labels: Mapping[int, str]) -> npt.NDArray[Any]:
    """The labels, with the string class labels of some rows in place (those rows hold 0)."""
    if not str_labels:
        return labels
    # Mixed int and string classes: all as strings, as np.asarray would make them.
    return np.asarray(
        [
            str_labels[i] if i in str_labels else str(label)
            for i, label in enumerate(labels.tolist())
        ],
        dtype=object,
    )


def drop_unknown_labels(parsed: ParsedChunk, classes: npt.NDArray[Any]) -> ParsedChunk:
    """A classifier updated with partial_fit can only learn the classes it was declared with."""
    known = np.isin(parsed.labels, classes)
    if known.all():
        return parsed
    for partition, offset in zip(parsed.partitions[~known], parsed.offsets[~known], strict=True):
        parsed.rejects[Reject.UNKNOWN_LABEL.value] += 1
        parsed.rejected.append((int(partition), int(offset), Reject.UNKNOWN_LABEL.value, None))
    return ParsedChunk(
        features=parsed.features[known],
        labels=parsed.labels[known],
        partitions=parsed.partitions[known],
        offsets=parsed.offsets[known],
        rejects=parsed.rejects,
        rejected=parsed.rejected,
    )


def drop_reread_rejects(parsed: ParsedChunk, committed: Mapping[int, int]) -> ParsedChunk:
    """The chunk with only the rejects at or after their partition's committed offset.

    A record below it is a re-read (a retrain window reaching back): the run that first read it
    already counted and dead-lettered it, so it is left out of the counts and the dead letters
    this time. It stays out of training all the same: it is not among the rows.
    """
    reread = [r for r in parsed.rejected if r[1] < committed.get(r[0], 0)]
    if not reread:
        return parsed
    return replace(
        parsed,
        rejects=parsed.rejects - Counter(reason for _, _, reason, _ in reread),
        rejected=[r for r in parsed.rejected if r[1] >= committed.get(r[0], 0)],
    )
