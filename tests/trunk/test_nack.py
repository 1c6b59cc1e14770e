"""The trunk gap detector (gaps are reported once; duplicates, reordering, retransmissions and
restarts are not gaps), the hop NACK codec and the per-trunk packet cache."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.trunk.cache import SLOTS, HopCache
from router.trunk.nack import (
    MAX_GAP,
    MAX_PENDING,
    GapDetector,
    HopNack,
    HopNackError,
    is_hop_nack,
    parse_hop_nack,
)


def test_gaps_and_non_gaps() -> None:
    gaps: GapDetector[int] = GapDetector()
    assert gaps.missing(1, 65534) == []
    assert gaps.missing(1, 1) == [65535, 0]  # across the wrap
    assert gaps.missing(1, 0) == []  # the retransmission of a missing one
    assert gaps.missing(1, 1) == []  # duplicate
    assert gaps.missing(1, 2 + MAX_GAP) == []  # a restart, not a NACK storm
    assert gaps.missing(2, 7) == []  # SSRCs are independent


@given(st.lists(st.integers(0, 0xFFFF), max_size=200))
def test_each_number_is_reported_at_most_once_per_advance(seqs: list[int]) -> None:
    gaps: GapDetector[int] = GapDetector()
    for seq in seqs:
        lost = gaps.missing(9, seq)
        assert len(lost) < MAX_GAP and seq not in lost


def test_missing_packets_are_asked_for_again_until_they_come_or_age_out() -> None:
    gaps: GapDetector[int] = GapDetector()
    assert gaps.missing(1, 10, 0.0, 0.05) == []
    assert gaps.missing(1, 13, 0.0, 0.05) == [11, 12]
    assert gaps.missing(1, 14, 0.03, 0.05) == []  # not due yet
    assert gaps.missing(1, 11, 0.06, 0.05) == [12]  # 11 came (a repair), 12 is due again
    assert gaps.missing(1, 15, 0.08, 0.05) == []
    assert gaps.missing(1, 16, 0.12, 0.05) == [12]  # third and last NACK
    assert gaps.missing(1, 17, 0.5, 0.05) == [] and gaps.given_up == 1
    # a packet missing for longer than MAX_AGE is no longer asked for
    assert gaps.missing(2, 1, 0.0, 0.5) == [] and gaps.missing(2, 3, 0.0, 0.9) == [2]
    assert gaps.missing(2, 4, 1.2, 0.5) == [] and gaps.given_up == 2
    # heavy loss keeps at most MAX_PENDING numbers per stream
    many: GapDetector[int] = GapDetector()
    seq = 0
    for _ in range(MAX_PENDING // 10 + 5):
        many.missing(3, seq, 0.0)
        seq += 11
    assert many.given_up > 0
    many.forget(3)
    assert many.streams() == []


node_ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64)


@given(node_ids, node_ids, st.integers(0, 2**32 - 1),
       st.integers(0, 0xFFFF), st.sets(st.integers(0, MAX_GAP - 1), min_size=1, max_size=64))
def test_hop_nack_round_trip(origin: str, destination: str, ssrc: int, base: int,
                             offsets: set[int]) -> None:
    seqs = tuple(sorted((base + o) & 0xFFFF for o in offsets))
    raw = HopNack(origin, destination, ssrc, seqs).build()
    assert is_hop_nack(raw) and len(raw) % 4 == 0
    parsed = parse_hop_nack(raw)
    assert (parsed.origin, parsed.destination, parsed.ssrc) == (origin, destination, ssrc)
    assert sorted(parsed.seqs) == sorted(seqs)


@given(st.binary(max_size=200))
def test_hop_nack_parser_refuses_garbage_precisely(data: bytes) -> None:
    try:
        nack = parse_hop_nack(data)
    except HopNackError:
        return
    assert 0 < len(nack.origin) <= 64 and nack.seqs


def test_hop_nack_bad_input() -> None:
    good = HopNack("rA", "rB", 7, (1, 2)).build()
    for bad in (good[:-4], good[:8] + b"XXXX" + good[12:], good[:1] + b"\xcd" + good[2:],
                good[:16] + b"\x00" + good[17:], good[:16] + b"\xff" + good[17:],
                bytes((0x81,)) + good[1:]):
        with pytest.raises(HopNackError):
            parse_hop_nack(bad)
    with pytest.raises(HopNackError):
        HopNack("", "rB", 1, (1,)).build()


def packet(ssrc: int, seq: int, offset: int = 0) -> bytes:
    return b"E" * offset + struct.pack("!BBHII", 0x80, 96, seq, 0, ssrc) + seq.to_bytes(2, "big")


def test_cache_keeps_the_last_slots_per_flow_and_forgets_idle_flows() -> None:
    cache = HopCache()
    cache.put("A", "B", [packet(5, s) for s in range(SLOTS + 10)], 0)
    cache.put("A", "C", [packet(5, 3, offset=9)], 9)
    cache.put("A", "B", [b"short"], 0)  # no RTP header: not kept, no error
    assert cache.get("A", "B", 5, SLOTS + 9) == packet(5, SLOTS + 9)
    assert cache.get("A", "B", 5, 9) is None  # overwritten by SLOTS + 9
    assert cache.get("A", "B", 5, 10) == packet(5, 10)
    assert cache.get("A", "C", 5, 3) == packet(5, 3, offset=9)  # flows are per destination
    assert cache.get("A", "B", 6, 10) is None
    assert cache.expire() == 0  # used since the start
    cache.put("A", "B", [packet(5, 1)], 0)
    assert cache.expire() == 1 and cache.has_flow(("A", "B", 5))
    assert not cache.has_flow(("A", "C", 5))
