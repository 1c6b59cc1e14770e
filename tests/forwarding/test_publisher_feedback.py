"""The publisher feedback walk's compiled twin (``arrival_deltas`` in router/rtp/_twcc.c)
against its reference (``publisher_feedback.py_arrival_deltas``).

On arrival times a router records (monotonic seconds, any gaps, reordering, bursts, pauses long
enough to clamp a delta) both must give the same reference time, statuses and deltas, and the
recorder must send the same bytes either way. On anything else (huge or odd values, keys missing)
the twin returns None and the reference decides, so no input makes them disagree.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import router.rtp._twcc as compiled
from router.forwarding import publisher_feedback
from router.forwarding.publisher_feedback import TwccRecorder, py_arrival_deltas
from tests.forwarding.helpers import rtp

TWCC_ID = 3


@st.composite
def recorded(draw: st.DrawFn) -> tuple[dict[int, float], int, int]:
    """Arrivals as TwccRecorder keeps them: extended numbers from 65536 on, each packet lost,
    late or on time, at realistic clock values and gaps (including pauses over 8 s)."""
    start = draw(st.integers(1 << 16, 1 << 40))
    now = draw(st.floats(0.0, 1e7, allow_nan=False))
    count = draw(st.integers(1, 300))
    arrivals: dict[int, float] = {start: now}
    for ext in range(start + 1, start + count):
        now += draw(
            st.sampled_from([0.0, 0.000_124_9, 0.000_125, 0.000_375, 0.001, 0.033])
            | st.floats(-0.05, 0.07)
            | st.sampled_from([9.0, -9.0])
        )
        if draw(st.integers(0, 9)) > 0:
            arrivals[ext] = now
    last = max(arrivals)
    return arrivals, start, last + 1


@given(recorded())
@settings(max_examples=500)
def test_compiled_walk_matches_the_reference(case: tuple[dict[int, float], int, int]) -> None:
    arrivals, base, stop = case
    assert compiled.arrival_deltas(arrivals, base, stop) == py_arrival_deltas(arrivals, base, stop)


@given(
    st.dictionaries(
        st.integers(-(1 << 70), 1 << 70),
        st.floats() | st.integers(-(1 << 64), 1 << 64) | st.none(),
        max_size=20,
    ),
    st.integers(-(1 << 70), 1 << 70),
    st.integers(0, 40),
)
@settings(max_examples=500)
def test_compiled_walk_never_disagrees_on_any_values(
    arrivals: dict[int, float], base: int, span: int
) -> None:
    fast = compiled.arrival_deltas(arrivals, base, base + span)
    if fast is None:
        return
    assert fast == py_arrival_deltas(arrivals, base, base + span)


def test_compiled_walk_hands_back_what_it_cannot_compute_exactly() -> None:
    assert compiled.arrival_deltas({70000: 1.0}, 70000, 70000) is None  # empty span
    assert compiled.arrival_deltas({70001: 1.0}, 70000, 70002) is None  # base not received
    assert compiled.arrival_deltas({70000: 1}, 70000, 70001) is None  # not a float
    assert compiled.arrival_deltas({70000: math.inf}, 70000, 70001) is None
    assert compiled.arrival_deltas({70000: math.nan}, 70000, 70001) is None
    assert compiled.arrival_deltas({70000: 1e12}, 70000, 70001) is None  # beyond 2**53 µs
    assert compiled.arrival_deltas({70000: 1.0}, 1 << 70, (1 << 70) + 1) is None


def test_compiled_walk_rounds_half_to_even_and_clamps() -> None:
    # 0.125 ms is half a tick: round() goes to the even neighbour, and so must the twin.
    arrivals = {70000: 64.0, 70001: 64.000125, 70002: 64.000500, 70003: 64.000625, 70004: 80.0}
    ref, statuses, deltas = py_arrival_deltas(arrivals, 70000, 70005)
    assert deltas == (0, 0, 2, 0, 0x7FFF)
    assert statuses == b"\x01\x01\x01\x01\x02"
    assert compiled.arrival_deltas(arrivals, 70000, 70005) == (ref, statuses, deltas)


@pytest.mark.parametrize("gaps", [(), (3, 4, 5), tuple(range(10, 40))])
def test_recorder_sends_the_same_bytes_on_both_paths(
    gaps: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    def feedback(walk: object) -> list[bytes]:
        monkeypatch.setattr(publisher_feedback, "_arrival_deltas", walk)
        recorder = TwccRecorder(TWCC_ID)
        recorder.media_ssrc = 0x1000
        out = []
        for round_ in range(3):
            for i in range(60):
                if i not in gaps:
                    twseq = (round_ * 60 + i + 0xFFF0) & 0xFFFF
                    packet = rtp(i, ext={TWCC_ID: twseq.to_bytes(2, "big")})
                    recorder.record(packet, 100.0 + round_ * 0.05 + i * 0.0007)
            out += recorder.feedback(0xABCD)
        return out

    fast = feedback(compiled.arrival_deltas)
    assert fast == feedback(None)
    assert len(fast) == 3
