"""RTCP into the forwarder: reports, keyframe requests, NACKs, bandwidth feedback, BYE.

Split from :mod:`router.forwarding.forwarder` to keep modules small; a mixin rather than a
separate object because every handler reads and updates the forwarder's own tables (its
participants, output queues and counters), which :class:`~router.forwarding.forwarder.Forwarder`
owns and declares here for the type checker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from router.errors import RemoteProtocolError
from router.forwarding.config import ForwarderConfig
from router.forwarding.counters import Counters
from router.forwarding.downlink_loss import DownlinkReports, first_requests
from router.forwarding.rtcp import retransmissions, translate_sender_report, upstream_nack
from router.forwarding.state import Downstream, Participant, Stream
from router.forwarding.subscriber_links import SubscriberLink, stamp_transport_seq
from router.rtp import (
    Bye,
    Fir,
    GenericNack,
    Pli,
    ReceiverReport,
    Remb,
    RtcpPacket,
    SenderReport,
    TransportCc,
    parse_rtcp_compound,
)

__all__ = ["RtcpInput"]


class RtcpInput:
    """The forwarder's RTCP handlers (mixed into :class:`Forwarder`)."""

    config: ForwarderConfig
    counters: Counters
    _participants: dict[str, Participant]
    _rtp_out: list[tuple[str, bytes]]
    _rtcp_out: list[tuple[str, bytes]]
    _rtcp_handlers: dict[type, Callable[[Participant, RtcpPacket, float], None]]

    if TYPE_CHECKING:

        def _request_keyframe(self, stream: Stream, now: float) -> None: ...

        def _unbind_stream(self, stream: Stream, now: float) -> None: ...

    def receive_rtcp(self, participant_id: str, packet: bytes | bytearray, now: float) -> None:
        """Handle a decrypted RTCP compound from a publisher and/or subscriber."""
        counters = self.counters
        counters.rtcp_received += 1
        part = self._participants.get(participant_id)
        if part is None:
            counters.rtcp_unknown_participant += 1
            return
        try:
            packets = parse_rtcp_compound(packet)
        except RemoteProtocolError:
            counters.rtcp_malformed += 1
            return
        handlers = self._rtcp_handlers
        for item in packets:
            handler = handlers.get(type(item))
            if handler is None:
                counters.rtcp_unhandled += 1
            else:
                handler(part, item, now)

    def _on_sender_report(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, SenderReport)
        self.counters.sr_received += 1
        stream = part.streams.get(packet.ssrc)
        if stream is None or stream.is_rtx:
            self.counters.rtcp_unknown_ssrc += 1
        else:
            stream.receive.on_sender_report(packet.ntp_timestamp, now)
            translated = translate_sender_report(packet, stream)
            for d in stream.fanout:
                sub_link = self._participants[d.subscriber].link
                if isinstance(sub_link, SubscriberLink):
                    sub_link.note_sender_report(d.ssrc, packet.ntp_timestamp, now)
            self.counters.sr_sent += len(translated)
            self._rtcp_out.extend(translated)
        self._report_blocks(part, packet.reports, now)

    def _on_receiver_report(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, ReceiverReport)
        self.counters.rr_received += 1
        self._report_blocks(part, packet.reports, now)

    def _report_blocks(
        self, part: Participant, blocks: tuple[object, ...], now: float = 0.0
    ) -> None:
        """A subscriber's view of our outgoing streams: loss and RTT for its link."""
        link = part.link
        for block in blocks:
            d = part.by_out_ssrc.get(getattr(block, "ssrc", -1))
            if d is not None:
                d.remote_fraction_lost = getattr(block, "fraction_lost", 0)
                d.remote_lost = getattr(block, "cumulative_lost", 0)
                if (d.ssrc == getattr(block, "ssrc", -1) and d.track is not None
                        and d.track.spec.nack):
                    self._count_downlink(d, getattr(block, "highest_seq", 0))
                d.remote_jitter = getattr(block, "jitter", 0)
                if isinstance(link, SubscriberLink) and d.ssrc == getattr(block, "ssrc", -1):
                    link.on_report_block(
                        d.ssrc, d.remote_fraction_lost, getattr(block, "lsr", 0),
                        getattr(block, "dlsr", 0), now,
                    )  # fmt: skip

    def _count_downlink(self, d: Downstream, highest_seq: int) -> None:
        if d.downlink is None:
            d.downlink = DownlinkReports.before_first_packet(highest_seq, d.first_seq)
        expected, lost = d.downlink.on_report(highest_seq, d.remote_lost, d.last_out_ext,
                                              d.packets)
        self.counters.downlink_expected += expected
        self.counters.downlink_lost += lost

    def _downstream_source(self, part: Participant, ssrc: int) -> Downstream | None:
        d = part.by_out_ssrc.get(ssrc)
        if d is None:
            self.counters.rtcp_unknown_ssrc += 1
        return d

    def _on_pli(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, Pli)
        self.counters.keyframe_requests_received += 1
        d = self._downstream_source(part, packet.media_ssrc)
        if d is not None and d.stream is not None:
            self._request_keyframe(d.stream, now)

    def _on_fir(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, Fir)
        for entry in packet.entries:
            self.counters.keyframe_requests_received += 1
            d = self._downstream_source(part, entry.ssrc)
            if d is None or d.last_fir_seq == entry.seq_nr:
                continue  # RFC 5104: a repeated sequence number is a retransmission
            d.last_fir_seq = entry.seq_nr
            if d.stream is not None:
                self._request_keyframe(d.stream, now)

    def _on_nack(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, GenericNack)
        self.counters.nack_received += 1
        d = self._downstream_source(part, packet.media_ssrc)
        if d is None:
            return
        limit = self.config.max_nack_per_packet
        seqs = packet.lost_seqs()
        if d.track is not None and d.track.spec.nack:
            fresh, d.nack_high = first_requests(seqs[:limit], d.last_out_ext, d.nack_high)
            self.counters.downlink_nacked += fresh
        link = part.link
        if isinstance(link, SubscriberLink):
            wanted = len(seqs)
            seqs = link.nack_filter(d, seqs[:limit], now)
            self.counters.nack_repeats_ignored += wanted - len(seqs)
        packets, missing = retransmissions(d, seqs, limit, now, stamp=False)
        if isinstance(link, SubscriberLink) and packets:
            kept = link.spend(packets, self.config.link)
            self.counters.rtx_over_budget += len(packets) - len(kept)
            packets = kept
        if d.tw is not None:
            packets = [stamp_transport_seq(d, p, now) for p in packets]
        self.counters.nack_served += len(packets)
        self._rtp_out.extend((part.id, p) for p in packets)
        stream = d.stream
        if missing and stream is not None and stream.track.spec.nack:
            self._nack_upstream(stream, missing, now)

    def _nack_upstream(self, stream: Stream, exts: list[int], now: float) -> None:
        cfg = self.config
        nack = upstream_nack(stream, exts, now, cfg.upstream_nack_suppress, cfg.reporter_ssrc)
        if nack is not None:
            self.counters.nack_upstream += 1
            self._rtcp_out.append((stream.track.publisher.id, nack))

    def _on_remb(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        self.counters.remb_received += 1
        self.on_bandwidth_feedback(part.id, packet, now)

    def _on_twcc(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        self.counters.twcc_received += 1
        self.on_bandwidth_feedback(part.id, packet, now)

    def on_bandwidth_feedback(self, subscriber: str, packet: RtcpPacket, now: float) -> None:
        """REMB/TWCC from a subscriber feed its link's estimate; they are never forwarded."""
        part = self._participants.get(subscriber)
        link = part.link if part is not None else None
        if not isinstance(link, SubscriberLink):
            self.counters.bandwidth_feedback_ignored += 1
            return
        if isinstance(packet, TransportCc):
            if not link.on_twcc(packet, now):
                self.counters.twcc_unmatched += 1
        elif isinstance(packet, Remb):
            if packet.bitrate > self.config.link.subscriber_max_bitrate * 100:
                self.counters.remb_absurd += 1  # dropped: no sane link carries this
                return
            link.estimator.on_remb(packet.bitrate)

    def _on_bye(self, part: Participant, packet: RtcpPacket, now: float) -> None:
        assert isinstance(packet, Bye)
        self.counters.bye_received += 1
        for ssrc in packet.ssrcs:
            stream = part.streams.get(ssrc)
            if stream is not None:
                self._unbind_stream(stream, now)

