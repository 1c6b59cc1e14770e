"""A send-side bandwidth estimate for one subscriber, in the spirit of draft-ietf-rmcat-gcc-02.

Inputs are the subscriber's transport-cc feedback turned into ``(send time, arrival time or
None, size)`` per packet (the router remembers send times and sizes by transport-wide sequence
number), plus RR fraction-lost and REMB when the subscriber sends them.

* Delay-based part (§5): packets sent within 5 ms form a group; the change of one-way delay
  between consecutive groups is accumulated, smoothed, and a trend line is fitted over the last
  20 groups (libwebrtc's trendline filter, which replaced the draft's Kalman filter). A slope
  above an adaptive threshold means the queue is growing (overuse): the rate drops to 85 % of
  what was acknowledged. Otherwise the rate grows 8 % a second, never above 1.5x the
  acknowledged rate (the draft's bound), which is why the router probes before it switches a
  subscriber up.
* Loss-based part (§6): over each feedback window, more than 10 % loss cuts the rate to
  ``rate x (1 - loss/2)``; under 2 % lets it grow 5 %; in between it holds.
* The estimate is the smallest of the delay-based rate, the loss-based rate and the last REMB.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["SendSideEstimator"]

_GROUP_SPAN: Final = 0.005
_TREND_WINDOW: Final = 20
_SMOOTHING: Final = 0.9
_TREND_GAIN: Final = 4.0
_OVERUSE_TIME: Final = 0.05
"""Overuse must last this long (libwebrtc: 10 ms; longer rides out scheduling noise of a
busy host, which looks like queueing to a delay detector)."""
_LOSS_WINDOW: Final = 0.5
"""Loss is judged over feedback covering at least this long (and 20 packets), not per
feedback packet: one short feedback with two gaps is not 10 % loss."""
_K_UP: Final = 0.0087
_K_DOWN: Final = 0.039
_ACK_WINDOW: Final = 0.5

NORMAL: Final = 0
OVERUSE: Final = 1
UNDERUSE: Final = 2


class SendSideEstimator:
    """Delay- and loss-based estimate of what one subscriber's downlink carries (bits/s)."""

    __slots__ = (
        "_accumulated",
        "_acked",
        "_acked_bytes",
        "_delay_rate",
        "_first_arrival",
        "_group",
        "_last_decrease",
        "_last_increase",
        "_loss_lost",
        "_loss_rate",
        "_loss_since",
        "_loss_total",
        "_overuse_since",
        "_prev_group",
        "_smoothed",
        "_threshold",
        "_trend",
        "_trend_fit",
        "last_loss",
        "max_bitrate",
        "min_bitrate",
        "remb",
        "state",
        "updates",
    )

    def __init__(self, initial: int, min_bitrate: int, max_bitrate: int) -> None:
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self._delay_rate = float(initial)
        self._loss_rate = float(initial)
        self.remb: int | None = None
        self.state = NORMAL
        self.last_loss = 0.0
        self.updates = 0
        self._acked: deque[tuple[float, int]] = deque()
        self._acked_bytes = 0
        self._group: list[float] | None = None
        """Current group: [first send, last send, last arrival]."""
        self._prev_group: list[float] | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._trend: deque[tuple[float, float]] = deque(maxlen=_TREND_WINDOW)
        self._trend_fit = _TrendFit()
        self._first_arrival: float | None = None
        self._threshold = 12.5
        """Compared with the slope x window x gain, like libwebrtc's (whose unit is ms/ms)."""
        self._overuse_since: float | None = None
        self._last_increase: float | None = None
        self._last_decrease = -1.0
        self._loss_lost = 0
        self._loss_total = 0
        self._loss_since: float | None = None

    @property
    def estimate(self) -> int:
        """The current estimate in bits per second."""
        rate = min(self._delay_rate, self._loss_rate)
        if self.remb is not None:
            rate = min(rate, float(self.remb))
        return int(max(self.min_bitrate, min(self.max_bitrate, rate)))

    def acked_bitrate(self) -> float:
        """What the subscriber acknowledged receiving over the last half second (bits/s)."""
        acked = self._acked
        if len(acked) < 2:
            return 0.0
        span = max(acked[-1][0] - acked[0][0], 0.1)
        return 8.0 * self._acked_bytes / span

    # -- inputs ---------------------------------------------------------------------------

    def on_feedback(self, results: list[tuple[float, float | None, int]], now: float) -> None:
        """One feedback packet's packets, in transport sequence order."""
        if not results:
            return
        self.updates += 1
        lost = 0
        acked = self._acked
        acked_bytes = self._acked_bytes
        signal = NORMAL
        # The 5 ms packet groups, inlined (one method call per acknowledged packet was ~a third
        # of this loop): a packet sent more than _GROUP_SPAN after its group's first closes it.
        group = self._group
        for send, arrival, size in results:
            if arrival is None:
                lost += 1
                continue
            acked.append((arrival, size))
            acked_bytes += size
            if group is None or send - group[0] > _GROUP_SPAN:
                signal = self.state
                if group is not None:
                    signal = self._close_group(group, arrival)
                group = [send, send, arrival]
                continue
            if send > group[1]:
                group[1] = send
            if arrival > group[2]:
                group[2] = arrival
            signal = self.state
        self._group = group
        self._acked_bytes = acked_bytes
        while acked and acked[0][0] < acked[-1][0] - _ACK_WINDOW:
            self._acked_bytes -= acked.popleft()[1]
        self._loss_lost += lost
        self._loss_total += len(results)
        if self._loss_since is None:
            self._loss_since = now
        if now - self._loss_since >= _LOSS_WINDOW and self._loss_total >= 20:
            self.on_loss(self._loss_lost / self._loss_total, now)
            self._loss_lost = self._loss_total = 0
            self._loss_since = now
        self._rate_control(signal, now)

    def on_loss(self, fraction: float, now: float) -> None:
        """A loss fraction over some recent window (TWCC feedback or an RR's fraction-lost)."""
        self.last_loss = fraction
        rate = self._loss_rate
        if fraction > 0.10:
            rate = min(rate, self._delay_rate) * (1.0 - 0.5 * fraction)
        elif fraction < 0.02:
            rate = max(rate, min(self._delay_rate, rate * 1.05))
        self._loss_rate = max(float(self.min_bitrate), min(float(self.max_bitrate), rate))

    def on_probe_result(self, rate: float) -> bool:
        """What a probe got through: a floor for the estimate unless the path congested."""
        if self.state == OVERUSE or self.last_loss > 0.10:
            return False
        floor = min(float(self.max_bitrate), 0.95 * rate)
        self._delay_rate = max(self._delay_rate, floor)
        self._loss_rate = max(self._loss_rate, floor)
        return True

    def assume(self, rate: float) -> None:
        """Continue from ``rate`` (a value learnt elsewhere, e.g. an earlier connection)."""
        self._delay_rate = self._loss_rate = float(rate)

    def on_remb(self, bitrate: int) -> None:
        """The subscriber's own receive-side estimate (an upper bound)."""
        self.remb = max(0, bitrate)

    # -- delay-based part -----------------------------------------------------------------

    def _close_group(self, group: list[float], now_arrival: float) -> int:
        prev = self._prev_group
        self._prev_group = group
        if prev is None:
            return self.state
        send_delta = group[1] - prev[1]
        arrival_delta = group[2] - prev[2]
        self._accumulated += arrival_delta - send_delta
        self._smoothed = _SMOOTHING * self._smoothed + (1 - _SMOOTHING) * self._accumulated
        if self._first_arrival is None:
            self._first_arrival = group[2]
        trend = self._trend
        point = (group[2] - self._first_arrival, self._smoothed)
        self._trend_fit.add(trend, point)
        if len(trend) < _TREND_WINDOW:
            return NORMAL
        slope = self._trend_fit.slope(len(trend))
        modified = slope * _TREND_WINDOW * _TREND_GAIN
        return self._detect(modified, group[2], arrival_delta)

    def _detect(self, modified: float, t: float, delta: float) -> int:
        threshold = self._threshold
        if modified > threshold:
            if self._overuse_since is None:
                self._overuse_since = t
            state = OVERUSE if t - self._overuse_since >= _OVERUSE_TIME else self.state
        elif modified < -threshold:
            self._overuse_since = None
            state = UNDERUSE
        else:
            self._overuse_since = None
            state = NORMAL
        k = _K_DOWN if abs(modified) < threshold else _K_UP
        if abs(modified) - threshold < 15.0:
            step_ms = 1000.0 * max(0.0, min(delta, 0.1))
            threshold += k * (abs(modified) - threshold) * step_ms
            self._threshold = max(6.0, min(600.0, threshold))
        self.state = state
        return state

    def _rate_control(self, signal: int, now: float) -> None:
        acked = self.acked_bitrate()
        if signal == OVERUSE:
            if now - self._last_decrease >= 0.2:  # once per RTT-ish, as libwebrtc does
                base = acked if acked > 0 else self._delay_rate
                # Never below half in one step: the acknowledged rate of a subscriber that
                # only gets a low layer says little about what its path carries.
                self._delay_rate = min(self._delay_rate, max(0.85 * base, 0.5 * self._delay_rate))
                self._last_decrease = now
            self._last_increase = now
        elif signal == NORMAL:
            last = self._last_increase
            elapsed = 0.0 if last is None else min(1.0, max(0.0, now - last))
            current = self._delay_rate
            rate = current * (1.08**elapsed)
            if acked > 0:
                rate = min(rate, max(current, 1.5 * acked + 10_000))
            self._delay_rate = rate
            self._last_increase = now
        else:
            self._last_increase = now
        self._delay_rate = max(
            float(self.min_bitrate), min(float(self.max_bitrate), self._delay_rate)
        )


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
        if self.added >= _TREND_WINDOW:
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
    """Least-squares slope of ``points`` (0 if the x values do not spread).

    One pass over the window (it runs for every closed packet group of every subscriber),
    with x taken relative to the window's first point so the sums stay small."""
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
