"""Many :class:`PeerTransport` on one UDP port: the router's single-port demultiplexer.

Routing (issue 6): STUN goes by the local ufrag in USERNAME (read with a header peek, before any
full parse), because a new participant's first check comes from an address nobody knows yet;
DTLS, RTP and RTCP go by source address, which exists in the table only after that peer's ICE
nominated it. Unknown ufrags and unknown addresses are dropped and counted by kind and never
answered.

Sharing: every peer created by :meth:`TransportMux.create_peer` writes into the mux's single
output list and event deque, so draining the port is one list swap, whatever the number of peers.
Timers live in a heap of ``(deadline, sequence, peer)`` with lazy invalidation: a peer is pushed
again whenever its deadline changes and stale entries are skipped, so :meth:`get_timer` is O(1)
and :meth:`handle_timer` touches only peers that are due.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from router.transport.base import BaseTransport, RtpHandler
from router.transport.config import TransportConfig
from router.transport.demux import PacketKind, classify
from router.transport.events import Address, TransportEvent
from router.transport.peer import PeerTransport
from turn.stun import AttrType, StunDecodeError, peek_attribute

_STUN: Final = int(PacketKind.STUN)
_DTLS: Final = int(PacketKind.DTLS)
_RTP: Final = int(PacketKind.RTP)
_RTCP: Final = int(PacketKind.RTCP)
_USERNAME: Final = int(AttrType.USERNAME)


@dataclass(slots=True)
class MuxStats:
    """Datagrams the port dropped before reaching any peer, by reason."""

    #: STUN without USERNAME, or not parseable far enough to find it.
    stun_malformed: int = 0
    #: STUN whose USERNAME names no local ufrag we know.
    stun_unknown_username: int = 0
    #: DTLS from an address no peer validated (includes unvalidated ClientHellos).
    dtls_unknown_address: int = 0
    #: RTP from an address no peer validated.
    rtp_unknown_address: int = 0
    #: RTCP from an address no peer validated.
    rtcp_unknown_address: int = 0
    #: Not STUN, DTLS, RTP or RTCP.
    unknown_kind: int = 0


class TransportMux:
    """Owns the peers of one UDP port."""

    def __init__(self, config: TransportConfig | None = None) -> None:
        self.config = config or TransportConfig()
        self.stats = MuxStats()
        self._outbox: list[tuple[bytes, Address]] = []
        self._sink: deque[tuple[BaseTransport, TransportEvent]] = deque()
        self._by_ufrag: dict[bytes, PeerTransport] = {}
        self._by_addr: dict[Address, PeerTransport] = {}
        self._addresses: dict[PeerTransport, set[Address]] = {}
        self._scheduled: dict[PeerTransport, float | None] = {}
        self._heap: list[tuple[float, int, PeerTransport]] = []
        self._seq = itertools.count()
        #: ``(data, addr, is_rtcp, now) -> handled``: SRTP/SRTCP from an address no client
        #: validated is offered here first (trunks to other routers, router.trunk.bridge).
        self.trunk_media: Callable[[bytes, Address, bool, float], bool] | None = None
        #: ``(data, addr, now) -> handled``: datagrams outside the RFC 7983 ranges (trunk relay
        #: envelopes, router.trunk.relay) are offered here before being counted as unknown.
        self.trunk_envelope: Callable[[bytes, Address, float], bool] | None = None
        self._rtp_handler: RtpHandler | None = None

    # -- peers --------------------------------------------------------------------------------

    def create_peer(self, *, now: float, **kwargs: Any) -> PeerTransport:
        """A new :class:`PeerTransport` on this port (keyword arguments as for the class).

        Its events come out of :meth:`next_event` and its datagrams out of
        :meth:`datagrams_to_send`; call :meth:`close_peer` rather than ``peer.close``.
        """
        kwargs.setdefault("config", self.config)
        peer = PeerTransport(now=now, outbox=self._outbox, sink=self._sink, **kwargs)
        peer.rtp_handler = self._rtp_handler
        key = peer.local_ufrag.encode()
        if key in self._by_ufrag:
            raise ValueError("local ICE ufrag already in use on this port")
        self._by_ufrag[key] = peer
        self._addresses[peer] = set()
        self._scheduled[peer] = None
        self._reschedule(peer)
        return peer

    def set_rtp_handler(self, handler: RtpHandler | None) -> None:
        """Decrypted RTP of every peer (present and future) goes to ``handler(peer, packet,
        now)`` at once instead of out of :meth:`next_event` (see ``BaseTransport.rtp_handler``)."""
        self._rtp_handler = handler
        for peer in self._by_ufrag.values():
            peer.rtp_handler = handler

    def close_peer(self, peer: PeerTransport, reason: str = "closed locally") -> None:
        """Close ``peer`` (close_notify goes out with the next drain) and forget it."""
        peer.close(reason)
        self._forget(peer)

    @property
    def peer_count(self) -> int:
        """Peers currently registered (closed ones are removed at once)."""
        return len(self._by_ufrag)

    def peer_for_address(self, addr: Address) -> PeerTransport | None:
        """The peer that validated ``addr``, if any."""
        return self._by_addr.get(addr)

    # -- house API ----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> PeerTransport | None:
        """Route one datagram; returns the peer that took it (or ``None`` if dropped)."""
        kind = classify(data)
        if kind in (_RTP, _RTCP):
            peer = self._by_addr.get(addr)
            if peer is None:
                trunk = self.trunk_media
                if trunk is not None and trunk(data, addr, kind == _RTCP, now):
                    return None
                if kind == _RTP:
                    self.stats.rtp_unknown_address += 1
                else:
                    self.stats.rtcp_unknown_address += 1
                return None
            peer.receive_media(data, addr, kind == _RTCP, now)
            return peer
        if kind == _STUN:
            peer = self._peer_for_stun(data)
            if peer is None:
                return None
        elif kind == _DTLS:
            peer = self._by_addr.get(addr)
            if peer is None:
                self.stats.dtls_unknown_address += 1
                return None
        else:
            envelope = self.trunk_envelope
            if envelope is None or not envelope(data, addr, now):
                self.stats.unknown_kind += 1
            return None
        peer.receive_datagram(data, addr, now)
        self._after_control(peer)
        return peer

    @property
    def media_table(self) -> dict[Address, PeerTransport]:
        """Validated address -> peer (the one dict object this mux keeps for its lifetime).

        The compiled ingest loop (router.transport.fastpath ``ingest``) looks media up here and
        hands each peer's SRTP straight to its ``rtp_handler``, calling
        :meth:`receive_datagram` for anything else: the same result as calling
        :meth:`receive_datagram` for every datagram.
        """
        return self._by_addr

    @property
    def outbox(self) -> list[tuple[bytes, Address]]:
        """The one list every peer appends ``(datagram, address)`` to.

        A driver may send from it in place and delete what the kernel took (it stays the same
        list object), instead of copying it out through :meth:`datagrams_to_send` every batch.
        """
        return self._outbox

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every queued datagram of every peer, as ``(datagram, address)``."""
        out = self._outbox[:]
        self._outbox.clear()
        return out

    def next_event(self) -> tuple[PeerTransport, TransportEvent] | None:
        """The next ``(peer, event)`` of any peer, or ``None``."""
        if not self._sink:
            return None
        peer, event = self._sink.popleft()
        assert isinstance(peer, PeerTransport)
        return peer, event

    def get_timer(self) -> float | None:
        """The earliest deadline of any peer."""
        heap = self._heap
        while heap:
            deadline, _, peer = heap[0]
            if self._scheduled.get(peer) == deadline:
                return deadline
            heapq.heappop(heap)  # stale entry
        return None

    def handle_timer(self, now: float) -> None:
        """Run every peer whose deadline passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, peer = heapq.heappop(heap)
            if self._scheduled.get(peer) != deadline:
                continue
            self._scheduled[peer] = None
            peer.handle_timer(now)
            self._after_control(peer)

    # -- internals ----------------------------------------------------------------------------

    def _peer_for_stun(self, data: bytes) -> PeerTransport | None:
        try:
            username = peek_attribute(data, _USERNAME)
        except StunDecodeError:
            self.stats.stun_malformed += 1
            return None
        if username is None:
            self.stats.stun_malformed += 1
            return None
        peer = self._by_ufrag.get(username.partition(b":")[0])
        if peer is None:
            self.stats.stun_unknown_username += 1
        return peer

    def _after_control(self, peer: PeerTransport) -> None:
        if peer.closed:
            self._forget(peer)
            return
        self._sync_addresses(peer)
        self._reschedule(peer)

    def _sync_addresses(self, peer: PeerTransport) -> None:
        current = peer.ice.nominated
        known = self._addresses[peer]
        for addr in current:
            if addr not in known or self._by_addr.get(addr) is not peer:
                known.add(addr)
                self._by_addr[addr] = peer  # the newest authenticated nomination wins
        for addr in [a for a in known if a not in current]:
            known.discard(addr)
            if self._by_addr.get(addr) is peer:
                del self._by_addr[addr]

    def _reschedule(self, peer: PeerTransport) -> None:
        deadline = peer.get_timer()
        if deadline != self._scheduled.get(peer):
            self._scheduled[peer] = deadline
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, next(self._seq), peer))

    def _forget(self, peer: PeerTransport) -> None:
        if self._by_ufrag.get(peer.local_ufrag.encode()) is peer:
            del self._by_ufrag[peer.local_ufrag.encode()]
        for addr in self._addresses.pop(peer, ()):
            if self._by_addr.get(addr) is peer:
                del self._by_addr[addr]
        self._scheduled.pop(peer, None)
        if len(self._heap) > 2 * len(self._scheduled) + 64:
            # Drop stale entries so closed peers are not kept alive until their old deadline.
            self._heap = [e for e in self._heap if self._scheduled.get(e[2]) == e[0]]
            heapq.heapify(self._heap)


__all__ = ["MuxStats", "TransportMux"]
