"""State of one TURN allocation: relays, permissions, channel bindings, counters.

Kept as plain slotted classes with dicts because the relay hot path reads them per packet:
``allocation.channels[number]`` on the way to a peer, ``peer_ip in allocation.permissions`` and
``allocation.channel_by_peer.get(addr)`` on the way back. Expiry is not checked on that path:
the core's single timer removes expired entries, so presence in the dict means valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from control.tokenbucket import TokenBucket

Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class FiveTuple:
    """Who an allocation belongs to (RFC 8656 §2): client transport, client and server address.

    For TCP and TLS the pair of addresses names one connection.
    """

    protocol: str
    """``udp``, ``tcp`` or ``tls``."""
    client: Addr
    server: Addr

    @property
    def is_stream(self) -> bool:
        return self.protocol != "udp"


class Relay(Protocol):
    """A relayed transport address, owned by the driver (a bound UDP socket, in practice)."""

    @property
    def address(self) -> Addr:
        """The (ip, port) the relay socket is bound to."""
        ...

    @property
    def advertised(self) -> Addr:
        """The (ip, port) put in XOR-RELAYED-ADDRESS (differs behind a 1:1 NAT)."""
        ...

    @property
    def family(self) -> int:
        """4 or 6."""
        ...

    allocation: Allocation | None


class RelayAllocator(Protocol):
    """Hands out relays; the driver implements it by binding sockets in the port range."""

    def families(self) -> frozenset[int]:
        """Address families relays can be opened in (4, and 6 where the host has it)."""
        ...

    def open(self, family: int) -> Relay | None:
        """A fresh relay in ``family``, or None when the port range is exhausted."""
        ...

    def close(self, relay: Relay) -> None:
        """Release a relay (its port becomes free again)."""
        ...

    def open_even(self, family: int, reserve_next: bool) -> tuple[Relay, Relay | None] | None:
        """A relay on an even port (RFC 8656 EVEN-PORT); with ``reserve_next`` also a relay on
        the port just above it, held for a later reservation. None when no such port (pair) is
        free."""
        ...


@dataclass(slots=True)
class ChannelBinding:
    """A channel number bound to a peer transport address, and its expiry."""

    number: int
    peer: Addr
    relay: Relay
    expires: float


class Allocation:
    """One allocation. Mutated only by the core."""

    __slots__ = (
        "allocate_response",
        "allocate_tid",
        "bytes_from_peers",
        "bytes_to_peers",
        "channel_by_peer",
        "channels",
        "expires",
        "five_tuple",
        "in_bucket",
        "key",
        "out_bucket",
        "packets_from_peers",
        "packets_to_peers",
        "permissions",
        "relays",
        "username",
    )

    def __init__(
        self,
        five_tuple: FiveTuple,
        username: str,
        key: bytes,
        relays: dict[int, Relay],
        expires: float,
        bandwidth: float = 0.0,
        now: float = 0.0,
    ) -> None:
        self.five_tuple = five_tuple
        self.username = username
        self.key = key
        self.relays = relays
        self.expires = expires
        #: Permitted peer IPs (text, as sockets report them) and their expiry.
        self.permissions: dict[str, float] = {}
        self.channels: dict[int, ChannelBinding] = {}
        self.channel_by_peer: dict[Addr, int] = {}
        self.allocate_tid = b""
        self.allocate_response = b""
        self.packets_to_peers = 0
        self.bytes_to_peers = 0
        self.packets_from_peers = 0
        self.bytes_from_peers = 0
        self.out_bucket = TokenBucket(bandwidth, bandwidth, now) if bandwidth > 0 else None
        self.in_bucket = TokenBucket(bandwidth, bandwidth, now) if bandwidth > 0 else None

    def relay_for(self, ip_version: int) -> Relay | None:
        return self.relays.get(ip_version)


__all__ = ["Addr", "Allocation", "ChannelBinding", "FiveTuple", "Relay", "RelayAllocator"]
