""":class:`~router.session.media.MediaPlane` on top of :class:`router.forwarding.Forwarder`.

The forwarder thinks in peer connections; a participant here has two (publisher and
subscriber), so each becomes a forwarder participant (``<id>/pub``, ``<id>/sub``) created on
first use. SDP results are translated into the forwarder's specs (codec keys instead of payload
types, layers from rids or signalled SSRCs), and its output queues are drained into the right
:class:`~router.session.media.MediaSink` right after each control call. RTP routed by
:meth:`ForwarderPlane.on_rtp` waits for :meth:`ForwarderPlane.flush`, which the UDP driver's
batch hook calls once per batch: the copies are then encrypted per subscriber in one call each.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from router.forwarding.forwarder import Forwarder
from router.forwarding.specs import (
    TRANSPORT_WIDE_CC,
    ForwardingUsageError,
    LayerSpec,
    SubscriptionSpec,
    TrackSpec,
    codec_key,
)
from router.sdp import NegotiatedCodec, OutgoingTrack
from router.session.media import MediaSink, PublishedTrack
from router.transport import fastpath

_protect_copies = fastpath.protect_copies()
"""The compiled flush (router/transport/_fastpath.c), None on the reference path."""


def _key(codec: NegotiatedCodec) -> str:
    return codec_key(codec.name, codec.clock_rate, codec.channels)


def track_spec(track: PublishedTrack, publisher_id: str) -> TrackSpec:
    """The forwarder's view of a publisher m-section."""
    media = track.media
    codec = media.codec
    if media.rids:
        layers = tuple(LayerSpec(rid=rid) for rid in media.rids)
    elif media.ssrcs:
        first = media.ssrcs[0]
        layers = (LayerSpec(ssrc=first, rtx_ssrc=media.rtx_ssrc(first)),)
    else:
        layers = (LayerSpec(),)
    if codec.has_feedback("nack", "pli"):
        keyframe = "pli"
    elif codec.has_feedback("ccm", "fir"):
        keyframe = "fir"
    else:
        keyframe = "pli" if media.kind == "video" else "none"
    ext_ids = {e.uri: e.id for e in media.extensions}
    if codec.has_feedback("transport-cc") and TRANSPORT_WIDE_CC in ext_ids:
        bandwidth = "transport-cc"
    elif codec.has_feedback("goog-remb"):
        bandwidth = "remb"
    else:
        bandwidth = "none"
    return TrackSpec(
        track_id=track.track_id, publisher=publisher_id, kind=media.kind,
        clock_rate=codec.clock_rate, codecs={codec.payload_type: _key(codec)},
        rtx_payload_types=media.rtx_map(), extensions=ext_ids,
        mid=media.mid, layers=layers, nack=codec.has_feedback("nack"), keyframe_request=keyframe,
        bandwidth_feedback=bandwidth,
    )  # fmt: skip


def subscription_spec(
    subscriber_id: str, track: OutgoingTrack, extensions: Mapping[str, int] | None = None
) -> SubscriptionSpec:
    """The forwarder's view of a subscriber m-section; ``extensions`` (URI -> id) are those the
    subscriber's answer accepted (the forwarder writes abs-send-time, strips what is absent)."""
    codec = track.codec
    rtx = {codec.payload_type: codec.rtx_payload_type} if codec.rtx_payload_type else {}
    return SubscriptionSpec(
        subscriber=subscriber_id, track_id=track.track_id, ssrc=track.ssrc,
        codecs={_key(codec): codec.payload_type}, rtx_ssrc=track.rtx_ssrc,
        rtx_payload_types=rtx, extensions=dict(extensions or {}),
    )  # fmt: skip


class ForwarderPlane:
    """The session layer's media plane backed by the full forwarder."""

    def __init__(self, forwarder: Forwarder | None = None, seed: int | None = None) -> None:
        self.forwarder = forwarder or Forwarder(rng=random.Random(seed))
        self._sinks: dict[str, MediaSink] = {}
        self._now = 0.0

    def _ensure(self, fid: str, sink: MediaSink) -> None:
        if fid not in self._sinks:
            self.forwarder.add_participant(fid)
        self._sinks[fid] = sink

    def _flush(self) -> int:
        fwd = self.forwarder
        sent = self.flush()
        sinks = self._sinks
        for fid, data in fwd.rtcp_to_send():
            sink = sinks.get(fid)
            if sink is not None:
                sink.send_rtcp(data)
        return sent

    def add_track(self, track: PublishedTrack, publisher: MediaSink, now: float) -> None:
        self._now = now
        fid = f"{track.participant}/pub"
        self._ensure(fid, publisher)
        self.forwarder.add_track(track_spec(track, fid), now)
        self._flush()

    def remove_track(self, track_id: str) -> None:
        try:
            self.forwarder.remove_track(track_id, self._now)
        except ForwardingUsageError:
            return
        self._flush()

    def subscribe(
        self,
        subscriber: str,
        track: OutgoingTrack,
        sink: MediaSink,
        now: float,
        extensions: Mapping[str, int] | None = None,
    ) -> None:
        self._now = now
        fid = f"{subscriber}/sub"
        self._ensure(fid, sink)
        self.forwarder.subscribe(subscription_spec(fid, track, extensions), now)
        self._flush()

    def unsubscribe(self, subscriber: str, track_id: str) -> None:
        try:
            self.forwarder.unsubscribe(f"{subscriber}/sub", track_id, self._now)
        except ForwardingUsageError:
            return
        self._flush()

    def remove_participant(self, participant: str) -> None:
        for fid in (f"{participant}/pub", f"{participant}/sub"):
            if self._sinks.pop(fid, None) is not None:
                self.forwarder.remove_participant(fid, self._now)

    def on_rtp(self, publisher: str, packet: bytes, now: float) -> int:
        """Route only: the copies wait for :meth:`flush` at the end of the driver's batch."""
        self._now = now
        return self.forwarder.route_rtp(publisher + "/pub", packet, now)

    def flush(self) -> int:
        """Group the queued copies by subscriber and hand each group to its transport in one
        call (one SRTP setup and destination check per subscriber per batch, not per packet)."""
        out = self.forwarder.rtp_to_send()
        if not out:
            return 0
        sent = 0
        protect = _protect_copies
        if protect is not None:
            # Copies for transports go straight to libsrtp and their outbox in C; the rest
            # (trunk legs, transports that may not send now) come back for the grouping below.
            sent, out = protect(out, self._sinks)
            if not out:
                return sent
        groups: dict[str, list[bytes]] = {}
        for fid, data in out:
            group = groups.get(fid)
            if group is None:
                groups[fid] = [data]
            else:
                group.append(data)
        sinks = self._sinks
        for fid, packets in groups.items():
            sink = sinks.get(fid)
            if sink is not None:
                sent += sink.send_rtp_batch(packets)
        return sent

    def on_rtcp(self, participant: str, packet: bytes, now: float, from_publisher: bool) -> None:
        self._now = now
        suffix = "/pub" if from_publisher else "/sub"
        self.forwarder.receive_rtcp(participant + suffix, packet, now)
        self._flush()

    # -- router legs (trunks) -------------------------------------------------------------
    # A trunk to another router is one forwarder participant (``trunk:<node>``) that both
    # publishes (the far router's tracks) and subscribes (ours), through one sink: the same
    # fan-out, NACK cache and rewrite as for clients (docs/architecture.md §9).

    def add_leg(self, leg: str, sink: MediaSink) -> None:
        """Register a router leg before it publishes or subscribes."""
        self._ensure(leg, sink)

    def remove_leg(self, leg: str) -> None:
        """Forget the leg, every track it published and every subscription it held."""
        if self._sinks.pop(leg, None) is not None:
            self.forwarder.remove_participant(leg, self._now)

    def add_leg_track(self, spec: TrackSpec, now: float) -> None:
        """Publish a track arriving over leg ``spec.publisher``."""
        self._now = now
        self.forwarder.add_track(spec, now)
        self._flush()

    def subscribe_leg(self, spec: SubscriptionSpec, now: float) -> None:
        """Send a local track over leg ``spec.subscriber``."""
        self._now = now
        self.forwarder.subscribe(spec, now)
        self._flush()

    def unsubscribe_leg(self, leg: str, track_id: str) -> None:
        try:
            self.forwarder.unsubscribe(leg, track_id, self._now, send_bye=False)
        except ForwardingUsageError:
            return
        self._flush()

    def on_leg_rtp(self, leg: str, packet: bytes, now: float) -> int:
        """Route a decrypted packet that arrived over a leg (copies wait for :meth:`flush`)."""
        self._now = now
        return self.forwarder.route_rtp(leg, packet, now)

    def on_leg_rtcp(self, leg: str, packet: bytes, now: float) -> None:
        self._now = now
        self.forwarder.receive_rtcp(leg, packet, now)
        self._flush()

    def request_keyframe(self, track_id: str, now: float) -> None:
        try:
            self.forwarder.request_keyframe(track_id, now)
        except ForwardingUsageError:
            return
        self._flush()

    def get_timer(self) -> float | None:
        return self.forwarder.get_timer()

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.forwarder.handle_timer(now)
        self._flush()

    def link_summary(self) -> dict[str, float]:
        """Aggregates of the subscribers' downlink estimates and the link counters, for
        Prometheus (no per-participant labels: bounded cardinality)."""
        links = self.forwarder.link_stats()
        estimates = sorted(v["estimate_bps"] for v in links.values())
        counters = self.forwarder.counters
        out: dict[str, float] = {
            "subscribers": float(len(estimates)),
            "estimate_min_bps": estimates[0] if estimates else 0.0,
            "estimate_median_bps": estimates[len(estimates) // 2] if estimates else 0.0,
            "estimate_max_bps": estimates[-1] if estimates else 0.0,
            "rtt_max_ms": max((v["rtt_ms"] for v in links.values()), default=0.0),
        }
        for name in ("twcc_feedback_sent", "remb_sent", "nack_proactive_seqs", "nack_recovered",
                     "nack_given_up", "rtx_over_budget", "nack_repeats_ignored", "twcc_received",
                     "twcc_unmatched", "remb_absurd", "nack_served", "rtcp_malformed",
                     "downlink_expected", "downlink_nacked", "downlink_lost"):  # fmt: skip
            out[name] = float(getattr(counters, name))
        return out

    def link_report(self, participant: str) -> dict[str, object]:
        """One participant's downlink as the router sees it (the ``link_stats`` message)."""
        fid = f"{participant}/sub"
        figures = self.forwarder.link_stats().get(fid, {})
        layers: dict[str, str | int | None] = {}
        if fid in self._sinks:
            for track_id in self.forwarder.subscribed_tracks(fid):
                index, rid = self.forwarder.layer_of(fid, track_id)
                if index is not None:
                    layers[track_id] = rid if rid is not None else index
        return {
            "estimate_bps": int(figures.get("estimate_bps", 0)),
            "rtt_ms": round(figures.get("rtt_ms", 0.0), 1),
            "loss": round(figures.get("loss", 0.0), 4),
            "layers": layers,
        }

    def set_video_size(self, participant: str, track_id: str, height: int, now: float) -> bool:
        """Cap the layer sent for ``track_id``; False if the participant does not receive it."""
        self._now = now
        try:
            self.forwarder.set_max_height(f"{participant}/sub", track_id, height, now)
        except ForwardingUsageError:
            return False
        return True

    def state_counts(self) -> dict[str, int]:
        s = self.forwarder.stats()
        return {
            "participants": s.participants, "tracks": s.tracks, "streams": s.streams,
            "subscriptions": s.subscriptions, "waiting_track_ids": s.waiting_track_ids,
            "keyframe_pending": s.keyframe_pending, "sinks": len(self._sinks),
        }  # fmt: skip


__all__ = ["ForwarderPlane", "subscription_spec", "track_spec"]
