"""Token buckets with explicit time, for per-connection message and per-participant chat limits.

Sans-IO like the rest of the session layer: the caller passes ``now``, so tests run on virtual
time and the limits behave identically under MockClock.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` spends one if available."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if the bucket holds them; False (nothing spent) otherwise."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


__all__ = ["TokenBucket"]
