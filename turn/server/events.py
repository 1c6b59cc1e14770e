"""Events the TURN core reports to its driver (logs, metrics, cluster load).

Small frozen slotted dataclasses with one base class, as ARCHITECTURE.md §3 asks; drivers
``match`` on them. Per-packet facts are never events (they are counters in
:class:`~turn.server.stats.TurnStats`): an event per relayed packet would cost more than the
relaying.
"""

from __future__ import annotations

from dataclasses import dataclass

from turn.server.allocation import FiveTuple


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """Base of every TURN core event."""


@dataclass(frozen=True, slots=True)
class AllocationCreated(TurnEvent):
    five_tuple: FiveTuple
    username: str
    lifetime: int
    families: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AllocationDeleted(TurnEvent):
    five_tuple: FiveTuple
    username: str
    reason: str
    """``expired``, ``refresh`` (lifetime 0) or ``connection-closed``."""


@dataclass(frozen=True, slots=True)
class AuthFailed(TurnEvent):
    five_tuple: FiveTuple
    reason: str


@dataclass(frozen=True, slots=True)
class PeerDenied(TurnEvent):
    five_tuple: FiveTuple
    method: str
    reason: str


@dataclass(frozen=True, slots=True)
class CloseConnection(TurnEvent):
    """The driver must close this stream connection (RFC 8656: the allocation is gone)."""

    five_tuple: FiveTuple


__all__ = [
    "AllocationCreated",
    "AllocationDeleted",
    "AuthFailed",
    "CloseConnection",
    "PeerDenied",
    "TurnEvent",
]
