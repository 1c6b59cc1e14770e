"""Rooms across trunks, sans-IO: what each trunk announces, subscribes and forwards.

For every established trunk to router P and every room both serve (the room's router set comes
from etcd, docs/architecture.md §10), this router announces the tracks its own participants
publish there; P subscribes to each announced track once, under an SSRC of its choosing, and
fans it out to all its participants of the room. So a track crosses a trunk at most once.

The media path is the forwarder's: the trunk is one leg (``trunk:<P>``) that publishes P's
tracks and subscribes ours, with the same rewrite, NACK cache and RTCP handling as a client.
Its sink protects with the trunk's SRTP key and queues on the router's media port.

Everything is reconciled in :meth:`TrunkBridge.sync` (cheap; the driver calls it on every
change and on a short tick): desired announcements and subscriptions are computed from the
session core's rooms and compared with what was sent, so no sequence of events can leave a
stale subscription behind.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router.errors import RemoteProtocolError
from router.forwarding.specs import (
    STRIPPED_EXTENSIONS,
    LayerSpec,
    SubscriptionSpec,
    TrackSpec,
    codec_key,
)
from router.rtp import GenericNack, parse_rtcp_compound
from router.sdp import NegotiatedCodec, NegotiatedMedia
from router.sdp.attributes import Direction, ExtMap, RtcpFeedback
from router.session.forwarder_adapter import ForwarderPlane
from router.session.media import PublishedTrack
from router.trunk.messages import (
    ChatRelay,
    KeyframeRequest,
    LinkReport,
    ParticipantAnnounce,
    ParticipantWithdraw,
    Subscribe,
    TrackAnnounce,
    TrackWithdraw,
    TrunkMessage,
    Unsubscribe,
)
from router.trunk.nack import GapDetector
from router.trunk.paths import (
    LinkState,
    Path,
    PathChoice,
    PathChooser,
    PathConfig,
    allowed_relays,
)
from router.trunk.probe import ECHO, PROBE, PROBE_BYTES, LinkProber
from router.trunk.probe import build as build_probe
from router.trunk.probe import parse as parse_probe
from router.trunk.relay import EnvelopeError, unwrap, wrap
from router.trunk.session import Address, TrunkSession

Outbox = list[tuple[bytes, Address]]
NACK_SSRC = 1
"""Sender SSRC of the trunk's own NACKs (RTCP needs one; the peer does not look at it)."""
MEDIA_WINDOW = 1.0
"""Seconds of media (packets sent vs NACKed by the peer) behind the media loss estimate."""
MEDIA_MIN_PACKETS = 30
"""Fewer packets than this in the window say nothing about loss."""
DUPLICATE_WINDOW = 5.0
"""Seconds after a relayed packet during which a replayed SRTP index counts as the second copy
of a two-path flow rather than as a replay."""


class SessionRooms(Protocol):
    """What the bridge needs from :class:`~router.session.core.SessionCore`."""

    rooms: dict[str, object]
    track_epoch: int

    def local_tracks(self, room_name: str) -> list[PublishedTrack]: ...

    def add_remote_track(self, room_name: str, track: PublishedTrack) -> bool: ...

    def remove_remote_track(self, room_name: str, track_id: str) -> bool: ...

    chat_out: list[tuple[str, str, str | None, str]]

    def local_participants(self, room_name: str) -> list[tuple[str, str | None]]: ...

    def deliver_remote_chat(self, room_name: str, participant: str, name: str | None,
                            text: str) -> bool: ...

    def add_remote_participant(self, room_name: str, router: str, participant: str,
                               name: str | None) -> bool: ...

    def remove_remote_participant(self, room_name: str, router: str,
                                  participant: str) -> bool: ...


def announcement(room: str, track: PublishedTrack) -> TrackAnnounce:
    """How a local track is described to another router."""
    media = track.media
    codec = media.codec
    return TrackAnnounce(
        room=room, track=track.track_id, participant=track.participant, kind=media.kind,
        codec=codec.name, clock_rate=codec.clock_rate, channels=codec.channels,
        payload_type=codec.payload_type,
        fmtp=tuple((k, v or "") for k, v in codec.parameters),
        feedback=tuple(fb.text() for fb in codec.feedback),
        extensions=tuple((e.uri, e.id) for e in media.extensions
                         if e.uri not in STRIPPED_EXTENSIONS),
    )  # fmt: skip


def remote_track(ann: TrackAnnounce) -> PublishedTrack:
    """The session core's view of a track published on another router."""
    feedback = tuple(RtcpFeedback(*(fb.split(" ", 1) if " " in fb else (fb, None)))
                     for fb in ann.feedback)
    codec = NegotiatedCodec(ann.payload_type, ann.codec, ann.clock_rate, ann.channels,
                            tuple((k, v or None) for k, v in ann.fmtp), feedback)
    media = NegotiatedMedia(mid="trunk", kind=ann.kind, direction=Direction.RECVONLY,
                            codecs=(codec,),
                            extensions=tuple(ExtMap(i, uri) for uri, i in ann.extensions))
    return PublishedTrack(ann.track, ann.participant, media)


def nacked_count(rtcp: bytes) -> int:
    """Packets a compound RTCP packet NACKs (0 if it cannot be parsed)."""
    try:
        packets = parse_rtcp_compound(rtcp)
    except RemoteProtocolError:
        return 0
    return sum(len(p.lost_seqs()) for p in packets if isinstance(p, GenericNack))


def _key(ann: TrackAnnounce) -> str:
    return codec_key(ann.codec, ann.clock_rate, ann.channels)


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
    sink: _LegSink | None = None
    chooser: PathChooser | None = None
    """How our media reaches the peer (direct or through a relay router)."""
    route: PathChoice | None = None
    paths_used: set[tuple[str, ...]] = field(default_factory=set)
    """Every path our media to the peer took (hops), for the audit."""
    via_relay_at: float | None = None
    """When the peer's media last reached us through a relay (copies are then expected)."""
    duplicates: int = 0
    """Second copies of the peer's packets (two paths), dropped by SRTP index."""
    gaps: GapDetector = field(default_factory=GapDetector)
    nack_ssrcs: set[int] = field(default_factory=set)
    """SSRCs of the peer's video tracks we subscribed: gaps are NACKed at once."""
    nacks_sent: int = 0
    rtp_sent: int = 0
    """Media packets sent to the peer (all paths count once)."""
    nacked: int = 0
    """Of those, how many the peer NACKed: media loss on our flow, seen long before probes."""
    media_history: deque[tuple[float, int, int]] = field(default_factory=deque)
    """``(now, rtp_sent, nacked)`` snapshots of the last :data:`MEDIA_WINDOW` seconds."""


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
    chat_refused: int = 0
    """Chat from a participant the sending router had not announced in the room."""


class _LegSink:
    """Where the forwarder's copies for a trunk go: SRTP-protected onto the media port, along
    the flow's current path (direct, through a relay, or both of two disjoint paths)."""

    __slots__ = ("bridge", "leg", "outbox")

    def __init__(self, bridge: TrunkBridge, leg: TrunkLeg, outbox: Outbox) -> None:
        self.bridge = bridge
        self.leg = leg
        self.outbox = outbox

    def send_rtp(self, packet: bytes) -> bool:
        return self.send_rtp_batch([packet]) == 1

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        leg = self.leg
        route = leg.route
        if route is None or (route.primary.relay is None and route.secondary is None):
            sent = leg.session.protect_rtp_batch(packets, self.outbox, leg.media_address)
            leg.rtp_sent += sent
            return sent
        protected: Outbox = []
        sent = leg.session.protect_rtp_batch(packets, protected, leg.media_address)
        leg.rtp_sent += sent
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
        relay = path.relay
        if relay is None:
            self.outbox.extend(protected)
            return
        hop = self.bridge.legs.get(relay)
        if hop is None:
            return
        src, dst = self.bridge.local_bytes, self.leg.peer_bytes
        self.outbox.extend((wrap(src, dst, data, rtcp), hop.media_address)
                           for data, _ in protected)


class TrunkBridge:
    """Keeps every trunk's announcements and subscriptions equal to the rooms' needs."""

    def __init__(self, rooms: SessionRooms, plane: ForwarderPlane, outbox: Outbox,
                 room_routers: Callable[[str], frozenset[str]],
                 rng: random.Random | None = None, *, local: str = "",
                 path_config: PathConfig | None = None) -> None:
        self.local = local
        self.local_bytes = local.encode("ascii")
        self.path_config = path_config or PathConfig()
        self.rooms = rooms
        self.plane = plane
        self.outbox = outbox
        self.room_routers = room_routers
        """``room -> live routers serving it`` (from etcd)."""
        self.rng = rng or random.Random()
        self.legs: dict[str, TrunkLeg] = {}
        self.by_media_address: dict[Address, TrunkLeg] = {}
        self.stats = BridgeStats()

    # -- legs -----------------------------------------------------------------------------

    def leg_up(self, session: TrunkSession, media_address: Address, now: float) -> TrunkLeg:
        """A trunk came up: its leg joins the forwarder."""
        assert session.peer is not None
        peer = session.peer.node
        old = self.legs.get(peer)
        if old is not None:
            self.leg_down(peer, now)
        leg = TrunkLeg(peer, session, media_address, session.peer.region,
                       session.peer.jurisdiction)
        self.legs[peer] = leg
        self.by_media_address[media_address] = leg
        leg.peer_bytes = peer.encode("ascii")
        leg.sink = _LegSink(self, leg, self.outbox)
        leg.prober = LinkProber(now)
        self.plane.add_leg(leg_id(peer), leg.sink)
        self.sync(now)
        return leg

    def leg_down(self, peer: str, now: float) -> None:
        """The trunk ended: its tracks leave the rooms, its subscriptions end."""
        leg = self.legs.pop(peer, None)
        if leg is None:
            return
        if self.by_media_address.get(leg.media_address) is leg:
            del self.by_media_address[leg.media_address]
        self.plane.remove_leg(leg_id(peer))
        for ann in leg.incoming.values():
            self.rooms.remove_remote_track(ann.room, ann.track)
        for room, participant in leg.people_in:
            self.rooms.remove_remote_participant(room, peer, participant)

    # -- control --------------------------------------------------------------------------

    def on_message(self, peer: str, message: TrunkMessage, now: float) -> None:
        leg = self.legs.get(peer)
        if leg is None:
            return
        if isinstance(message, TrackAnnounce):
            leg.incoming[message.track] = message
        elif isinstance(message, TrackWithdraw):
            ann = leg.incoming.pop(message.track, None)
            if ann is not None and ann.room == message.room:
                self._drop_incoming(leg, ann, now)
        elif isinstance(message, ParticipantAnnounce):
            leg.people_in[(message.room, message.participant)] = message
        elif isinstance(message, ParticipantWithdraw):
            if leg.people_in.pop((message.room, message.participant), None) is not None:
                self.rooms.remove_remote_participant(message.room, peer, message.participant)
        elif isinstance(message, ChatRelay):
            # Only from a participant the peer announced in that room (its name comes from
            # there too), so a router cannot speak for someone it does not serve.
            sender = leg.people_in.get((message.room, message.participant))
            if sender is None:
                self.stats.chat_refused += 1
            else:
                self.rooms.deliver_remote_chat(message.room, message.participant, sender.name,
                                               message.text)
        elif isinstance(message, Subscribe):
            self._peer_subscribes(leg, message, now)
        elif isinstance(message, Unsubscribe):
            if message.track in leg.sending:
                leg.sending.discard(message.track)
                self.plane.unsubscribe_leg(leg_id(peer), message.track)
        elif isinstance(message, KeyframeRequest):
            if message.track in leg.sending:
                self.plane.request_keyframe(message.track, now)
        elif isinstance(message, LinkReport):
            leg.link = message
        self.sync(now)

    def _peer_subscribes(self, leg: TrunkLeg, message: Subscribe, now: float) -> None:
        ann = leg.outgoing.get(message.track)
        if ann is None or ann.room != message.room or message.track in leg.sending:
            self.stats.ignored_subscriptions += 1
            return
        self.plane.subscribe_leg(SubscriptionSpec(
            subscriber=leg_id(leg.peer), track_id=ann.track, ssrc=message.ssrc,
            codecs={_key(ann): ann.payload_type}, extensions=dict(ann.extensions),
        ), now)  # fmt: skip
        leg.sending.add(ann.track)

    # -- reconciliation -------------------------------------------------------------------

    def sync(self, now: float) -> None:
        """Announce, withdraw, subscribe and unsubscribe until each trunk matches the rooms."""
        rooms = self.rooms
        chat, rooms.chat_out[:] = list(rooms.chat_out), []
        for leg in self.legs.values():
            if not leg.session.established:
                continue
            wanted: dict[str, TrackAnnounce] = {}
            people: dict[tuple[str, str], ParticipantAnnounce] = {}
            for room in list(rooms.rooms):
                if leg.peer in self.room_routers(room):
                    for pid, name in rooms.local_participants(room):
                        people[(room, pid)] = ParticipantAnnounce(room, pid, name)
                    for track in rooms.local_tracks(room):
                        wanted[track.track_id] = announcement(room, track)
            self._sync_people(leg, people, now)
            for room, pid, _, text in chat:
                if (room, pid) in leg.people_out:  # announced there, so the peer accepts it
                    leg.session.send(ChatRelay(room, pid, text), now)
            for track_id, ann in list(leg.outgoing.items()):
                if wanted.get(track_id) != ann:
                    del leg.outgoing[track_id]
                    if track_id in leg.sending:
                        leg.sending.discard(track_id)
                        self.plane.unsubscribe_leg(leg_id(leg.peer), track_id)
                    leg.session.send(TrackWithdraw(ann.room, track_id), now)
                    self.stats.withdrawn += 1
            for track_id, ann in wanted.items():
                if track_id not in leg.outgoing:
                    leg.outgoing[track_id] = ann
                    leg.session.send(ann, now)
                    self.stats.announced += 1
            for ann in list(leg.incoming.values()):
                here = ann.room in rooms.rooms and leg.peer in self.room_routers(ann.room)
                if here and ann.track not in leg.subscribed:
                    self._subscribe(leg, ann, now)
                elif not here and ann.track in leg.subscribed:
                    self._drop_incoming(leg, ann, now)
                if here:
                    rooms.add_remote_track(ann.room, remote_track(ann))  # no-op if present

    def _sync_people(self, leg: TrunkLeg, wanted: dict[tuple[str, str], ParticipantAnnounce],
                     now: float) -> None:
        """Presence, reconciled like tracks: announce who is here, withdraw who left, and show
        the peer's participants in the rooms open here (again after a room reopens)."""
        for key, ann in list(leg.people_out.items()):
            if wanted.get(key) != ann:
                del leg.people_out[key]
                leg.session.send(ParticipantWithdraw(*key), now)
        for key, ann in wanted.items():
            if key not in leg.people_out:
                leg.people_out[key] = ann
                leg.session.send(ann, now)
        for (room, pid), ann in leg.people_in.items():
            if room in self.rooms.rooms and leg.peer in self.room_routers(room):
                self.rooms.add_remote_participant(room, leg.peer, pid, ann.name)
            else:
                self.rooms.remove_remote_participant(room, leg.peer, pid)

    def _subscribe(self, leg: TrunkLeg, ann: TrackAnnounce, now: float) -> None:
        used = set(leg.subscribed.values())
        ssrc = self.rng.randrange(1, 2**32)
        while ssrc in used:
            ssrc = self.rng.randrange(1, 2**32)
        spec = TrackSpec(
            track_id=ann.track, publisher=leg_id(leg.peer), kind=ann.kind,
            clock_rate=ann.clock_rate, codecs={ann.payload_type: _key(ann)},
            extensions=dict(ann.extensions), layers=(LayerSpec(ssrc=ssrc),),
            nack="nack" in ann.feedback,
            keyframe_request="pli" if ann.kind == "video" else "none",
        )  # fmt: skip
        self.plane.add_leg_track(spec, now)
        leg.subscribed[ann.track] = ssrc
        if spec.nack and ann.kind == "video":
            leg.nack_ssrcs.add(ssrc)
        leg.session.send(Subscribe(ann.room, ann.track, ssrc), now)
        self.stats.subscribed += 1

    def _drop_incoming(self, leg: TrunkLeg, ann: TrackAnnounce, now: float) -> None:
        self.rooms.remove_remote_track(ann.room, ann.track)
        ssrc = leg.subscribed.pop(ann.track, None)
        if ssrc is not None:
            leg.nack_ssrcs.discard(ssrc)
            leg.gaps.forget(ssrc)
            self.plane.remove_track(ann.track)
            if leg.session.established and ann.track in leg.incoming:
                leg.session.send(Unsubscribe(ann.room, ann.track), now)
            self.stats.unsubscribed += 1

    # -- link probes ----------------------------------------------------------------------

    def probe(self, now: float) -> None:
        """Send each trunk's probe if it is due (about once a second)."""
        for leg in self.legs.values():
            if leg.prober is None or leg.sink is None or not leg.session.established:
                continue
            probe = leg.prober.probe_due(now)
            if probe is not None:
                leg.sink.send_rtcp(probe)

    def _on_probe(self, leg: TrunkLeg, probe: tuple[int, int, float], now: float) -> None:
        kind, number, sent_at = probe
        if kind == PROBE:
            if leg.sink is not None:
                leg.sink.send_rtcp(build_probe(ECHO, number, sent_at))
        elif leg.prober is not None:
            leg.prober.on_echo(number, now)

    # -- media (per packet) ---------------------------------------------------------------

    def receive_media(self, data: bytes, addr: Address, rtcp: bool, now: float) -> bool:
        """A packet from a trunk peer's media address: unprotect, hand to the forwarder.
        Returns False when ``addr`` is no trunk (the caller counts it as unknown)."""
        leg = self.by_media_address.get(addr)
        if leg is None:
            return False
        self._deliver(leg, data, rtcp, now)
        return True

    def receive_envelope(self, data: bytes, addr: Address, now: float) -> bool:
        """A relay envelope: ours to decrypt, or to pass on between two trunk peers."""
        sender = self.by_media_address.get(addr)
        if sender is None:
            return False
        try:
            src, dst, rtcp, packet = unwrap(data)
        except EnvelopeError:
            self.stats.envelopes_refused += 1
            return True
        if dst == self.local:
            origin = self.legs.get(src)
            if origin is None:
                self.stats.envelopes_refused += 1
                return True
            origin.via_relay_at = now
            self._deliver(origin, packet, rtcp, now)
            return True
        target = self.legs.get(dst)
        if sender.peer != src or target is None:
            self.stats.envelopes_refused += 1
            return True
        self.outbox.append((data, target.media_address))
        self.stats.relayed += 1
        return True

    def _deliver(self, leg: TrunkLeg, data: bytes, rtcp: bool, now: float) -> None:
        media = leg.session.media
        replays = media.replay_failures
        plain = leg.session.unprotect(data, rtcp)
        if plain is None:
            if (media.replay_failures > replays and leg.via_relay_at is not None
                    and now - leg.via_relay_at < DUPLICATE_WINDOW):
                leg.duplicates += 1  # the other path's copy arrived first
                self.stats.duplicates += 1
            return
        if rtcp:
            probe = parse_probe(plain) if len(plain) == PROBE_BYTES else None
            if probe is not None:
                self._on_probe(leg, probe, now)
                return
            if len(plain) > 1 and plain[1] == 205:  # RTPFB: count what the peer lost of ours
                leg.nacked += nacked_count(plain)
            self.plane.on_leg_rtcp(leg_id(leg.peer), plain, now)
        else:
            if leg.nack_ssrcs and len(plain) >= 12:
                ssrc = int.from_bytes(plain[8:12], "big")
                if ssrc in leg.nack_ssrcs:
                    lost = leg.gaps.missing(ssrc, int.from_bytes(plain[2:4], "big"))
                    if lost and leg.sink is not None:
                        leg.nacks_sent += 1
                        leg.sink.send_rtcp(GenericNack.from_seqs(NACK_SSRC, ssrc, lost).build())
            self.plane.on_leg_rtp(leg_id(leg.peer), plain, now)

    # -- paths ----------------------------------------------------------------------------

    def own_links(self, now: float) -> dict[tuple[str, str], LinkState]:
        """This router's fresh figures for its own links (fresher than etcd's copy): probes,
        and media loss from the peer's NACKs over the last second when enough was sent (at a
        few hundred packets a second it shows a loss within a tick, probes need seconds)."""
        out = {}
        for leg in self.legs.values():
            figures = leg.prober.figures() if leg.prober is not None else None
            history = leg.media_history
            history.append((now, leg.rtp_sent, leg.nacked))
            while history and history[0][0] < now - MEDIA_WINDOW:
                history.popleft()
            _, sent0, nacked0 = history[0]
            sent, nacked = leg.rtp_sent - sent0, leg.nacked - nacked0
            media_loss = min(1.0, nacked / sent) if sent >= MEDIA_MIN_PACKETS else None
            if figures is None and media_loss is None:
                continue
            loss = max(figures.loss if figures else 0.0, media_loss or 0.0)
            out[(self.local, leg.peer)] = LinkState(
                loss, figures.rtt_ms if figures else 0.0, figures.jitter_ms if figures else 0.0)
        return out

    def strict(self, peer: str) -> bool:
        """Whether the flow to ``peer`` carries an ``eea`` room (EEA-only relays)."""
        for name, room in self.rooms.rooms.items():
            if peer in self.room_routers(name) and getattr(room, "policy", "eea") == "eea":
                return True
        return False

    def update_paths(self, links: Mapping[tuple[str, str], LinkState],
                     jurisdictions: Mapping[str, str], now: float) -> None:
        """Re-choose every flow's path from the link map (called on the driver's tick)."""
        up = [p for p, leg in self.legs.items() if leg.session.established]
        for leg in self.legs.values():
            if leg.chooser is None:
                leg.chooser = PathChooser(self.local, leg.peer, self.path_config)
            relays = allowed_relays(self.local, leg.peer, [p for p in up if p != leg.peer],
                                    jurisdictions, self.strict(leg.peer))
            leg.route = leg.chooser.update(links, relays, now)
            if leg.sending:
                leg.paths_used.add(leg.route.primary.hops)
                if leg.route.secondary is not None:
                    leg.paths_used.add(leg.route.secondary.hops)


__all__ = ["BridgeStats", "TrunkBridge", "TrunkLeg", "announcement", "leg_id", "remote_track"]
