"""The one token bucket: TURN bandwidth and failed-authentication limits, the router's message
and chat limits, and the front door's join limits all spend from this class.

Sans-IO: the caller passes ``now`` (any monotonic clock, or virtual time in tests), so the
limits behave the same under Trio's MockClock and in the sans-IO cores.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; starts full."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> float:
        """Add what accrued since the last call; the tokens now stored."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        return self.tokens

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend ``amount`` if stored; False (nothing spent) when the bucket is short."""
        if self.refill(now) >= amount:
            self.tokens -= amount
            return True
        return False

    def wait(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` is stored (0 when it already is), as of the last refill."""
        missing = amount - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate


__all__ = ["TokenBucket"]
