"""One trunk as the bridge keeps it: the leg's state, its counters, and the sink the forwarder
queues the leg's copies into (router/trunk/bridge.py owns and reconciles them).

The sink is where a trunk differs from a client on the media path: it protects with the trunk's
SRTP key and sends along the flow's current path, direct or wrapped in relay envelopes to the
relay router, and keeps what crossed each hop in that hop's
:class:`~router.trunk.cache.HopCache` so the next hop's NACKs can be served.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from router.trunk.cache import HopCache
from router.trunk.messages import LinkReport, ParticipantAnnounce, TrackAnnounce
from router.trunk.nack import GapDetector
from router.trunk.paths import Path, PathChoice, PathChooser
from router.trunk.probe import LinkProber
from router.trunk.relay import header_size, wrap
from router.trunk.session import Address, TrunkSession

Outbox = list[tuple[bytes, Address]]


class BridgeView(Protocol):
    """What a leg's sink reads from the bridge: who we are, and the other legs (relay hops)."""

    local: str
    local_bytes: bytes
    legs: dict[str, TrunkLeg]


def leg_id(peer: str) -> str:
    return f"trunk:{peer}"


@dataclass(slots=True)
class TrunkLeg:
    """One established trunk and what crossed it."""

    peer: str
    session: TrunkSession
    media_address: Address
    region: str
    jurisdiction: str
    outgoing: dict[str, TrackAnnounce] = field(default_factory=dict)
    """Our tracks announced to the peer, by track id."""
    incoming: dict[str, TrackAnnounce] = field(default_factory=dict)
    """The peer's tracks announced to us."""
    people_out: dict[tuple[str, str], ParticipantAnnounce] = field(default_factory=dict)
    """Our participants announced to the peer, by (room, participant)."""
    people_in: dict[tuple[str, str], ParticipantAnnounce] = field(default_factory=dict)
    """The peer's participants announced to us."""
    subscribed: dict[str, int] = field(default_factory=dict)
    """Peer tracks we subscribed to -> the SSRC they arrive with."""
    sending: set[str] = field(default_factory=set)
    """Our tracks the peer subscribed to."""
    link: LinkReport | None = None
    """The peer's last probe figures for its link to us."""
    peer_bytes: bytes = b""
    prober: LinkProber | None = None
    """Our probes of the link to the peer (created when the leg comes up)."""
    sink: LegSink | None = None
    chooser: PathChooser | None = None
    """How our media reaches the peer (direct or through a relay router)."""
    route: PathChoice | None = None
    paths_used: set[tuple[str, ...]] = field(default_factory=set)
    """Every path our media to the peer took (hops), for the audit."""
    via_relay_at: float | None = None
    """When the peer's media last reached us through a relay (copies are then expected)."""
    duplicates: int = 0
    """Second copies of the peer's packets (two paths), dropped by SRTP index."""
    gaps: GapDetector[int] = field(default_factory=GapDetector)
    nack_ssrcs: set[int] = field(default_factory=set)
    """SSRCs of the peer's tracks we subscribed (audio and video): gaps are NACKed at once, to
    the hop each packet came from."""
    nacks_sent: int = 0
    """Hop NACKs we sent to this peer (for our flows from anyone, or as a relay)."""
    cache: HopCache = field(default_factory=HopCache)
    """What we sent on the leg to this peer, for its hop NACKs."""
    wire_sent: int = 0
    """Media packets sent on the leg to this peer (our flows, relayed ones, repairs)."""
    hop_nacked: int = 0
    """Of those, how many the peer NACKed: media loss on the link, seen long before probes."""
    retransmits: int = 0
    """Packets re-sent to this peer from :attr:`cache` for its NACKs."""
    cache_misses: int = 0
    """NACKed packets the cache did not hold (lost before us, or too old)."""
    retry_after: float = 0.05
    """Seconds before a packet NACKed to this peer is asked for again (1.5 probe RTTs)."""
    media_history: deque[tuple[float, int, int]] = field(default_factory=deque)
    """``(now, wire_sent, hop_nacked)`` snapshots of the last
    :data:`router.trunk.bridge.MEDIA_WINDOW` seconds."""


@dataclass(slots=True)
class BridgeStats:
    announced: int = 0
    withdrawn: int = 0
    subscribed: int = 0
    unsubscribed: int = 0
    ignored_subscriptions: int = 0
    """Subscriptions to tracks we no longer announce (a race with a withdraw)."""
    relayed: int = 0
    """Envelopes this router relayed between two other routers."""
    envelopes_refused: int = 0
    """Envelopes malformed, from a non-peer, or for a router we have no trunk with."""
    duplicates: int = 0
    hop_nacks_refused: int = 0
    """Hop NACKs that did not parse (authenticated, so a bug rather than an attack)."""
    chat_refused: int = 0
    """Chat from a participant the sending router had not announced in the room."""


class LegSink:
    """Where the forwarder's copies for a trunk go: SRTP-protected onto the media port, along
    the flow's current path (direct, through a relay, or both of two disjoint paths)."""

    __slots__ = ("bridge", "leg", "outbox")

    def __init__(self, bridge: BridgeView, leg: TrunkLeg, outbox: Outbox) -> None:
        self.bridge = bridge
        self.leg = leg
        self.outbox = outbox

    def send_rtp(self, packet: bytes) -> bool:
        return self.send_rtp_batch([packet]) == 1

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        leg = self.leg
        route = leg.route
        if route is None or (route.primary.relay is None and route.secondary is None):
            out = self.outbox
            start = len(out)
            sent = leg.session.protect_rtp_batch(packets, out, leg.media_address)
            leg.cache.put(self.bridge.local, leg.peer, [data for data, _ in out[start:]], 0)
            leg.wire_sent += sent
            return sent
        protected: Outbox = []
        sent = leg.session.protect_rtp_batch(packets, protected, leg.media_address)
        self._along(route.primary, protected, False)
        if route.secondary is not None:
            self._along(route.secondary, protected, False)
        return sent

    def send_rtcp(self, packet: bytes) -> bool:
        leg = self.leg
        protected = leg.session.protect_rtcp(packet)
        if protected is None:
            return False
        if leg.route is None or leg.route.primary.relay is None:
            self.outbox.append((protected, leg.media_address))
        else:
            self._along(leg.route.primary, [(protected, leg.media_address)], True)
        return True

    def _along(self, path: Path, protected: Outbox, rtcp: bool) -> None:
        leg = self.leg
        relay = path.relay
        if relay is None:
            self.outbox.extend(protected)
            if not rtcp:
                leg.cache.put(self.bridge.local, leg.peer, [data for data, _ in protected], 0)
                leg.wire_sent += len(protected)
            return
        hop = self.bridge.legs.get(relay)
        if hop is None:
            return
        src, dst = self.bridge.local_bytes, leg.peer_bytes
        wires = [wrap(src, dst, data, rtcp) for data, _ in protected]
        address = hop.media_address
        self.outbox.extend((wire, address) for wire in wires)
        if not rtcp:
            hop.cache.put(self.bridge.local, leg.peer, wires, header_size(src, dst))
            hop.wire_sent += len(wires)


__all__ = ["BridgeStats", "BridgeView", "LegSink", "Outbox", "TrunkLeg", "leg_id"]
