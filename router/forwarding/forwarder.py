"""The sans-IO forwarding core: publishers' decrypted RTP/RTCP in, subscribers' RTP/RTCP out.

Wiring (one forwarder per router worker or per room; every call takes ``now``)::

    case RtpReceived(packet):  fwd.route_rtp(participant_id, packet, now)
    case RtcpReceived(packet): fwd.receive_rtcp(participant_id, packet, now)
    # after each batch of input and after handle_timer(now):
    for pid, data in fwd.rtp_to_send():  peers[pid].send_rtp(data)
    for pid, data in fwd.rtcp_to_send(): peers[pid].send_rtcp(data)
    deadline = fwd.get_timer()

Control calls come from the session layer as SDP is applied: :meth:`Forwarder.add_participant`,
:meth:`~Forwarder.add_track` / :meth:`~Forwarder.remove_track`, :meth:`~Forwarder.subscribe` /
:meth:`~Forwarder.unsubscribe` / :meth:`~Forwarder.retarget`, :meth:`~Forwarder.remove_participant`.

Nothing here raises on peer input: malformed or unexpected packets are dropped and counted in
:attr:`Forwarder.counters`. API misuse raises :class:`ForwardingUsageError`.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable
from typing import Final

from router.forwarding.binding import locate_ssrc
from router.forwarding.cache import PacketCache
from router.forwarding.config import ForwarderConfig
from router.forwarding.counters import Counters, ForwarderStats
from router.forwarding.layers import LayerChooser, LayerState, probe_packets
from router.forwarding.links import PublisherLinks
from router.forwarding.publisher_feedback import MAX_PENDING
from router.forwarding.receive import ReceiveStats
from router.forwarding.routing import fan_out_from, forward, forward_rtx
from router.forwarding.rtcp import (
    keyframe_request,
    receiver_report,
)
from router.forwarding.rtcp_input import RtcpInput
from router.forwarding.specs import (
    ForwardingUsageError,
    TrackSpec,
)
from router.forwarding.state import Downstream, Layer, Participant, Stream, Track
from router.forwarding.subscriber_links import RING_MASK, SubscriberLink
from router.forwarding.subscriptions import Subscriptions
from router.rtp import (
    Bye,
    Fir,
    GenericNack,
    Pli,
    ReceiverReport,
    Remb,
    RtcpPacket,
    RtpDecodeError,
    SenderReport,
    TransportCc,
)
from router.transport import fastpath

__all__ = ["Forwarder"]

_HDR: Final = struct.Struct("!BBHII")
_U16: Final = struct.Struct("!H")
_route = fastpath.route()
"""The compiled route of an in-order packet (router/forwarding/_fanout.c), None on the
reference path."""


class Forwarder(RtcpInput, Subscriptions):
    """Routes RTP and handles RTCP for a set of participants (see the module docstring)."""

    def __init__(
        self, config: ForwarderConfig | None = None, *, rng: random.Random | None = None
    ) -> None:
        self.config = config or ForwarderConfig()
        self.counters = Counters()
        self._rng = rng or random.Random()
        self._participants: dict[str, Participant] = {}
        self._tracks: dict[str, Track] = {}
        self._subscriptions: dict[str, list[Downstream]] = {}
        """Track id -> subscriptions naming it (attached or waiting for it to be published)."""
        self._keyframe_pending: dict[Stream, None] = {}
        self._stream_count = 0
        self._next_report: float | None = None
        self._rtp_out: list[tuple[str, bytes]] = []
        self._rtcp_out: list[tuple[str, bytes]] = []
        self.links = PublisherLinks(self.config.link, self.config.reporter_ssrc, self.counters)
        self.chooser = LayerChooser(self._request_keyframe)
        self._simulcast_subscriptions = 0
        self._sub_links: dict[str, SubscriberLink] = {}
        self._rtcp_handlers: dict[type, Callable[[Participant, RtcpPacket, float], None]] = {
            SenderReport: self._on_sender_report,
            ReceiverReport: self._on_receiver_report,
            Pli: self._on_pli,
            Fir: self._on_fir,
            GenericNack: self._on_nack,
            Remb: self._on_remb,
            TransportCc: self._on_twcc,
            Bye: self._on_bye,
        }

    # -- participants ---------------------------------------------------------------------

    def add_participant(self, participant_id: str) -> None:
        """Register a peer connection before it publishes or subscribes."""
        if participant_id in self._participants:
            raise ForwardingUsageError(f"participant {participant_id!r} already added")
        self._participants[participant_id] = Participant(participant_id)

    def remove_participant(self, participant_id: str, now: float) -> None:
        """Drop everything the participant published and subscribed to (no BYE is sent)."""
        part = self._participant(participant_id)
        for track_id in list(part.tracks):
            self.remove_track(track_id, now)
        for track_id in list(part.downstreams):
            self.unsubscribe(participant_id, track_id, now, send_bye=False)
        self.links.forget_participant(part)
        self._sub_links.pop(participant_id, None)
        part.link = None
        del self._participants[participant_id]
        self._rtp_out = [item for item in self._rtp_out if item[0] != participant_id]
        self._rtcp_out = [item for item in self._rtcp_out if item[0] != participant_id]

    def _participant(self, participant_id: str) -> Participant:
        part = self._participants.get(participant_id)
        if part is None:
            raise ForwardingUsageError(f"unknown participant {participant_id!r}")
        return part

    # -- tracks ---------------------------------------------------------------------------

    def add_track(self, spec: TrackSpec, now: float) -> None:
        """Publish a track; waiting subscriptions attach; signalled SSRCs are bound now."""
        part = self._participant(spec.publisher)
        if spec.track_id in self._tracks:
            raise ForwardingUsageError(f"track {spec.track_id!r} already published")
        track = Track(spec, part)
        self._tracks[spec.track_id] = track
        part.tracks[spec.track_id] = track
        self.links.on_track(track, now)
        for layer, layer_spec in zip(track.layers, spec.layers, strict=True):
            if layer_spec.ssrc is not None:
                self._bind_stream(track, layer, layer_spec.ssrc, False, now)
            if layer_spec.rtx_ssrc is not None:
                self._bind_stream(track, layer, layer_spec.rtx_ssrc, True, now)
        for d in self._subscriptions.get(spec.track_id, ()):
            self._attach(d, track, now)

    def remove_track(self, track_id: str, now: float) -> None:
        """Unpublish: subscriptions stay (waiting, numbering kept) until the id comes back."""
        track = self._tracks.pop(track_id, None)
        if track is None:
            raise ForwardingUsageError(f"unknown track {track_id!r}")
        del track.publisher.tracks[track_id]
        for d in self._subscriptions.get(track_id, ()):
            self._detach(d)
        for layer in track.layers:
            for stream in (layer.stream, layer.rtx):
                if stream is not None:
                    self._forget_stream(stream)
            layer.stream = layer.rtx = None

    def bind_ssrc(
        self, track_id: str, layer: int, ssrc: int, now: float, *, rtx: bool = False
    ) -> None:
        """Bind a newly signalled SSRC to a layer (e.g. the publisher restarted its sender)."""
        track = self._tracks.get(track_id)
        if track is None or not 0 <= layer < len(track.layers):
            raise ForwardingUsageError(f"unknown track/layer {track_id!r}/{layer}")
        self._bind_stream(track, track.layers[layer], ssrc, rtx, now)

    def _bind_stream(
        self, track: Track, layer: Layer, ssrc: int, is_rtx: bool, now: float
    ) -> Stream:
        part = track.publisher
        existing = part.streams.get(ssrc)
        if existing is not None:
            if existing.layer is layer and existing.is_rtx == is_rtx:
                return existing
            self._unbind_stream(existing, now)
        cfg = self.config
        cache = None
        if track.is_video and not is_rtx and cfg.cache_size:
            cache = PacketCache(cfg.cache_size)
        receive = ReceiveStats(track.spec.clock_rate, cfg.reorder_window, cfg.max_dropout)
        stream = Stream(ssrc, track, layer, is_rtx, receive, cache)
        part.streams[ssrc] = stream
        self.links.on_stream(stream)
        self._stream_count += 1
        if self._next_report is None:
            self._next_report = now + self._report_delay()
        old = layer.rtx if is_rtx else layer.stream
        if is_rtx:
            layer.rtx = stream
        else:
            layer.stream = stream
        if old is not None:
            # The publisher restarted its sender: same layer, new SSRC. Subscribers move over
            # and re-anchor on its first packet (its epoch is new).
            self._forget_stream(old)
            for d in old.fanout:
                d.stream = stream
                stream.fanout.append(d)
            old.fanout.clear()
        if not is_rtx:
            for d in self._subscriptions.get(track.spec.track_id, ()):
                if d.track is track:
                    self._select_layer(d, now)
        return stream

    def _unbind_stream(self, stream: Stream, now: float) -> None:
        """The stream ended (BYE, or its SSRC moved): its subscribers pick another layer."""
        self._forget_stream(stream)
        layer = stream.layer
        if stream.is_rtx:
            if layer.rtx is stream:
                layer.rtx = None
            return
        if layer.stream is stream:
            layer.stream = None
        orphans = stream.fanout[:]
        stream.fanout.clear()
        for d in orphans:
            d.stream = None
            d.layer = None
            self._select_layer(d, now)

    def _forget_stream(self, stream: Stream) -> None:
        streams = stream.track.publisher.streams
        if streams.get(stream.ssrc) is stream:
            del streams[stream.ssrc]
            self._stream_count -= 1
        self._keyframe_pending.pop(stream, None)
        stream.keyframe_pending = False
        stream.nacked.clear()
        self.links.forget_stream(stream)

    # -- RTP ------------------------------------------------------------------------------

    def route_rtp(self, publisher: str, packet: bytes | bytearray, now: float) -> int:
        """Route one decrypted RTP packet; returns how many copies were queued."""
        route = _route
        if route is not None:
            # The compiled route takes the next in-order packet of a known stream whole and
            # hands anything else back untouched (-1) for the reference below.
            part = self._participants.get(publisher)
            if part is not None:
                out = self._rtp_out
                before = len(out)
                r = route(part, packet, now, out, self.counters, RING_MASK, MAX_PENDING)
                if r >= 0:
                    return r
                if r < -1:  # taken (so ``packet`` is bytes), its fan-out stopped for Python
                    return self._resume_fan_out(part, bytes(packet), now, -2 - r, before)
        counters = self.counters
        counters.rtp_received += 1
        part = self._participants.get(publisher)
        if part is None:
            counters.rtp_unknown_participant += 1
            return 0
        n = len(packet)
        if n < 12:
            counters.rtp_malformed += 1
            return 0
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(packet)
        hl = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if n < hl + 4:
                counters.rtp_malformed += 1
                return 0
            hl += 4 + (_U16.unpack_from(packet, hl + 2)[0] << 2)
        plen = n - hl
        if b0 & 0xC0 != 0x80 or plen < 0:
            counters.rtp_malformed += 1
            return 0
        if b0 & 0x20:
            pad = packet[-1]
            if pad == 0 or pad > plen:
                counters.rtp_malformed += 1
                return 0
            plen -= pad
        if type(packet) is not bytes:
            packet = bytes(packet)
        twcc = part.twcc
        if twcc is not None:
            twcc.record(packet, now)
        stream = part.streams.get(ssrc)
        if stream is None:
            try:
                stream = self._bind_unknown(part, packet, ssrc, b1 & 0x7F, now)
            except RtpDecodeError:
                counters.rtp_malformed += 1
                return 0
            if stream is None:
                counters.rtp_unknown_ssrc += 1
                return 0
        if stream.is_rtx:
            return forward_rtx(stream, packet, hl, plen, now, self._rtp_out, counters)
        return forward(stream, packet, b0, b1, seq, ts, plen, now, self._rtp_out, counters)

    def _resume_fan_out(
        self, part: Participant, packet: bytes, now: float, start: int, before: int
    ) -> int:
        """The compiled route accounted for ``packet`` and stopped its fan-out at subscription
        ``start``: the reference loop queues the rest (and counts the whole packet)."""
        b0, b1, _, ts, ssrc = _HDR.unpack_from(packet)
        hl = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            hl += 4 + (_U16.unpack_from(packet, hl + 2)[0] << 2)
        plen = len(packet) - hl - (packet[-1] if b0 & 0x20 else 0)
        stream = part.streams[ssrc]
        return fan_out_from(stream, packet, b0, b1, stream.receive.last_ext, ts, plen, now,
                            self._rtp_out, self.counters, start=start, before=before)  # fmt: skip

    def _bind_unknown(
        self, part: Participant, packet: bytes, ssrc: int, pt: int, now: float
    ) -> Stream | None:
        """Slow path for an unsignalled SSRC: find its track by MID, its layer by RID."""
        found = locate_ssrc(part, packet, pt)
        if found is None:
            return None
        track, layer, is_rtx = found
        return self._bind_stream(track, layer, ssrc, is_rtx, now)

    def rtp_to_send(self) -> list[tuple[str, bytes]]:
        """Queued ``(subscriber, plaintext RTP)``, oldest first; the queue is emptied."""
        out = self._rtp_out
        self._rtp_out = []
        return out

    def rtcp_to_send(self) -> list[tuple[str, bytes]]:
        """Queued ``(participant, plaintext RTCP compound)``, oldest first; emptied."""
        out = self._rtcp_out
        self._rtcp_out = []
        return out

    def subscriber_link(self, part: Participant) -> SubscriberLink | None:
        """The participant's downlink state (created on first use; None if links are off)."""
        link = part.link
        if isinstance(link, SubscriberLink):
            return link
        cfg = self.config.link
        if not cfg.enabled:
            return None
        link = SubscriberLink(part, cfg, cfg.subscriber_initial_bitrate, cfg.subscriber_max_bitrate)
        part.link = link
        self._sub_links[part.id] = link
        return link

    def _subscriber_links(self) -> Iterable[SubscriberLink]:
        return self._sub_links.values()

    def _layers_and_probes(self, now: float) -> None:
        """Simulcast choice on its tick; probe traffic while a probe runs."""
        if self._simulcast_subscriptions > 0 or any(
            link.probe_until is not None for link in self._subscriber_links()
        ):
            self.chooser.tick(self._tracks.values(), self._participants.values(), now)
        for link in self._subscriber_links():
            if link.probe_until is not None:
                packets = probe_packets(link, now)
                self.counters.probe_packets += len(packets)
                self._rtp_out.extend((link.part.id, p) for p in packets)

    def set_max_height(self, subscriber: str, track_id: str, height: int, now: float) -> None:
        """The subscriber shows ``track_id`` at most ``height`` pixels high (0: no limit);
        the layer choice then picks the smallest layer that covers it."""
        if not 0 <= height <= 16384:
            raise ForwardingUsageError(f"height {height} out of range 0..16384")
        d = self._participant(subscriber).downstreams.get(track_id)
        if d is None:
            raise ForwardingUsageError(f"{subscriber!r} does not subscribe {track_id!r}")
        if d.sim is None:
            d.sim = LayerState()
        d.sim.max_height = height

    def subscribed_tracks(self, subscriber: str) -> list[str]:
        """Track ids the participant subscribes to."""
        return list(self._participant(subscriber).downstreams)

    def layer_of(self, subscriber: str, track_id: str) -> tuple[int | None, str | None]:
        """``(layer index, rid)`` a subscription currently receives (for stats and tests)."""
        d = self._participant(subscriber).downstreams.get(track_id)
        if d is None or d.layer is None or d.track is None:
            return None, None
        return d.layer, d.track.layers[d.layer].rid

    def link_stats(self) -> dict[str, dict[str, float]]:
        """Per-subscriber link figures (estimate, RTT, loss, repair budget), by participant."""
        return {
            pid: part.link.stats()
            for pid, part in self._participants.items()
            if isinstance(part.link, SubscriberLink)
        }

    # -- keyframes, timers ----------------------------------------------------------------

    def request_keyframe(self, track_id: str, now: float) -> None:
        """Ask the publisher of ``track_id`` for a keyframe on every receiving layer."""
        track = self._tracks.get(track_id)
        if track is None:
            raise ForwardingUsageError(f"unknown track {track_id!r}")
        for layer in track.layers:
            if layer.stream is not None:
                self._request_keyframe(layer.stream, now)

    def _request_keyframe(self, stream: Stream, now: float) -> None:
        track = stream.track
        if not track.is_video or track.spec.keyframe_request == "none":
            return
        last = stream.keyframe_last
        if last is not None and now - last < self.config.keyframe_min_interval:
            self.counters.keyframe_requests_throttled += 1
            if not stream.keyframe_pending:
                stream.keyframe_pending = True
                self._keyframe_pending[stream] = None
            return
        self._send_keyframe_request(stream, now)

    def _send_keyframe_request(self, stream: Stream, now: float) -> None:
        stream.keyframe_last = now
        stream.keyframe_pending = False
        self._keyframe_pending.pop(stream, None)
        self.counters.keyframe_requests_sent += 1
        packet = keyframe_request(stream, self.config.reporter_ssrc)
        self._rtcp_out.append((stream.track.publisher.id, packet))

    def _report_delay(self) -> float:
        return self.config.report_interval * self._rng.uniform(0.5, 1.5)

    def get_timer(self) -> float | None:
        """The next deadline (receiver reports, deferred keyframe requests), or None."""
        if self._stream_count == 0:
            self._next_report = None
        deadline = self._next_report
        link_due = self.links.get_timer()
        if link_due is not None and (deadline is None or link_due < deadline):
            deadline = link_due
        links = self._subscriber_links()
        layer_due = self.chooser.deadline(links, self._simulcast_subscriptions > 0)
        if layer_due is not None and (deadline is None or layer_due < deadline):
            deadline = layer_due
        interval = self.config.keyframe_min_interval
        for stream in self._keyframe_pending:
            due = (stream.keyframe_last or 0.0) + interval
            if deadline is None or due < deadline:
                deadline = due
        return deadline

    def handle_timer(self, now: float) -> None:
        """Send what is due: deferred keyframe requests, then receiver reports."""
        interval = self.config.keyframe_min_interval
        for stream in list(self._keyframe_pending):
            if (stream.keyframe_last or 0.0) + interval <= now:
                self._send_keyframe_request(stream, now)
        self.links.handle_timer(now, self._rtcp_out)
        self._layers_and_probes(now)
        if self._stream_count == 0:
            self._next_report = None
            return
        if self._next_report is None or now < self._next_report:
            return
        self._next_report = now + self._report_delay()
        cfg = self.config
        for part in self._participants.values():
            if part.streams:
                report = receiver_report(part, cfg.reporter_ssrc, cfg.cname, now)
                if report is not None:
                    self.counters.rr_sent += 1
                    self._rtcp_out.append((part.id, report))

    # -- introspection --------------------------------------------------------------------

    def stats(self) -> ForwarderStats:
        """Table sizes and counters (tests check the sizes fall to zero after churn)."""
        parts = self._participants.values()
        streams = sum(len(p.streams) for p in parts)
        return ForwarderStats(
            participants=len(self._participants),
            tracks=len(self._tracks),
            streams=streams,
            subscriptions=sum(len(p.downstreams) for p in parts),
            attached_subscriptions=sum(len(s.fanout) for p in parts for s in p.streams.values()),
            waiting_track_ids=len(self._subscriptions),
            keyframe_pending=len(self._keyframe_pending),
            nack_suppression_entries=sum(len(s.nacked) for p in parts for s in p.streams.values()),
            queued_rtp=len(self._rtp_out),
            queued_rtcp=len(self._rtcp_out),
            counters=self.counters.as_dict(),
        )
