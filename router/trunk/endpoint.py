"""All trunks of one router on its QUIC port, sans-IO: sessions by peer address, accepting
clients' first datagrams, dialling, and one timer for the lot (a ``DatagramCore`` for
:class:`~router.transport.udp_driver.UdpDriver`).

Only one side of a pair dials (the router whose node id sorts first), so two routers never
hold two connections between the same two QUIC addresses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from router.trunk.messages import Hello
from router.trunk.quic import TrunkIdentity, initial_destination_cid, new_connection
from router.trunk.session import (
    Address,
    TrunkClosed,
    TrunkConfig,
    TrunkEvent,
    TrunkRefused,
    TrunkSession,
)


@dataclass(slots=True)
class EndpointStats:
    refused: dict[str, int]
    """Refused connections by reason (``not_cluster_ca``, ``wrong_node``, ``unregistered``,
    ``no_certificate``, ``handshake_failed``...)."""
    closed: dict[str, int]
    """Trunks that ended, by reason class (``protocol``, ``peer``, ``local``, ``idle``)."""
    unknown_datagrams: int = 0
    """Datagrams from an address with no session that could not open one."""


def dials(local: str, peer: str) -> bool:
    """Whether ``local`` is the side that opens the trunk to ``peer``."""
    return local < peer


class TrunkEndpoint:
    """Every trunk session of this router, keyed by the peer's QUIC address."""

    def __init__(self, identity: TrunkIdentity, local: Hello,
                 is_registered: Callable[[str], bool], config: TrunkConfig | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.identity = identity
        self.local = local
        self.is_registered = is_registered
        self.config = config or TrunkConfig()
        self.random_bytes = random_bytes
        self.sessions: dict[Address, TrunkSession] = {}
        self.stats = EndpointStats({}, {})
        self._events: list[tuple[TrunkSession, TrunkEvent]] = []

    def connect(self, peer: str, addr: Address, now: float) -> TrunkSession:
        """Dial ``peer`` at its QUIC address (replacing a closed session there)."""
        current = self.sessions.get(addr)
        if current is not None and not current.closed:
            return current
        conn = new_connection(self.identity, is_client=True, server_name=peer,
                              idle_timeout=self.config.idle_timeout)
        session = TrunkSession(conn, local=self.local, ca=self.identity.ca,
                               is_registered=self.is_registered, peer_address=addr, now=now,
                               expected_peer=peer, config=self.config,
                               random_bytes=self.random_bytes)
        self.sessions[addr] = session
        return session

    def session_for(self, peer: str) -> TrunkSession | None:
        for session in self.sessions.values():
            if session.peer_node == peer and not session.closed:
                return session
        return None

    # -- DatagramCore ---------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        session = self.sessions.get(addr)
        if session is None or session.closed:
            cid = initial_destination_cid(data)
            if cid is None:
                self.stats.unknown_datagrams += 1
                return
            conn = new_connection(self.identity, is_client=False, server_name="",
                                  idle_timeout=self.config.idle_timeout, original_cid=cid)
            session = TrunkSession(conn, local=self.local, ca=self.identity.ca,
                                   is_registered=self.is_registered, peer_address=addr,
                                   now=now, config=self.config, random_bytes=self.random_bytes)
            self.sessions[addr] = session
        session.receive_datagram(data, addr, now)
        self._collect(session)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out: list[tuple[bytes, Address]] = []
        for session in self.sessions.values():
            out += session.datagrams_to_send(now)
        for addr in [a for a, s in self.sessions.items() if s.closed and s.get_timer() is None]:
            del self.sessions[addr]
        return out

    def get_timer(self) -> float | None:
        deadlines = [d for s in self.sessions.values() if (d := s.get_timer()) is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for session in list(self.sessions.values()):
            deadline = session.get_timer()
            if deadline is not None and deadline <= now:
                session.handle_timer(now)
                self._collect(session)

    def collect_all(self) -> None:
        """Gather events of sessions touched through their API (sends, closes)."""
        for session in self.sessions.values():
            self._collect(session)

    def events(self) -> list[tuple[TrunkSession, TrunkEvent]]:
        out, self._events = self._events, []
        return out

    def _collect(self, session: TrunkSession) -> None:
        while (event := session.next_event()) is not None:
            if isinstance(event, TrunkRefused):
                self.stats.refused[event.reason] = self.stats.refused.get(event.reason, 0) + 1
            elif isinstance(event, TrunkClosed):
                kind = event.reason.split(":", 1)[0].split(" ", 1)[0]
                self.stats.closed[kind] = self.stats.closed.get(kind, 0) + 1
            self._events.append((session, event))


__all__ = ["EndpointStats", "TrunkEndpoint", "dials"]
