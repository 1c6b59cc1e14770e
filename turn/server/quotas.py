"""Quotas and rate limits of the TURN core: failed authentication per source network, and
bandwidth per allocation (both spend from :class:`control.tokenbucket.TokenBucket`).

Failed authentications are limited per /24 (IPv4) or /48 (IPv6) (:func:`control.netkey.
network_key`, the key the front door's limits use too), not per address: an attacker
owning a subnet, or an IPv6 host with 2^64 addresses, would otherwise get a fresh budget per
address. The table is bounded so a spoofed-source flood cannot grow it without limit; when full,
the oldest network is forgotten (it gets a fresh budget, which is the safe direction to err in
for a table that only exists to slow guessing down).
"""

from __future__ import annotations

from typing import Final

from control.netkey import network_key
from control.tokenbucket import TokenBucket

_TABLE_LIMIT: Final = 65536


class FailureLimiter:
    """Counts failed authentications per source network and says when to stop answering."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int, TokenBucket] = {}

    def blocked(self, ip: str, now: float) -> bool:
        """True when this source's network has used up its failure budget."""
        bucket = self._buckets.get(network_key(ip))
        return bucket is not None and bucket.refill(now) < 1.0

    def record_failure(self, ip: str, now: float) -> None:
        net = network_key(ip)
        bucket = self._buckets.get(net)
        if bucket is None:
            if len(self._buckets) >= _TABLE_LIMIT:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[net] = TokenBucket(self.rate, self.burst, now)
        bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["FailureLimiter"]
