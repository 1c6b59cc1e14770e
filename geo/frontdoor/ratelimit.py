"""Join rate limits per client network: a token bucket per IPv4 /24 or IPv6 /48.

Per network rather than per address, keyed by :func:`control.netkey.network_key` (the
truncated network as an integer, never the address; the TURN nodes' quotas use the same key).
Clients whose address is unknown share one bucket, so hiding the address buys nothing.

Memory is bounded: buckets that have refilled completely are forgotten (they hold no
information), and past ``max_buckets`` the least recently used bucket goes first.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from control.tokenbucket import TokenBucket


class RateLimiter:
    """Token buckets: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, *, max_buckets: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[int, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: int, now: float) -> float:
        """Take one token for ``key``: 0.0 if allowed, else seconds until one is available."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._evict(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return 0.0 if bucket.take(now) else bucket.wait()

    def retry_after(self, wait: float) -> int:
        """``Retry-After`` seconds for a wait (whole seconds, at least 1)."""
        return max(1, math.ceil(wait))

    def _evict(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.refill(now) >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self.max_buckets:
            self._buckets.popitem(last=False)


__all__ = ["RateLimiter"]
