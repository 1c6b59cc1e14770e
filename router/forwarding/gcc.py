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

from typing import Final

from router.forwarding.gcc_delay import NORMAL, OVERUSE, UNDERUSE, FeedbackResult, make_detector

__all__ = ["NORMAL", "OVERUSE", "UNDERUSE", "SendSideEstimator"]

_LOSS_WINDOW: Final = 0.5
"""Loss is judged over feedback covering at least this long (and 20 packets), not per
feedback packet: one short feedback with two gaps is not 10 % loss."""
_ACK_WINDOW: Final = 0.5


class SendSideEstimator:
    """Delay- and loss-based estimate of what one subscriber's downlink carries (bits/s)."""

    __slots__ = (
        "_delay",
        "_delay_rate",
        "_last_decrease",
        "_last_increase",
        "_loss_lost",
        "_loss_rate",
        "_loss_since",
        "_loss_total",
        "last_loss",
        "max_bitrate",
        "min_bitrate",
        "remb",
        "updates",
    )

    def __init__(self, initial: int, min_bitrate: int, max_bitrate: int) -> None:
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self._delay_rate = float(initial)
        self._loss_rate = float(initial)
        self.remb: int | None = None
        self.last_loss = 0.0
        self.updates = 0
        self._delay = make_detector()
        self._last_increase: float | None = None
        self._last_decrease = -1.0
        self._loss_lost = 0
        self._loss_total = 0
        self._loss_since: float | None = None

    @property
    def state(self) -> int:
        """The delay-based detector's verdict: NORMAL, OVERUSE or UNDERUSE."""
        return self._delay.state

    @property
    def estimate(self) -> int:
        """The current estimate in bits per second."""
        rate = min(self._delay_rate, self._loss_rate)
        if self.remb is not None:
            rate = min(rate, float(self.remb))
        return int(max(self.min_bitrate, min(self.max_bitrate, rate)))

    def acked_bitrate(self) -> float:
        """What the subscriber acknowledged receiving over the last half second (bits/s)."""
        return self._delay.acked_bitrate()

    # -- inputs ---------------------------------------------------------------------------

    def on_feedback(self, results: list[FeedbackResult], now: float) -> None:
        """One feedback packet's packets, in transport sequence order."""
        if not results:
            return
        self.updates += 1
        signal, lost = self._delay.feed(results, _ACK_WINDOW)
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
