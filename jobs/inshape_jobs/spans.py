"""Records as spans of the buffers they arrived in: no Python object per record.

The compiled decoder (inshape_jobs.native) reads values where the fetch response holds them;
a Segment says where (start, length) and a SpanChunk strings segments into one chunk. The
reference parser reads the same chunk through `values`, which makes the bytes objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from inshape_jobs.records import IntArray, RawChunk


@dataclass(frozen=True)
class Segment:
    """Values of consecutive records: buffer[starts[i] : starts[i] + lengths[i]], or None
    where lengths[i] is -1 (a null value)."""

    buffer: bytes
    starts: IntArray
    lengths: IntArray

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, part: slice) -> Segment:
        return Segment(self.buffer, self.starts[part], self.lengths[part])

    def value(self, index: int) -> bytes | None:
        length = int(self.lengths[index])
        if length < 0:
            return None
        start = int(self.starts[index])
        return self.buffer[start : start + length]

    def values(self) -> list[bytes | None]:
        buffer = self.buffer
        return [
            None if length < 0 else buffer[start : start + length]
            for start, length in zip(self.starts.tolist(), self.lengths.tolist(), strict=True)
        ]

    @classmethod
    def of_values(cls, values: list[bytes | None]) -> Segment:
        """Values that came one by one (the consumer's), joined into one buffer."""
        lengths = np.fromiter(
            (-1 if v is None else len(v) for v in values), dtype=np.int64, count=len(values)
        )
        ends = np.cumsum(np.maximum(lengths, 0))
        starts = ends - np.maximum(lengths, 0)
        return cls(b"".join(v for v in values if v is not None), starts, lengths)


@dataclass(frozen=True)
class SpanChunk:
    """A chunk (as RawChunk: partitions and offsets per record) whose values are segments."""

    partitions: IntArray
    offsets: IntArray
    segments: tuple[Segment, ...]

    def __len__(self) -> int:
        return len(self.offsets)

    @cached_property
    def values(self) -> list[bytes | None]:
        """The values as bytes objects: for the reference parser and tests, not the drain."""
        values: list[bytes | None] = []
        for segment in self.segments:
            values.extend(segment.values())
        return values

    def value(self, index: int) -> bytes | None:
        for segment in self.segments:
            if index < len(segment):
                return segment.value(index)
            index -= len(segment)
        raise IndexError(index)

    @classmethod
    def of_raw(cls, chunk: RawChunk) -> SpanChunk:
        return cls(chunk.partitions, chunk.offsets, (Segment.of_values(chunk.values),))
