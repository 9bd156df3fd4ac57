"""Decoding Kafka record batches (message format v2) straight from a fetch response's bytes.

Pure: bytes in, offsets and values out. kafka-python builds a ConsumerRecord per record through
several generator layers (~10 us a record); the drain needs only offset and value, so this walks
the batches with struct and an inlined varint reader (~1 us a record).

Format (https://kafka.apache.org/documentation/#recordbatch): a batch is baseOffset int64,
batchLength int32, partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16,
lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId int64,
producerEpoch int16, baseSequence int32, record count int32, then the records; a record is
length varint, attributes int8, timestampDelta varlong, offsetDelta varint, keyLength varint,
key, valueLength varint, value, header count varint, headers. Lengths of -1 mean null.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from kafka.record.default_records import DefaultRecordBatch

from inshape_jobs.records import IntArray
from inshape_jobs.spans import Segment

_BATCH_PREFIX = struct.Struct(">qi")  # baseOffset, batchLength
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE = _BATCH_HEADER.size  # 61
_LOG_OVERHEAD = _BATCH_PREFIX.size  # 12: what batchLength does not count
_MAGIC_AT = 16

CODEC_MASK = 0x07
CODEC_NONE, CODEC_GZIP = 0, 1
CONTROL_FLAG = 0x20


class BatchFormatError(ValueError):
    """The bytes are not record batches this decoder (or kafka-python) can read."""


@dataclass
class DecodedRecords:
    """Records of one partition's fetch, in offset order, within the requested range.

    next_offset is where the next fetch starts: past the last complete batch (control
    batches and records compacted away included), or the fetch offset if there was none.
    """

    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    next_offset: int = 0


def next_fetch_offset(buf: bytes, fetch_offset: int) -> int:
    """Where the fetch after this one starts, from the batch headers alone (cheap: no records
    are read), so the next request can go out before this response is decoded."""
    pos, size = 0, len(buf)
    next_offset = fetch_offset
    while pos + _LOG_OVERHEAD <= size:
        base_offset, batch_length = _BATCH_PREFIX.unpack_from(buf, pos)
        batch_end = pos + _LOG_OVERHEAD + batch_length
        if batch_end > size:
            break  # the broker cuts the last batch at the fetch size limit
        _check_magic(buf, pos, batch_end)
        (last_offset_delta,) = struct.unpack_from(">i", buf, pos + 23)
        next_offset = max(next_offset, base_offset + last_offset_delta + 1)
        pos = batch_end
    return next_offset


def _check_magic(buf: bytes, pos: int, batch_end: int) -> None:
    if batch_end < pos + BATCH_HEADER_SIZE or buf[pos + _MAGIC_AT] != 2:
        magic = buf[pos + _MAGIC_AT] if batch_end > pos + _MAGIC_AT else None
        raise BatchFormatError(f"Not a v2 record batch (magic {magic}) at byte {pos}")


@dataclass(frozen=True)
class _Batch:
    """One complete, in-range, non-control batch: buf[pos:end], its records from records_at."""

    base_offset: int
    count: int
    codec: int
    pos: int
    records_at: int
    end: int


def _batches(buf: bytes, start: int, end: int) -> Iterator[_Batch]:
    """The batches in buf holding records in [start, end). A truncated trailing batch (as
    Kafka returns them at the size limit) is left for the next fetch; control batches
    (transaction markers) are skipped."""
    pos, size = 0, len(buf)
    while pos + _LOG_OVERHEAD <= size:
        base_offset, batch_length = _BATCH_PREFIX.unpack_from(buf, pos)
        batch_end = pos + _LOG_OVERHEAD + batch_length
        if batch_end > size:
            break
        _check_magic(buf, pos, batch_end)
        (
            base_offset,
            batch_length,
            _epoch,
            _magic,
            _crc,
            attributes,
            last_offset_delta,
            _base_ts,
            _max_ts,
            _producer_id,
            _producer_epoch,
            _base_sequence,
            count,
        ) = _BATCH_HEADER.unpack_from(buf, pos)
        batch_next = base_offset + last_offset_delta + 1
        if not (attributes & CONTROL_FLAG or batch_next <= start or base_offset >= end):
            yield _Batch(
                base_offset, count, attributes & CODEC_MASK, pos, pos + BATCH_HEADER_SIZE, batch_end
            )
        pos = batch_end


def _records_section(buf: bytes, batch: _Batch) -> tuple[bytes, int]:
    """(data, position) of an uncompressed or gzip batch's records, gzip inflated here."""
    if batch.codec == CODEC_GZIP:
        return gzip.decompress(buf[batch.records_at : batch.end]), 0
    return buf, batch.records_at


def decode_batches(buf: bytes, start: int, end: int) -> DecodedRecords:
    """The records of every complete batch in buf whose offset is in [start, end).

    gzip batches are inflated here, other codecs are handed to kafka-python's decoder (which
    needs their libraries).
    """
    decoded = DecodedRecords(next_offset=next_fetch_offset(buf, start))
    for batch in _batches(buf, start, end):
        try:
            if batch.codec in (CODEC_NONE, CODEC_GZIP):
                data, at = _records_section(buf, batch)
                _decode_records(
                    data,
                    at,
                    count=batch.count,
                    base_offset=batch.base_offset,
                    start=start,
                    end=end,
                    out=decoded,
                )
            else:
                _decode_with_kafka_python(buf[batch.pos : batch.end], start, end, decoded)
        except (IndexError, OSError, EOFError) as exc:  # OSError, EOFError: bad gzip
            raise BatchFormatError(f"Corrupt record batch at offset {batch.base_offset}") from exc
    return decoded


# (data, at, count, base_offset, start, end) -> 3 x n native int64s: offsets, value starts,
# value lengths (-1: null). The compiled decoder's (inshape_jobs.native.record_spans).
RecordSpans = Callable[[bytes, int, int, int, int, int], bytes]


@dataclass
class SpanRecords:
    """As DecodedRecords, with each batch's values left where they are (spans.Segment)."""

    pieces: list[tuple[IntArray, Segment]] = field(default_factory=list)
    next_offset: int = 0


def decode_spans(buf: bytes, start: int, end: int, record_spans: RecordSpans) -> SpanRecords:
    """decode_batches, but the record sections are walked by record_spans (compiled): no
    Python object per record."""
    decoded = SpanRecords(next_offset=next_fetch_offset(buf, start))
    for batch in _batches(buf, start, end):
        try:
            if batch.codec in (CODEC_NONE, CODEC_GZIP):
                data, at = _records_section(buf, batch)
                columns = np.frombuffer(
                    record_spans(data, at, batch.count, batch.base_offset, start, end),
                    dtype=np.int64,
                ).reshape(3, -1)
                piece = (columns[0], Segment(data, columns[1], columns[2]))
            else:
                records = DecodedRecords()
                _decode_with_kafka_python(buf[batch.pos : batch.end], start, end, records)
                offsets = np.asarray(records.offsets, dtype=np.int64)
                piece = (offsets, Segment.of_values(records.values))
        except (ValueError, OSError, EOFError) as exc:  # ValueError: truncated records
            raise BatchFormatError(f"Corrupt record batch at offset {batch.base_offset}") from exc
        if len(piece[0]):
            decoded.pieces.append(piece)
    return decoded


def _decode_records(
    data: bytes,
    pos: int,
    *,
    count: int,
    base_offset: int,
    start: int,
    end: int,
    out: DecodedRecords,
) -> None:
    """Appends the records of one uncompressed record section. Varints are zigzag encoded;
    the one- and two-byte cases (every length under 8 KiB) are inlined."""
    append_offset, append_value = out.offsets.append, out.values.append
    for _ in range(count):
        # length
        b = data[pos]
        if b < 0x80:
            pos += 1
            length = (b >> 1) ^ -(b & 1)
        elif data[pos + 1] < 0x80:
            z = (b & 0x7F) | (data[pos + 1] << 7)
            pos += 2
            length = (z >> 1) ^ -(z & 1)
        else:
            length, pos = _varint(data, pos)
        record_end = pos + length
        # attributes int8, then timestampDelta varlong: skipped
        pos += 1
        while data[pos] & 0x80:
            pos += 1
        pos += 1
        # offsetDelta
        b = data[pos]
        if b < 0x80:
            pos += 1
            offset = base_offset + ((b >> 1) ^ -(b & 1))
        elif data[pos + 1] < 0x80:
            z = (b & 0x7F) | (data[pos + 1] << 7)
            pos += 2
            offset = base_offset + ((z >> 1) ^ -(z & 1))
        else:
            delta, pos = _varint(data, pos)
            offset = base_offset + delta
        if offset < start:
            pos = record_end
            continue
        if offset >= end:
            return
        # key: skipped
        b = data[pos]
        if b < 0x80:
            pos += 1
            key_length = (b >> 1) ^ -(b & 1)
        else:
            key_length, pos = _varint(data, pos)
        if key_length > 0:
            pos += key_length
        # value
        b = data[pos]
        if b < 0x80:
            pos += 1
            value_length = (b >> 1) ^ -(b & 1)
        elif data[pos + 1] < 0x80:
            z = (b & 0x7F) | (data[pos + 1] << 7)
            pos += 2
            value_length = (z >> 1) ^ -(z & 1)
        else:
            value_length, pos = _varint(data, pos)
        append_offset(offset)
        if value_length < 0:
            append_value(None)
        else:
            append_value(data[pos : pos + value_length])
        # headers: skipped, the record length says where the next record starts
        pos = record_end


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of any length at pos: (value, position after it)."""
    shift = z = 0
    while True:
        try:
            b = data[pos]
        except IndexError:
            raise BatchFormatError(f"Truncated varint at byte {pos}") from None
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift > 63:
            raise BatchFormatError(f"Varint too long at byte {pos}")


def _decode_with_kafka_python(batch: bytes, start: int, end: int, out: DecodedRecords) -> None:
    """snappy, lz4 and zstd batches: rare enough that kafka-python's decoder is fine. It
    raises UnsupportedCodecError, naming the missing library, if that is not installed."""
    for record in DefaultRecordBatch(batch):
        if record.offset < start:
            continue
        if record.offset >= end:
            break
        out.offsets.append(record.offset)
        out.values.append(record.value)
