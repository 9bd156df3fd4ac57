"""Record batch decoding: every record in range exactly once, as kafka-python itself reads them."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record import MemoryRecords
from kafka.record.memory_records import MemoryRecordsBuilder

from inshape_jobs import native
from inshape_jobs.batches import (
    BatchFormatError,
    decode_batches,
    decode_spans,
    next_fetch_offset,
)

NONE, GZIP = 0, 1
ALL = (0, 2**62)


def batch(
    values: list[bytes | None],
    base: int = 0,
    *,
    codec: int = NONE,
    offsets: list[int] | None = None,
    keys: bool = False,
    headers: bool = False,
) -> bytes:
    """One record batch, as a producer would write it (offsets relative to base)."""
    builder = MemoryRecordsBuilder(2, codec, 1 << 30, offset=base)
    for i, value in enumerate(values):
        offset = offsets[i] if offsets is not None else None
        if offset is not None:
            # MemoryRecordsBuilder numbers records itself; appending at explicit offsets
            # (a compacted batch) needs the batch builder underneath.
            builder._builder.append(
                offset, timestamp=1_700_000_000_000 + i, key=None, value=value, headers=[]
            )
            continue
        builder.append(
            timestamp=1_700_000_000_000 + i,
            key=b"key-%d" % i if keys else None,
            value=value,
            headers=[("h", b"v" * 3)] if headers else [],
        )
    builder.close()
    return bytes(builder.buffer())


def kafka_python(buf: bytes) -> tuple[list[int], list[bytes | None]]:
    """The reference: kafka-python's own reader, control batches skipped."""
    offsets, values = [], []
    records = MemoryRecords(buf)
    while (b := records.next_batch()) is not None:
        if b.is_control_batch:
            continue
        for record in b:
            offsets.append(record.offset)
            values.append(record.value)
    return offsets, values


def with_attributes(buf: bytes, flags: int) -> bytes:
    attributes = struct.unpack_from(">h", buf, 21)[0] | flags
    return buf[:21] + struct.pack(">h", attributes) + buf[23:]


def with_last_offset_delta(buf: bytes, delta: int) -> bytes:
    return buf[:23] + struct.pack(">i", delta) + buf[27:]


def test_plain_batch() -> None:
    values: list[bytes | None] = [b'{"a": %d}' % i for i in range(100)]
    decoded = decode_batches(batch(values, base=500), *ALL)
    assert decoded.offsets == list(range(500, 600))
    assert decoded.values == values
    assert decoded.next_offset == 600


def test_null_values_are_kept_as_none() -> None:
    values: list[bytes | None] = [b"x", None, b"", None, b"y"]
    decoded = decode_batches(batch(values), *ALL)
    assert decoded.values == values
    assert decoded.offsets == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("keys", [False, True])
@pytest.mark.parametrize("headers", [False, True])
def test_keys_and_headers_are_skipped(keys: bool, headers: bool) -> None:
    values: list[bytes | None] = [b"v%d" % i for i in range(10)]
    buf = batch(values, keys=keys, headers=headers)
    decoded = decode_batches(buf, *ALL)
    assert (decoded.offsets, decoded.values) == kafka_python(buf)


def test_gzip_batch() -> None:
    values: list[bytes | None] = [b'{"pixel": %d.0, "label": 3}' % i for i in range(300)]
    values[7] = None
    buf = batch(values, base=10, codec=GZIP)
    decoded = decode_batches(buf, *ALL)
    assert decoded.offsets == list(range(10, 310))
    assert decoded.values == values
    assert decoded.next_offset == 310


def test_long_varints() -> None:
    """Values past 8 KiB and offset deltas past 8191 need three-byte varints."""
    values: list[bytes | None] = [b"v" * size for size in (0, 63, 64, 8191, 8192, 70_000)]
    values += [b"%d" % i for i in range(20_000)]
    buf = batch(values)
    decoded = decode_batches(buf, *ALL)
    assert decoded.values == values
    assert decoded.offsets == list(range(len(values)))


def test_multi_batch_buffer_matches_kafka_python() -> None:
    buf = b"".join(
        [
            batch([b"a%d" % i for i in range(5)], base=0),
            batch([b"b%d" % i for i in range(7)], base=5, codec=GZIP),
            batch([None, b"c"], base=12, keys=True, headers=True),
        ]
    )
    decoded = decode_batches(buf, *ALL)
    assert (decoded.offsets, decoded.values) == kafka_python(buf)
    assert decoded.offsets == list(range(14))
    assert decoded.next_offset == 14 == next_fetch_offset(buf, 0)


def test_range_bounds() -> None:
    """Records before the fetch offset (earlier in a batch) or at/after the end are left out."""
    buf = batch([b"a%d" % i for i in range(10)]) + batch([b"b%d" % i for i in range(10)], 10)
    decoded = decode_batches(buf, 3, 15)
    assert decoded.offsets == list(range(3, 15))
    assert decoded.values == [b"a%d" % i for i in range(3, 10)] + [b"b%d" % i for i in range(5)]
    # the whole buffer was read: the next fetch starts after it
    assert decoded.next_offset == 20


def test_truncated_trailing_batch_is_left_for_the_next_fetch() -> None:
    first = batch([b"a%d" % i for i in range(10)])
    second = batch([b"b%d" % i for i in range(10)], 10)
    for cut in (1, 11, 60, len(second) - 1):
        buf = first + second[:cut]
        decoded = decode_batches(buf, *ALL)
        assert decoded.offsets == list(range(10))
        assert decoded.next_offset == 10 == next_fetch_offset(buf, 0)


def test_nothing_complete() -> None:
    second = batch([b"b%d" % i for i in range(10)], 10)
    decoded = decode_batches(second[:30], 10, 100)
    assert decoded.offsets == []
    assert decoded.next_offset == 10 == next_fetch_offset(second[:30], 10)
    assert decode_batches(b"", 10, 100).next_offset == 10


def test_control_batches_are_skipped() -> None:
    marker = with_attributes(batch([b"\x00\x00\x00\x00\x00\x00"], base=3), 0x20)
    buf = batch([b"a", b"b", b"c"]) + marker + batch([b"d"], base=4)
    decoded = decode_batches(buf, *ALL)
    assert decoded.offsets == [0, 1, 2, 4]
    assert decoded.values == [b"a", b"b", b"c", b"d"]
    assert decoded.next_offset == 5
    assert (decoded.offsets, decoded.values) == kafka_python(buf)


def test_compaction_gaps() -> None:
    """Compaction leaves gaps in a batch's offsets, and can remove its last records: the
    batch's lastOffsetDelta still says where the next batch starts."""
    buf = batch([b"a", b"c", b"f"], base=100, offsets=[100, 102, 105])
    buf = with_last_offset_delta(buf, 9)  # records 106..109 compacted away
    buf += batch([b"k"], base=110)
    decoded = decode_batches(buf, *ALL)
    assert decoded.offsets == [100, 102, 105, 110]
    assert decoded.values == [b"a", b"c", b"f", b"k"]
    assert decoded.next_offset == 111 == next_fetch_offset(buf, 100)
    only_gap = with_last_offset_delta(batch([b"a"], base=0), 9)
    assert decode_batches(only_gap, 0, 100).next_offset == 10


def test_old_message_format_is_refused() -> None:
    legacy = MemoryRecordsBuilder(1, NONE, 1 << 20)
    legacy.append(timestamp=0, key=None, value=b"v", headers=[])
    legacy.close()
    buf = bytes(legacy.buffer())
    with pytest.raises(BatchFormatError):
        decode_batches(buf, *ALL)
    with pytest.raises(BatchFormatError):
        next_fetch_offset(buf, 0)


# --- the compiled walker (inshape_fastdecode.record_spans) gives the same records -----------


def spans(buf: bytes, start: int, end: int) -> tuple[list[int], list[bytes | None], int]:
    record_spans = native.record_spans()
    assert record_spans is not None, "make setup builds jobs/native/inshape_fastdecode"
    decoded = decode_spans(buf, start, end, record_spans)
    offsets: list[int] = []
    values: list[bytes | None] = []
    for piece_offsets, segment in decoded.pieces:
        offsets.extend(piece_offsets.tolist())
        values.extend(segment.values())
    return offsets, values, decoded.next_offset


SPAN_CASES = {
    "plain": batch([b"a", b"bb", b"", None, b"x" * 300]),
    "keys-headers": batch([b"v%d" % i for i in range(50)], keys=True, headers=True),
    "gzip": batch([b"z" * i for i in range(100)], codec=GZIP),
    "long-varints": batch([b"y" * 70_000] + [b"%d" % i for i in range(9000)], base=10),
    "multi": batch([b"1", b"2"], base=5) + batch([b"3"], base=7) + batch([b"4", b"5"], base=8),
    "control": with_attributes(batch([b"c"], base=0), 0x20) + batch([b"d"], base=1),
    "compacted": with_last_offset_delta(batch([b"a", b"b", b"c"], offsets=[0, 4, 9]), 12),
    "truncated": batch([b"1"] * 10) + batch([b"2"] * 10, base=10)[:-5],
}


@pytest.mark.parametrize("name", SPAN_CASES)
@pytest.mark.parametrize("bounds", [ALL, (1, 9), (4, 5), (10, 11)])
def test_compiled_walker_matches_the_python_one(name: str, bounds: tuple[int, int]) -> None:
    buf = SPAN_CASES[name]
    reference = decode_batches(buf, *bounds)
    assert spans(buf, *bounds) == (reference.offsets, reference.values, reference.next_offset)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.binary(max_size=300) | st.none(), min_size=1, max_size=30),
    keys=st.booleans(),
    headers=st.booleans(),
    start=st.integers(0, 40),
    width=st.integers(0, 40),
)
def test_compiled_walker_on_generated_batches(
    values: list[bytes | None], keys: bool, headers: bool, start: int, width: int
) -> None:
    buf = batch(values, base=3, keys=keys, headers=headers)
    reference = decode_batches(buf, start, start + width)
    assert spans(buf, start, start + width) == (
        reference.offsets,
        reference.values,
        reference.next_offset,
    )
    assert reference.offsets == kafka_python(buf)[0][max(0, start - 3) : max(0, start + width - 3)]


def test_compiled_walker_refuses_a_truncated_record() -> None:
    buf = batch([b"x" * 100])
    with pytest.raises(BatchFormatError):
        spans(_shorten(buf), 0, 10)


def _shorten(buf: bytes) -> bytes:
    """The batch with its record section cut, the batch length still covering it."""
    cut = buf[:70]
    return cut[:8] + struct.pack(">i", len(cut) - 12) + cut[12:]
