"""Join rate limits per client network: a token bucket per IPv4 /24 or IPv6 /48.

Per network rather than per address because one user holds a whole IPv6 /64 (and usually a
/56 or /48), and one IPv4 /24 is the granularity our logs may keep anyway (privacy,
ARCHITECTURE.md §4): the bucket key is the truncated network as an integer, never the address.
Clients whose address is unknown share one bucket, so hiding the address buys nothing.

Memory is bounded: buckets that have refilled completely are forgotten (they hold no
information), and past ``max_buckets`` the least recently used bucket goes first.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

from control.tokenbucket import TokenBucket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_SHIFT = 32 - 24
_V6_SHIFT = 128 - 48
UNKNOWN_NETWORK = -1


def network_key(address: IPAddress | None) -> int:
    """The bucket key of ``address``: its /24 or /48 as an integer (IPv6 keys offset so the
    families never collide); :data:`UNKNOWN_NETWORK` for None."""
    if address is None:
        return UNKNOWN_NETWORK
    if address.version == 4:
        return int(address) >> _V4_SHIFT
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None:
        return int(mapped) >> _V4_SHIFT
    return (1 << 48) + (int(address) >> _V6_SHIFT)


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


__all__ = ["UNKNOWN_NETWORK", "RateLimiter", "network_key"]
