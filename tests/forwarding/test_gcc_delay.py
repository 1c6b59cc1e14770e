"""The compiled delay detector (router/forwarding/_gcc.c) against its Python reference
(router.forwarding.gcc_delay.PyDelayDetector): the same feedback gives the same verdicts and
the same value of every field, bit for bit, after every call, the acknowledged window and its
bitrate included.

The compiled module is imported directly, so a missing build fails here instead of skipping.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import router.forwarding._gcc as compiled
from router.forwarding import gcc_delay
from router.forwarding.gcc import SendSideEstimator
from router.forwarding.gcc_delay import (
    NORMAL,
    OVERUSE,
    UNDERUSE,
    FeedbackResult,
    PyDelayDetector,
)


def _compiled() -> compiled.DelayDetector:
    return compiled.DelayDetector(
        gcc_delay.GROUP_SPAN, gcc_delay.TREND_WINDOW, gcc_delay.SMOOTHING, gcc_delay.TREND_GAIN,
        gcc_delay.OVERUSE_TIME, gcc_delay.K_UP, gcc_delay.K_DOWN, gcc_delay.INITIAL_THRESHOLD,
        gcc_delay.MAX_ACKED,
    )  # fmt: skip


def _feedback(
    steps: list[tuple[float, float, bool, int]], start: float
) -> list[list[FeedbackResult]]:
    """Feedback packets from (send gap, one-way delay, lost, size) steps, split every 1..60."""
    out: list[list[FeedbackResult]] = []
    batch: list[FeedbackResult] = []
    send = start
    for i, (gap, delay, lost, size) in enumerate(steps):
        send += gap
        batch.append((send, None if lost else send + delay, size))
        if len(batch) >= 1 + (i * 7) % 60:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def _run_both(batches: list[list[FeedbackResult]], window: float = 0.5) -> list[int]:
    reference, twin = PyDelayDetector(), _compiled()
    states = []
    for batch in batches:
        expected = reference.feed(batch, window)
        assert twin.feed(batch, window) == expected
        assert twin.fields() == reference.fields()
        assert twin.state == reference.state
        assert twin.acked_bitrate() == reference.acked_bitrate()
        states.append(reference.state)
    return states


_step = st.tuples(
    st.one_of(st.just(0.0), st.floats(0, 0.002), st.floats(0, 0.08), st.floats(-0.01, 0.01)),
    st.floats(-0.05, 0.5),
    st.booleans(),
    st.integers(0, 1500),
)


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e4, 1e6), st.lists(_step, max_size=400), st.floats(0, 2))
def test_the_compiled_detector_matches_the_reference(
    start: float, steps: list[tuple[float, float, bool, int]], window: float
) -> None:
    _run_both(_feedback(steps, start), window)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(5, 200), st.floats(-0.004, 0.004)), min_size=1, max_size=12),
    st.floats(0, 1e5),
)
def test_delay_ramps_agree_through_every_state(
    ramps: list[tuple[int, float]], start: float
) -> None:
    """Stretches where the queue grows, drains or holds (the slope each detector must judge)."""
    steps = []
    delay = 0.03
    for length, slope in ramps:
        for i in range(length):
            delay = max(0.0, delay + slope)
            steps.append((0.0067 if i % 3 else 0.0003, delay, i % 97 == 5, 1100))
    _run_both(_feedback(steps, start))


def test_a_growing_queue_is_overuse_and_a_draining_one_underuse_in_both() -> None:
    growing = [(0.01, 0.02 + 0.002 * i, False, 1200) for i in range(200)]
    draining = [(0.01, max(0.0, 0.42 - 0.004 * i), False, 1200) for i in range(100)]
    states = _run_both(_feedback(growing + draining, 100.0))
    assert OVERUSE in states
    assert UNDERUSE in states
    assert states[0] == NORMAL


def test_the_estimator_gives_the_same_estimates_on_either_detector() -> None:
    batches = _feedback(
        [(0.004, 0.02 + 0.0015 * (i % 150), i % 41 == 0, 1100) for i in range(3000)], 5.0
    )
    estimators = [SendSideEstimator(1_000_000, 100_000, 8_000_000) for _ in range(2)]
    estimators[0]._delay = PyDelayDetector()
    estimators[1]._delay = _compiled()
    for k, batch in enumerate(batches):
        now = 5.0 + 0.1 * k
        for estimator in estimators:
            estimator.on_feedback(batch, now)
        assert estimators[0].estimate == estimators[1].estimate
        assert estimators[0].state == estimators[1].state
        assert estimators[0].acked_bitrate() == estimators[1].acked_bitrate()


def test_bad_input_is_refused_with_a_clear_error() -> None:
    twin = _compiled()
    with pytest.raises(TypeError, match="tuple"):
        twin.feed([(1.0, 2.0)], 0.5)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence"):
        twin.feed(5, 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="2 arguments"):
        twin.feed([])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="window"):
        compiled.DelayDetector(0.005, 1000, 0.9, 4.0, 0.05, 0.0087, 0.039, 12.5, 100)
    with pytest.raises(ValueError, match="max_acked"):
        compiled.DelayDetector(0.005, 20, 0.9, 4.0, 0.05, 0.0087, 0.039, 12.5, 0)
    assert twin.fields() == PyDelayDetector().fields()  # nothing changed


def test_feedback_that_never_advances_cannot_grow_the_acknowledged_window() -> None:
    """A subscriber's arrival times are its own word: feedback acknowledging the same instant
    again and again keeps at most MAX_ACKED packets, in both detectors, with the same bytes."""
    reference, twin = PyDelayDetector(), _compiled()
    batch: list[FeedbackResult] = [(1.0 + 0.001 * i, 7.0, 1000 + i) for i in range(3000)]
    for _ in range(4):
        assert twin.feed(batch, 0.5) == reference.feed(batch, 0.5)
    fields = reference.fields()
    assert twin.fields() == fields
    acked = fields["acked"]
    assert isinstance(acked, tuple) and len(acked) == gcc_delay.MAX_ACKED
    assert fields["acked_bytes"] == sum(size for _, size in acked)
    assert twin.acked_bitrate() == reference.acked_bitrate() == 8.0 * sum(
        size for _, size in acked
    ) / 0.1
