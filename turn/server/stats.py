"""Counters of the TURN core, read by the metrics collector at scrape time.

Plain integers and small dicts keyed by reason (never by address), so the relay path pays one
attribute increment per packet and Prometheus pays the conversion only when it scrapes.
"""

from __future__ import annotations

from collections import Counter


class TurnStats:
    """Monotonic counters of one core."""

    __slots__ = (
        "auth_failures",
        "bytes_from_peers",
        "bytes_to_peers",
        "dropped",
        "packets_from_peers",
        "packets_to_peers",
        "peer_denied",
        "refused_allocations",
        "requests",
        "reservations",
    )

    def __init__(self) -> None:
        self.packets_to_peers = 0
        self.bytes_to_peers = 0
        self.packets_from_peers = 0
        self.bytes_from_peers = 0
        #: Failed authentications by reason (``missing``, ``bad_integrity``, ...).
        self.auth_failures: Counter[str] = Counter()
        #: Denied peer attempts by reason (``loopback``, ``own-endpoint``, ...).
        self.peer_denied: Counter[str] = Counter()
        #: Dropped input by reason (``malformed``, ``no_allocation``, ``rate_limited``, ...).
        self.dropped: Counter[str] = Counter()
        #: Requests by method name.
        self.requests: Counter[str] = Counter()
        #: Allocate requests refused for lack of room, by reason: ``user_quota`` and
        #: ``network_quota`` (486), ``total_quota``, ``relay_ports`` and ``draining`` (508).
        #: Quota exhaustion alerts read this.
        self.refused_allocations: Counter[str] = Counter()
        #: EVEN-PORT reservations by outcome (``held``, ``redeemed``, ``expired``, ``refused``).
        self.reservations: Counter[str] = Counter()


__all__ = ["TurnStats"]
