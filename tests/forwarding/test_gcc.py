"""The send-side estimator's trend line: the running fit equals a direct least-squares fit."""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from router.forwarding.gcc_delay import TREND_WINDOW as _TREND_WINDOW
from router.forwarding.gcc_delay import _slope, _TrendFit


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0, 1e5),
    st.lists(
        st.tuples(st.floats(1e-4, 0.2), st.floats(-50, 50)), min_size=_TREND_WINDOW,
        max_size=120,
    ),
)
def test_running_fit_matches_the_direct_fit(start: float, steps: list[tuple[float, float]]) -> None:
    window: deque[tuple[float, float]] = deque(maxlen=_TREND_WINDOW)
    fit = _TrendFit()
    x = start
    for dx, y in steps:
        x += dx
        fit.add(window, (x, y))
        if len(window) == _TREND_WINDOW:
            direct = _slope(window)
            assert math.isclose(fit.slope(len(window)), direct, rel_tol=1e-6, abs_tol=1e-6)

