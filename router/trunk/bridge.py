"""Rooms across trunks, sans-IO: what each trunk announces, subscribes and forwards.

For every established trunk to router P and every room both serve (the room's router set comes
from etcd, docs/architecture.md §10), this router announces the tracks its own participants
publish there; P subscribes to each announced track once, under an SSRC of its choosing, and
fans it out to all its participants of the room. So a track crosses a trunk at most once.

The media path is the forwarder's: the trunk is one leg (``trunk:<P>``) that publishes P's
tracks and subscribes ours, with the same rewrite, NACK cache and RTCP handling as a client.
Its sink protects with the trunk's SRTP key and queues on the router's media port. What crosses
each leg (ours, or envelopes this router relays) is also kept in that leg's
:class:`~router.trunk.cache.HopCache`, from which the next hop's NACKs are served.

Everything is reconciled in :meth:`TrunkBridge.sync` (cheap; the driver calls it on every
change and on a short tick): desired announcements and subscriptions are computed from the
session core's rooms and compared with what was sent, so no sequence of events can leave a
stale subscription behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Protocol

from router.forwarding.specs import (
    STRIPPED_EXTENSIONS,
    LayerSpec,
    SubscriptionSpec,
    TrackSpec,
    codec_key,
)
from router.sdp import NegotiatedCodec, NegotiatedMedia
from router.sdp.attributes import Direction, ExtMap, RtcpFeedback
from router.session.forwarder_adapter import ForwarderPlane
from router.session.media import PublishedTrack
from router.trunk.cache import Flow
from router.trunk.legs import BridgeStats, LegSink, Outbox, TrunkLeg, leg_id
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
from router.trunk.nack import MAX_GAP, GapDetector, HopNack, HopNackError, parse_hop_nack
from router.trunk.paths import (
    LinkState,
    PathChooser,
    PathConfig,
    allowed_relays,
)
from router.trunk.probe import ECHO, PROBE, PROBE_BYTES, LinkProber
from router.trunk.probe import build as build_probe
from router.trunk.probe import parse as parse_probe
from router.trunk.relay import EnvelopeError, header_size, unwrap, wrap
from router.trunk.session import Address, TrunkSession

MEDIA_WINDOW = 1.0
"""Seconds of media (packets sent vs NACKed by the peer) behind the media loss estimate."""
MEDIA_MIN_PACKETS = 30
"""Fewer packets than this in the window say nothing about loss."""
RETRY_MIN = 0.02
"""Seconds between two NACKs of one packet at least, however short the trunk's RTT."""
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


def _key(ann: TrackAnnounce) -> str:
    return codec_key(ann.codec, ann.clock_rate, ann.channels)


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
        self.relay_gaps: GapDetector[Flow] = GapDetector()
        """Gaps in the flows this router relays, by ``(origin, destination, SSRC)``."""

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
        leg.sink = LegSink(self, leg, self.outbox)
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
        leg.nack_ssrcs.add(ssrc)  # both ends are ours: every trunk flow is repaired per hop
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
                figures = leg.prober.figures()
                if figures is not None:
                    leg.retry_after = max(RETRY_MIN, 1.5 * figures.rtt_ms / 1000)

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
        self._deliver(leg, data, rtcp, now, leg)
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
            self._deliver(origin, packet, rtcp, now, sender)
            return True
        target = self.legs.get(dst)
        if sender.peer != src or target is None:
            self.stats.envelopes_refused += 1
            return True
        self.outbox.append((data, target.media_address))
        self.stats.relayed += 1
        if not rtcp and len(packet) >= 12:
            # The RTP header inside is clear (only authenticated): enough to keep the packet
            # for dst's NACKs and to NACK our own leg from src. A forged header costs at most a
            # useless NACK or a cache slot that dst would refuse at authentication.
            target.cache.put(src, dst, [data], len(data) - len(packet))
            target.wire_sent += 1
            ssrc = int.from_bytes(packet[8:12], "big")
            lost = self.relay_gaps.missing((src, dst, ssrc), packet[2] << 8 | packet[3], now,
                                           sender.retry_after)
            if lost:
                self._send_hop_nack(sender, HopNack(src, dst, ssrc, tuple(lost)))
        return True

    def _deliver(self, leg: TrunkLeg, data: bytes, rtcp: bool, now: float,
                 via: TrunkLeg) -> None:
        """A packet of ``leg``'s peer that reached us from ``via`` (the peer, or a relay)."""
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
            if len(plain) >= 16 and plain[1] == 204 and plain[8:12] == b"RGNK":
                self._on_hop_nack(leg, plain)
                return
            self.plane.on_leg_rtcp(leg_id(leg.peer), plain, now)
        else:
            if leg.nack_ssrcs and len(plain) >= 12:
                ssrc = int.from_bytes(plain[8:12], "big")
                if ssrc in leg.nack_ssrcs:
                    lost = leg.gaps.missing(ssrc, plain[2] << 8 | plain[3], now,
                                            via.retry_after)
                    if lost:
                        self._send_hop_nack(via, HopNack(leg.peer, self.local, ssrc,
                                                         tuple(lost)))
            self.plane.on_leg_rtp(leg_id(leg.peer), plain, now)

    # -- hop-by-hop NACK ------------------------------------------------------------------

    def _send_hop_nack(self, hop: TrunkLeg, nack: HopNack) -> None:
        """Ask the previous hop, directly on our leg to it (never along a path)."""
        protected = hop.session.protect_rtcp(nack.build())
        if protected is not None:
            self.outbox.append((protected, hop.media_address))
            hop.nacks_sent += 1

    def _on_hop_nack(self, leg: TrunkLeg, plain: bytes) -> None:
        """``leg``'s peer lost packets we sent it: re-send them from the leg's cache.

        A packet the cache lacks took another path (the flow's path changed around it): the
        source finds it in the cache of the leg it went out on and sends it along this one; a
        relay that never carried it asks the source to send it this way."""
        try:
            nack = parse_hop_nack(plain)
        except HopNackError:
            self.stats.hop_nacks_refused += 1
            return
        seqs = nack.seqs[:MAX_GAP]
        leg.hop_nacked += len(seqs)
        cache, address = leg.cache, leg.media_address
        missed: list[int] = []
        for seq in seqs:
            wire = cache.get(nack.origin, nack.destination, nack.ssrc, seq)
            if wire is None and nack.origin == self.local:
                wire = self._other_path_copy(leg, nack.destination, nack.ssrc, seq)
            if wire is None:
                leg.cache_misses += 1
                missed.append(seq)
            else:
                self.outbox.append((wire, address))
                leg.retransmits += 1
        origin = self.legs.get(nack.origin)
        if missed and origin is not None and origin is not leg:
            self._send_hop_nack(origin, HopNack(nack.origin, nack.destination, nack.ssrc,
                                                tuple(missed)))

    def _other_path_copy(self, leg: TrunkLeg, destination: str, ssrc: int,
                         seq: int) -> bytes | None:
        """Our packet ``seq`` of the flow to ``destination`` as sent on another leg, re-framed
        for ``leg`` (plain trunk SRTP to the destination, an envelope to a relay)."""
        dst = destination.encode("ascii")
        envelope = header_size(self.local_bytes, dst)
        for other in self.legs.values():
            if other is leg:
                continue
            wire = other.cache.get(self.local, destination, ssrc, seq)
            if wire is None:
                continue
            packet = wire if other.peer == destination else wire[envelope:]
            return packet if leg.peer == destination else wrap(self.local_bytes, dst, packet,
                                                               False)
        return None

    def expire_caches(self) -> None:
        """Forget flows idle since the previous call (the driver calls this every few
        seconds): cached packets, and the relay's gap state of flows it no longer carries."""
        for leg in self.legs.values():
            leg.cache.expire()
        for stream in self.relay_gaps.streams():
            target = self.legs.get(stream[1])
            if target is None or not target.cache.has_flow(stream):
                self.relay_gaps.forget(stream)

    # -- paths ----------------------------------------------------------------------------

    def own_links(self, now: float) -> dict[tuple[str, str], LinkState]:
        """This router's fresh figures for its own links (fresher than etcd's copy): probes,
        and media loss from the peer's NACKs over the last second when enough was sent (at a
        few hundred packets a second it shows a loss within a tick, probes need seconds)."""
        out = {}
        for leg in self.legs.values():
            figures = leg.prober.figures() if leg.prober is not None else None
            history = leg.media_history
            history.append((now, leg.wire_sent, leg.hop_nacked))
            while history and history[0][0] < now - MEDIA_WINDOW:
                history.popleft()
            _, sent0, nacked0 = history[0]
            sent, nacked = leg.wire_sent - sent0, leg.hop_nacked - nacked0
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
