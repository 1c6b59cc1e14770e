"""The delay-based half of the send-side estimate (draft-ietf-rmcat-gcc-02 §5): packet groups,
the trend line of their one-way delay change, and the overuse detector.

Why a module of its own: this is the per-packet part of every TWCC feedback (one call per
acknowledged packet, one group per video frame, for every subscriber), and measured inside a
live router under ``regio bench sfu --load meeting`` it was the largest piece of RTCP input
(~85 µs per feedback of ~56 packets). ``router/forwarding/_gcc.c`` is its compiled twin, with the
same fields and the same floating-point operations in the same order, so the two agree bit for
bit (tests/forwarding/test_gcc_delay.py feeds both the same feedback and compares every field).
:func:`make_detector` picks the compiled one unless ``REGIO_FASTPATH=off``.

Groups: packets sent within 5 ms of a group's first form one group. When a group closes, the
change of one-way delay from the previous group is accumulated, smoothed, and a least-squares
line is fitted over the last 20 groups (libwebrtc's trendline filter, which replaced the
draft's Kalman filter). A slope above an adaptive threshold for long enough is overuse.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from router.transport import fastpath

__all__ = [
    "GROUP_SPAN",
    "MAX_ACKED",
    "NORMAL",
    "OVERUSE",
    "TREND_WINDOW",
    "UNDERUSE",
    "DelayDetector",
    "FeedbackResult",
    "PyDelayDetector",
    "make_detector",
]

NORMAL: Final = 0
OVERUSE: Final = 1
UNDERUSE: Final = 2

GROUP_SPAN: Final = 0.005
TREND_WINDOW: Final = 20
SMOOTHING: Final = 0.9
TREND_GAIN: Final = 4.0
OVERUSE_TIME: Final = 0.05
"""Overuse must last this long (libwebrtc: 10 ms; longer rides out scheduling noise of a
busy host, which looks like queueing to a delay detector)."""
K_UP: Final = 0.0087
K_DOWN: Final = 0.039
INITIAL_THRESHOLD: Final = 12.5
"""Compared with the slope x window x gain, like libwebrtc's (whose unit is ms/ms)."""
MAX_ACKED: Final = 8192
"""Acknowledged packets kept for the acknowledged bitrate at most (~16,000 packets a second to
one subscriber over the half-second window): the arrival times are the subscriber's word, and
feedback that never advances them, or acknowledges the same packets again and again, must not
grow the window without end."""

FeedbackResult = tuple[float, "float | None", int]
"""``(send time, arrival time or None if lost, size in bytes)`` of one reported packet."""


class DelayDetector(Protocol):
    """What the estimator needs; both implementations provide exactly this."""

    @property
    def state(self) -> int:
        """NORMAL, OVERUSE or UNDERUSE, as of the last closed group that reached the detector."""

    def feed(self, results: list[FeedbackResult], window: float) -> tuple[int, int]:
        """One feedback packet's packets, in transport sequence order: every acknowledged one
        joins the acknowledged window as ``(arrival, size)`` (the oldest leaves first when it
        holds :data:`MAX_ACKED`), then what arrived more than ``window`` seconds before the
        newest is dropped from its front. Returns ``(signal, lost)``: the detector's verdict
        after the last acknowledged packet (NORMAL if none was) and the packets reported
        lost."""

    def acked_bitrate(self) -> float:
        """Bits per second over the acknowledged window: 0.0 below two packets, else its bytes
        over the span of its arrivals (at least 0.1 s)."""

    def fields(self) -> dict[str, object]:
        """Every internal field, for the tests that compare the two implementations."""


class _TrendFit:
    """Running least-squares sums over the trend window, so each closed packet group (one
    per packet at video rates, for every subscriber) costs O(1) rather than a pass over the
    window. Coordinates are relative to an origin moved to the window's first point once per
    window length, when the sums are recomputed, so rounding never accumulates."""

    __slots__ = ("added", "sx", "sxx", "sxy", "sy", "x0", "y0")

    def __init__(self) -> None:
        self.x0 = self.y0 = 0.0
        self.sx = self.sy = self.sxx = self.sxy = 0.0
        self.added = 0

    def add(self, window: deque[tuple[float, float]], point: tuple[float, float]) -> None:
        """Append ``point`` to ``window`` (a full window drops its oldest) and update."""
        if len(window) == window.maxlen:
            ox, oy = window[0]
            ox -= self.x0
            oy -= self.y0
            self.sx -= ox
            self.sy -= oy
            self.sxx -= ox * ox
            self.sxy -= ox * oy
        window.append(point)
        self.added += 1
        if self.added >= TREND_WINDOW:
            self.added = 0
            self.x0, self.y0 = window[0]
            self.sx = self.sy = self.sxx = self.sxy = 0.0
            for x, y in window:
                self._include(x, y)
        else:
            self._include(*point)

    def _include(self, x: float, y: float) -> None:
        x -= self.x0
        y -= self.y0
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y

    def slope(self, n: int) -> float:
        """The least-squares slope of the window's ``n`` points (0 if x does not spread)."""
        den = n * self.sxx - self.sx * self.sx
        if den <= 1e-12 * n * self.sxx:
            return 0.0
        return (n * self.sxy - self.sx * self.sy) / den


def _slope(points: deque[tuple[float, float]]) -> float:
    """Least-squares slope of ``points`` in one pass (0 if the x values do not spread): the
    definition the running fit is tested against."""
    n = len(points)
    x0 = points[0][0]
    sx = sy = sxx = sxy = 0.0
    for x, y in points:
        x -= x0
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    den = n * sxx - sx * sx
    return (n * sxy - sx * sy) / den if den > 1e-12 * n * sxx else 0.0


class PyDelayDetector:
    """The reference implementation (see the module docstring)."""

    __slots__ = (
        "_accumulated",
        "_acked",
        "_acked_bytes",
        "_first_arrival",
        "_group",
        "_overuse_since",
        "_prev_group",
        "_smoothed",
        "_threshold",
        "_trend",
        "_trend_fit",
        "state",
    )

    def __init__(self) -> None:
        self.state = NORMAL
        self._group: list[float] | None = None
        """Current group: [first send, last send, last arrival]."""
        self._prev_group: list[float] | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._trend: deque[tuple[float, float]] = deque(maxlen=TREND_WINDOW)
        self._trend_fit = _TrendFit()
        self._first_arrival: float | None = None
        self._threshold = INITIAL_THRESHOLD
        self._overuse_since: float | None = None
        self._acked: deque[tuple[float, int]] = deque()
        self._acked_bytes = 0

    def feed(self, results: list[FeedbackResult], window: float) -> tuple[int, int]:
        """See :class:`DelayDetector`."""
        lost = 0
        acked_bytes = self._acked_bytes
        signal = NORMAL
        acked = self._acked
        append, popleft = acked.append, acked.popleft
        # The groups, inlined (one method call per acknowledged packet was ~a third of this
        # loop): a packet sent more than GROUP_SPAN after its group's first closes it.
        group = self._group
        for send, arrival, size in results:
            if arrival is None:
                lost += 1
                continue
            if len(acked) >= MAX_ACKED:
                acked_bytes -= popleft()[1]
            append((arrival, size))
            acked_bytes += size
            if group is None or send - group[0] > GROUP_SPAN:
                signal = self.state
                if group is not None:
                    signal = self._close_group(group)
                group = [send, send, arrival]
                continue
            if send > group[1]:
                group[1] = send
            if arrival > group[2]:
                group[2] = arrival
            signal = self.state
        self._group = group
        while acked and acked[0][0] < acked[-1][0] - window:
            acked_bytes -= popleft()[1]
        self._acked_bytes = acked_bytes
        return signal, lost

    def acked_bitrate(self) -> float:
        """See :class:`DelayDetector`."""
        acked = self._acked
        if len(acked) < 2:
            return 0.0
        span = max(acked[-1][0] - acked[0][0], 0.1)
        return 8.0 * self._acked_bytes / span

    def fields(self) -> dict[str, object]:
        """See :class:`DelayDetector`."""
        fit = self._trend_fit
        return {
            "state": self.state,
            "group": None if self._group is None else tuple(self._group),
            "prev_group": None if self._prev_group is None else tuple(self._prev_group),
            "accumulated": self._accumulated,
            "smoothed": self._smoothed,
            "first_arrival": self._first_arrival,
            "threshold": self._threshold,
            "overuse_since": self._overuse_since,
            "trend": tuple(self._trend),
            "fit": (fit.x0, fit.y0, fit.sx, fit.sy, fit.sxx, fit.sxy, fit.added),
            "acked": tuple(self._acked),
            "acked_bytes": self._acked_bytes,
        }

    def _close_group(self, group: list[float]) -> int:
        prev = self._prev_group
        self._prev_group = group
        if prev is None:
            return self.state
        send_delta = group[1] - prev[1]
        arrival_delta = group[2] - prev[2]
        self._accumulated += arrival_delta - send_delta
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        if self._first_arrival is None:
            self._first_arrival = group[2]
        trend = self._trend
        point = (group[2] - self._first_arrival, self._smoothed)
        self._trend_fit.add(trend, point)
        if len(trend) < TREND_WINDOW:
            return NORMAL
        slope = self._trend_fit.slope(len(trend))
        modified = slope * TREND_WINDOW * TREND_GAIN
        return self._detect(modified, group[2], arrival_delta)

    def _detect(self, modified: float, t: float, delta: float) -> int:
        threshold = self._threshold
        if modified > threshold:
            if self._overuse_since is None:
                self._overuse_since = t
            state = OVERUSE if t - self._overuse_since >= OVERUSE_TIME else self.state
        elif modified < -threshold:
            self._overuse_since = None
            state = UNDERUSE
        else:
            self._overuse_since = None
            state = NORMAL
        k = K_DOWN if abs(modified) < threshold else K_UP
        if abs(modified) - threshold < 15.0:
            step_ms = 1000.0 * max(0.0, min(delta, 0.1))
            threshold += k * (abs(modified) - threshold) * step_ms
            self._threshold = max(6.0, min(600.0, threshold))
        self.state = state
        return state


def make_detector() -> DelayDetector:
    """The compiled detector when the fast path is on and built, else the reference."""
    compiled = fastpath.delay_detector()
    if compiled is not None:
        detector: DelayDetector = compiled(
            GROUP_SPAN, TREND_WINDOW, SMOOTHING, TREND_GAIN, OVERUSE_TIME, K_UP, K_DOWN,
            INITIAL_THRESHOLD, MAX_ACKED,
        )  # fmt: skip
        return detector
    return PyDelayDetector()
