"""What the request handler may use of the core: the core's output types and its state.

It keeps the import graph of ``turn.server`` acyclic: :mod:`turn.server.core` builds a
:class:`~turn.server.requests.RequestHandler`, and the handler needs the core's state. The
handler types its core as :class:`CoreState`, so it never imports the module that imports it.
(:mod:`turn.server.driver_host` does the same for the server and its drivers.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from turn.server.allocation import Addr, Allocation, FiveTuple, Relay, RelayAllocator
from turn.server.amplification import AmplificationBudget
from turn.server.auth import NonceIssuer, RestAuthenticator
from turn.server.config import TurnConfig
from turn.server.events import TurnEvent
from turn.server.peer_policy import PeerPolicy
from turn.server.quotas import FailureLimiter
from turn.server.reservations import Reservations
from turn.server.stats import TurnStats


@dataclass(frozen=True, slots=True)
class ToClient:
    """Bytes for a client, on the transport its five-tuple names."""

    five_tuple: FiveTuple
    data: bytes


@dataclass(frozen=True, slots=True)
class ToPeer:
    """Bytes for a peer, sent from a relay."""

    relay: Relay
    peer: Addr
    data: bytes


Outgoing = ToClient | ToPeer


class CoreState(Protocol):
    """The core as the request handler sees it (implemented by ``TurnServerCore``)."""

    config: TurnConfig
    relays: RelayAllocator
    policy: PeerPolicy
    wall_offset: float
    auth: RestAuthenticator
    nonces: NonceIssuer
    failures: FailureLimiter
    amplification: AmplificationBudget
    reservations: Reservations
    stats: TurnStats
    draining: bool
    allocations: dict[FiveTuple, Allocation]
    per_user: dict[str, int]
    per_network: dict[int, int]

    def send(self, item: Outgoing) -> None: ...
    def emit(self, event: TurnEvent) -> None: ...
    def add_allocation(self, alloc: Allocation) -> None: ...
    def set_allocation_expiry(self, alloc: Allocation, expires: float) -> None: ...
    def delete_allocation(self, alloc: Allocation, reason: str) -> None: ...
    def install_permission(self, alloc: Allocation, ip: str, now: float) -> None: ...
    def bind_channel(self, alloc: Allocation, number: int, peer: Addr, relay: Relay,
                     now: float) -> None: ...
    def reserve(self, relay: Relay, now: float) -> bytes: ...


__all__ = ["CoreState", "Outgoing", "ToClient", "ToPeer"]
