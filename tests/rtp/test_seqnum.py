"""Wraparound arithmetic and unwrapping."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.rtp import (
    SeqUnwrapper,
    TimestampUnwrapper,
    Unwrapper,
    seq_add,
    seq_diff,
    seq_distance,
    seq_is_newer,
    ts_add,
    ts_diff,
    ts_distance,
    ts_is_newer,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def test_examples() -> None:
    assert seq_is_newer(0, 65535)
    assert not seq_is_newer(65535, 0)
    assert seq_is_newer(1, 0)
    assert not seq_is_newer(5, 5)
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_distance(65530, 4) == 10
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert ts_is_newer(0, 0xFFFFFFFF)
    assert ts_diff(5, 0xFFFFFFFB) == 10
    assert ts_distance(0xFFFFFFFF, 0) == 1
    assert ts_add(0xFFFFFFFF, 2) == 1
    # Exactly half apart: tie broken by value, so exactly one side is newer.
    assert seq_is_newer(0x8000, 0) and not seq_is_newer(0, 0x8000)
    assert ts_is_newer(0x80000000, 0) and not ts_is_newer(0, 0x80000000)


@given(u16, st.integers(-0x7FFF, 0x7FFF))
def test_seq_add_diff_inverse(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_diff(b, a) == n
    assert seq_is_newer(b, a) == (n > 0)
    assert seq_is_newer(a, b) == (n < 0)
    assert seq_distance(a, b) == n % 65536


@given(u32, st.integers(-0x7FFFFFFF, 0x7FFFFFFF))
def test_ts_add_diff_inverse(a: int, n: int) -> None:
    b = ts_add(a, n)
    assert ts_diff(b, a) == n
    assert ts_is_newer(b, a) == (n > 0)
    assert ts_distance(a, b) == n % 2**32


@given(u16, u16)
def test_seq_is_newer_antisymmetric(a: int, b: int) -> None:
    assert not (seq_is_newer(a, b) and seq_is_newer(b, a))
    if a != b:
        assert seq_is_newer(a, b) or seq_is_newer(b, a)
    assert -32768 <= seq_diff(a, b) <= 32767


def test_unwrap_across_wrap_with_late_packet() -> None:
    u = SeqUnwrapper()
    assert u.highest is None and u.roll_over_count == 0
    assert u.unwrap(65534) == 65534
    assert u.unwrap(0) == 65536
    assert u.unwrap(65535) == 65535  # late, still before the wrap
    assert u.unwrap(1) == 65537
    assert u.highest == 65537
    assert u.roll_over_count == 1
    assert u.peek(2) == 65538 and u.highest == 65537


def test_unwrap_older_than_first_goes_negative() -> None:
    u = SeqUnwrapper()
    assert u.unwrap(0) == 0
    assert u.unwrap(65535) == -1
    assert u.unwrap(1) == 1


def test_timestamp_unwrapper() -> None:
    u = TimestampUnwrapper()
    assert u.unwrap(0xFFFFFF00) == 0xFFFFFF00
    assert u.unwrap(0x100) == 2**32 + 0x100
    assert u.roll_over_count == 1


def test_unwrapper_width_validation() -> None:
    with pytest.raises(ValueError, match=r"1\.\.64 bits"):
        Unwrapper(0)


@settings(max_examples=200)
@given(
    st.integers(0, 2**20),
    st.lists(st.integers(1, 3), min_size=1, max_size=300),
    st.integers(0, 50),
    st.randoms(use_true_random=False),
)
def test_unwrap_with_reordering_is_exact(
    start: int, steps: list[int], window: int, rnd: random.Random
) -> None:
    """Increments with reordering inside a small window unwrap to the true extended values
    (offset by the first packet's roll-over), so sorting them gives a monotone sequence."""
    truth = [start]
    for step in steps:
        truth.append(truth[-1] + step)
    arrival = list(truth)
    for i in range(len(arrival)):
        j = min(len(arrival) - 1, i + rnd.randint(0, window))
        arrival[i], arrival[j] = arrival[j], arrival[i]
    u = SeqUnwrapper()
    got = [u.unwrap(x & 0xFFFF) for x in arrival]
    offset = got[0] - arrival[0]
    assert offset % 65536 == 0
    assert [g - offset for g in got] == arrival
    in_order = sorted(got)
    assert all(a < b for a, b in itertools.pairwise(in_order))


@given(st.integers(0, 2**40), st.lists(st.integers(0, 2**30), min_size=1, max_size=100))
def test_timestamp_unwrap_monotone_in_order(start: int, steps: list[int]) -> None:
    u = TimestampUnwrapper()
    value = start
    prev = u.unwrap(value & 0xFFFFFFFF)
    for step in steps:
        value += step
        ext = u.unwrap(value & 0xFFFFFFFF)
        assert ext - prev == step
        prev = ext
