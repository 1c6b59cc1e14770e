"""The trunk gap detector: gaps are reported once; duplicates, reordering, retransmissions and
restarts are not gaps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.trunk.nack import MAX_GAP, GapDetector


def test_gaps_and_non_gaps() -> None:
    gaps = GapDetector()
    assert gaps.missing(1, 65534) == []
    assert gaps.missing(1, 1) == [65535, 0]  # across the wrap
    assert gaps.missing(1, 0) == []  # the retransmission of a missing one
    assert gaps.missing(1, 1) == []  # duplicate
    assert gaps.missing(1, 2 + MAX_GAP) == []  # a restart, not a NACK storm
    assert gaps.missing(2, 7) == []  # SSRCs are independent


@given(st.lists(st.integers(0, 0xFFFF), max_size=200))
def test_each_number_is_reported_at_most_once_per_advance(seqs: list[int]) -> None:
    gaps = GapDetector()
    for seq in seqs:
        lost = gaps.missing(9, seq)
        assert len(lost) < MAX_GAP and seq not in lost
