"""Deterministic train/holdout split, keyed on where a record sits in Kafka.

A record's side depends only on (partition, offset) and the run's holdout fraction, so a
retried run splits the same records the same way, and no RNG state has to be carried.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A well-mixed 64-bit hash (SplitMix64's finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def record_uniforms(
    partitions: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """A number in [0, 1) per record, fixed by its partition and offset."""
    keys = (partitions.astype(np.uint64) << np.uint64(48)) ^ offsets.astype(np.uint64)
    return (_splitmix64(keys) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def effective_holdout_fraction(fraction: float, max_holdout: int, new_records: int) -> float:
    """Hold out `fraction` of the new records, but expect no more than max_holdout of them,
    so memory stays bounded however large the backlog."""
    if new_records <= 0:
        return fraction
    return min(fraction, max_holdout / new_records)


def holdout_mask(
    partitions: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    fraction: float,
    eligible: npt.NDArray[np.bool_] | None = None,
    room: int | None = None,
) -> npt.NDArray[np.bool_]:
    """True for records that go to the holdout.

    eligible: records allowed in the holdout at all (retrain windows re-read old records,
    which must only train). room: how many more the holdout can take; any beyond it train.
    """
    mask = record_uniforms(partitions, offsets) < fraction
    if eligible is not None:
        mask &= eligible
    if room is not None and mask.sum() > room:
        overflow = np.flatnonzero(mask)[max(room, 0) :]
        mask[overflow] = False
    return mask
