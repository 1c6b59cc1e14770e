"""SDP negotiation per participant, wired to the transport mux and the media plane.

Two connections per SFU participant, as LiveKit does: the *publisher* connection (the client
offers its tracks, the router answers) and the *subscriber* connection (the router offers every
other participant's tracks, the client answers; renegotiated as tracks come and go). Separate
connections keep each offer/answer one-directional, so neither side ever has to handle glare.

This module turns those exchanges into transport peers (``TransportMux.create_peer``) and
forwarder calls, and keeps the peer -> participant index the per-packet path reads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from router.sdp import (
    Candidate,
    Direction,
    LocalTransportParams,
    NegotiatedSession,
    OutgoingTrack,
    SdpError,
    SdpUsageError,
    answer_publisher_offer,
    apply_subscriber_answer,
    build_subscriber_offer,
    subscriber_codec,
)
from router.sdp import Fingerprint as SdpFingerprint
from router.session.media import MediaPlane, PublishedTrack
from router.session.room import Participant, SubscriberState
from router.transport import DtlsCertificate, DtlsRole, PeerTransport, TransportMux
from router.transport.ice_lite import generate_password, generate_ufrag


class NegotiationError(Exception):
    """The client's SDP cannot be used; the text goes back as a ``bad_sdp`` error."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    answer: str
    added: list[PublishedTrack]
    removed: list[PublishedTrack]
    rejected: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Negotiator:
    """Creates and closes a participant's transports; owns the peer -> owner index."""

    mux: TransportMux
    media: MediaPlane
    certificate: DtlsCertificate
    candidates: tuple[Candidate, ...]
    rng: random.Random
    max_tracks: int = 8
    #: Called with each peer as it is closed (the core keeps its SRTP counters).
    on_peer_closed: Callable[[PeerTransport], None] | None = None
    #: Stopped sections a subscriber answered ``inactive`` on a live port instead of port 0
    #: (aiortc does); accepted, counted here, exported as a metric.
    inactive_stopped_answers: int = 0
    #: peer -> (participant, True for the publisher connection).
    owners: dict[PeerTransport, tuple[Participant, bool]] = field(default_factory=dict)

    def local_params(self) -> LocalTransportParams:
        """Fresh ICE credentials with the process certificate and the port's candidates."""
        fp = self.certificate.fingerprint
        return LocalTransportParams(
            ice_ufrag=generate_ufrag(),
            ice_pwd=generate_password(),
            fingerprint=SdpFingerprint(fp.algorithm, fp.digest),
            candidates=self.candidates,
        )

    def new_subscriber_state(self) -> SubscriberState:
        return SubscriberState(local=self.local_params())

    # -- publisher ------------------------------------------------------------------------------

    def publish(self, p: Participant, offer: str, now: float) -> PublishResult:
        """Answer a publisher offer (first or renegotiated) and update ``p.tracks``."""
        local = p.publisher_local or self.local_params()
        try:
            answer = answer_publisher_offer(offer, local, session_version=p.publish_version + 1)
        except (SdpError, SdpUsageError) as exc:
            raise NegotiationError(str(exc)) from None
        negotiated = answer.negotiated
        remote = negotiated.remote
        if p.publisher is not None and remote.ice_ufrag != p.publisher_remote_ufrag:
            raise NegotiationError("ICE restart (a new ice-ufrag) is not supported; rejoin")
        sending = [m for m in negotiated.media if m.direction is Direction.RECVONLY]
        if len(sending) > self.max_tracks:
            raise NegotiationError(f"at most {self.max_tracks} tracks may be published")
        if p.publisher is None:
            p.publisher = self._create_peer(local, negotiated, now)
            p.publisher_local = local
            p.publisher_remote_ufrag = remote.ice_ufrag
            self.owners[p.publisher] = (p, True)
        p.publish_version += 1
        wanted = {m.mid: m for m in sending}
        removed = [t for mid, t in p.tracks.items() if mid not in wanted]
        for track in removed:
            del p.tracks[track.media.mid]
            self.media.remove_track(track.track_id)
        added: list[PublishedTrack] = []
        for mid, media in wanted.items():
            current = p.tracks.get(mid)
            if current is not None and current.media.codec == media.codec:
                continue
            if current is not None:  # codec changed: republish under a new id
                removed.append(current)
                self.media.remove_track(current.track_id)
            track = PublishedTrack(f"{p.id}:{mid}:{p.publish_version}", p.id, media)
            p.tracks[mid] = track
            self.media.add_track(track, p.publisher, now)
            added.append(track)
        return PublishResult(answer.text, added, removed, answer.rejected)

    # -- subscriber -----------------------------------------------------------------------------

    def offer(self, p: Participant, tracks: list[PublishedTrack]) -> dict[str, object] | None:
        """The next subscriber offer message for ``tracks``, or None (nothing changed, or an
        offer is already out: then it is marked dirty and sent after the answer)."""
        sub = p.subscriber
        if sub.plan.awaiting_answer:
            sub.dirty = True
            return None
        wanted = [t for t in tracks if t.track_id not in sub.declined]
        wanted_ids = {t.track_id for t in wanted}
        for track_id in [t for t in sub.outgoing if t not in wanted_ids]:
            del sub.outgoing[track_id]
            if track_id in sub.subscribed:
                sub.subscribed.discard(track_id)
                self.media.unsubscribe(p.id, track_id)
        outgoing = [sub.outgoing.get(t.track_id) or self._outgoing(sub, t) for t in wanted]
        for og in outgoing:
            sub.outgoing[og.track_id] = og
        plan = sub.plan.with_tracks(outgoing)
        if plan.slots == sub.plan.slots:
            return None
        offer = build_subscriber_offer(plan, sub.local)
        sub.plan = offer.plan
        mids = {s.mid: s.track.track_id for s in offer.plan.slots if s.track is not None}
        return {"type": "offer", "sdp": offer.text, "tracks": mids}

    def apply_answer(self, p: Participant, answer: str, now: float) -> bool:
        """Apply the subscriber's answer; True when a further offer is due (dirty)."""
        sub = p.subscriber
        try:
            plan, negotiated = apply_subscriber_answer(sub.plan, answer)
        except (SdpError, SdpUsageError) as exc:
            raise NegotiationError(str(exc)) from None
        old = sub.plan.remote
        if old is not None and plan.remote is not None and plan.remote.ice_ufrag != old.ice_ufrag:
            raise NegotiationError("ICE restart (a new ice-ufrag) is not supported; rejoin")
        by_mid = {s.mid: s.track for s in sub.plan.slots if s.track is not None}
        sub.plan = plan
        self.inactive_stopped_answers += len(negotiated.inactive_stopped_mids)
        if sub.peer is None and negotiated.media:
            sub.peer = self._create_peer(sub.local, negotiated, now)
            self.owners[sub.peer] = (p, False)
        for mid in negotiated.rejected_mids:
            track = by_mid.get(mid)
            if track is not None:
                sub.declined.add(track.track_id)
                sub.outgoing.pop(track.track_id, None)
                if track.track_id in sub.subscribed:
                    sub.subscribed.discard(track.track_id)
                    self.media.unsubscribe(p.id, track.track_id)
        if sub.peer is not None:
            for media in negotiated.media:
                track = by_mid.get(media.mid)
                if track is not None and track.track_id not in sub.subscribed:
                    sub.subscribed.add(track.track_id)
                    extensions = {e.uri: e.id for e in media.extensions}
                    self.media.subscribe(p.id, track, sub.peer, now, extensions)
        due = sub.dirty
        sub.dirty = False
        return due

    # -- teardown -------------------------------------------------------------------------------

    def close(self, p: Participant, reason: str) -> None:
        """Close both transports and forget the participant in the media plane."""
        self.media.remove_participant(p.id)
        for peer in (p.publisher, p.subscriber.peer):
            if peer is not None:
                self.owners.pop(peer, None)
                if self.on_peer_closed is not None:
                    self.on_peer_closed(peer)
                self.mux.close_peer(peer, reason)
        p.publisher = None
        p.subscriber.peer = None
        p.tracks.clear()
        p.subscriber.outgoing.clear()
        p.subscriber.subscribed.clear()

    # -- internals ------------------------------------------------------------------------------

    def _create_peer(
        self, local: LocalTransportParams, negotiated: NegotiatedSession, now: float
    ) -> PeerTransport:
        remote = negotiated.remote
        fingerprint = next(
            (f for f in remote.fingerprints if f.algorithm in ("sha-256", "sha-384", "sha-512")),
            remote.fingerprints[0],
        )
        try:
            return self.mux.create_peer(
                now=now,
                remote_ufrag=remote.ice_ufrag,
                remote_password=remote.ice_pwd,
                remote_fingerprint=fingerprint.value(),
                dtls_role=DtlsRole[remote.dtls_role.name],
                local_ufrag=local.ice_ufrag,
                local_password=local.ice_pwd,
                certificate=self.certificate,
            )
        except ValueError as exc:  # FingerprintError, or a ufrag collision
            raise NegotiationError(str(exc)) from None

    def _outgoing(self, sub: SubscriberState, track: PublishedTrack) -> OutgoingTrack:
        codec = subscriber_codec(track.media.codec)
        used = {s for og in sub.outgoing.values() for s in (og.ssrc, og.rtx_ssrc) if s}
        ssrc = self._ssrc(used)
        rtx = self._ssrc(used | {ssrc}) if codec.rtx_payload_type is not None else None
        return OutgoingTrack(
            track_id=track.track_id, kind=track.kind, stream_id=track.participant,
            participant=track.participant, codec=codec, ssrc=ssrc, rtx_ssrc=rtx,
        )  # fmt: skip

    def _ssrc(self, used: set[int]) -> int:
        while True:
            ssrc = self.rng.randrange(1, 2**32)
            if ssrc not in used:
                return ssrc


__all__ = ["NegotiationError", "Negotiator", "PublishResult"]
