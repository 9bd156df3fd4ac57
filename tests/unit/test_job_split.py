"""The deterministic train/holdout split."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from inshape_jobs.split import effective_holdout_fraction, holdout_mask, record_uniforms

IntArray = npt.NDArray[np.int64]


def positions(n: int, partitions: int = 4) -> tuple[IntArray, IntArray]:
    index = np.arange(n, dtype=np.int64)
    return index % partitions, index // partitions + 1_000


def test_uniforms_are_in_unit_interval_and_spread() -> None:
    parts, offsets = positions(100_000)
    u = record_uniforms(parts, offsets)
    assert u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    counts, _ = np.histogram(u, bins=10, range=(0.0, 1.0))
    assert counts.min() > 9_500 and counts.max() < 10_500
    assert len(np.unique(u)) == len(u)


def test_split_is_deterministic_and_order_independent() -> None:
    parts, offsets = positions(10_000)
    first = holdout_mask(parts, offsets, 0.3)
    assert np.array_equal(first, holdout_mask(parts.copy(), offsets.copy(), 0.3))
    order = np.random.default_rng(1).permutation(len(parts))
    assert np.array_equal(first[order], holdout_mask(parts[order], offsets[order], 0.3))


def test_same_offset_on_different_partitions_is_split_independently() -> None:
    offsets = np.arange(10_000, dtype=np.int64)
    on_0 = holdout_mask(np.zeros_like(offsets), offsets, 0.5)
    on_1 = holdout_mask(np.ones_like(offsets), offsets, 0.5)
    agreement = float((on_0 == on_1).mean())
    assert 0.45 < agreement < 0.55


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.9])
def test_fraction_is_honoured_on_100k_records(fraction: float) -> None:
    parts, offsets = positions(100_000)
    share = float(holdout_mask(parts, offsets, fraction).mean())
    assert share == pytest.approx(fraction, abs=0.005)


def test_holdout_grows_monotonically_with_the_fraction() -> None:
    parts, offsets = positions(5_000)
    small = holdout_mask(parts, offsets, 0.1)
    large = holdout_mask(parts, offsets, 0.3)
    assert not (small & ~large).any()
    assert large.sum() > small.sum()


def test_zero_and_one_fraction() -> None:
    parts, offsets = positions(1_000)
    assert not holdout_mask(parts, offsets, 0.0).any()
    assert holdout_mask(parts, offsets, 1.0).all()


def test_ineligible_records_always_train() -> None:
    parts, offsets = positions(10_000)
    eligible = offsets % 2 == 0
    plain = holdout_mask(parts, offsets, 0.5)
    mask = holdout_mask(parts, offsets, 0.5, eligible=eligible)
    assert not mask[~eligible].any()
    assert np.array_equal(mask[eligible], plain[eligible])


@pytest.mark.parametrize("room", [0, 1, 37, 500])
def test_room_caps_the_holdout_and_overflow_trains(room: int) -> None:
    parts, offsets = positions(10_000)
    plain = holdout_mask(parts, offsets, 0.2)
    assert plain.sum() > room
    capped = holdout_mask(parts, offsets, 0.2, room=room)
    assert capped.sum() == room
    assert not (capped & ~plain).any()
    # The first `room` would-be holdout records are the ones kept.
    assert np.array_equal(np.flatnonzero(capped), np.flatnonzero(plain)[:room])


def test_room_larger_than_the_holdout_changes_nothing() -> None:
    parts, offsets = positions(1_000)
    plain = holdout_mask(parts, offsets, 0.2)
    assert np.array_equal(holdout_mask(parts, offsets, 0.2, room=10_000), plain)


def test_negative_room_means_no_holdout() -> None:
    parts, offsets = positions(1_000)
    assert not holdout_mask(parts, offsets, 0.5, room=-3).any()


def test_room_and_eligible_together() -> None:
    parts, offsets = positions(10_000)
    eligible = np.arange(10_000) >= 5_000
    mask = holdout_mask(parts, offsets, 0.5, eligible=eligible, room=100)
    assert mask.sum() == 100
    assert not mask[~eligible].any()


@pytest.mark.parametrize(
    ("fraction", "max_holdout", "new_records", "expected"),
    [
        (0.2, 50_000, 1_000, 0.2),
        (0.2, 50_000, 250_000, 0.2),
        (0.2, 50_000, 1_000_000, 0.05),
        (0.5, 10, 1_000, 0.01),
        (0.2, 50_000, 0, 0.2),
        (0.2, 50_000, -5, 0.2),
    ],
)
def test_effective_holdout_fraction(
    fraction: float, max_holdout: int, new_records: int, expected: float
) -> None:
    assert effective_holdout_fraction(fraction, max_holdout, new_records) == pytest.approx(expected)


def test_effective_fraction_bounds_the_expected_holdout() -> None:
    parts, offsets = positions(200_000)
    fraction = effective_holdout_fraction(0.2, 5_000, len(parts))
    held = int(holdout_mask(parts, offsets, fraction).sum())
    assert 4_700 < held < 5_300
