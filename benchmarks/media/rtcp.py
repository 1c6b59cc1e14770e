"""Sans-IO RTCP at the rates Chromium sends it, for publishers and for subscribers.

* :class:`SenderReports`: a publisher's SR + SDES CNAME compound per stream, about every
  second for video and every five seconds for audio (RFC 3550's randomised 0.5x-1.5x interval,
  as libwebrtc does).
* :class:`ReceiverFeedback`: a subscriber's RR + SDES compound about every second (one report
  block per received SSRC, at most 31); a generic NACK as soon as a sequence gap shows (or a
  packet is treated as lost with ``nack_probability``, which puts realistic NACK traffic on a
  loss-free loopback), repeated at most ``nack_retries`` times; a PLI for a video SSRC whose
  first packet does not start a keyframe, and every ``pli_interval`` seconds (decoder
  hiccups); transport-wide CC feedback every 100 ms for the packets that carried the
  transport-wide sequence number.

Everything here is given ``now`` and packets; it returns datagrams (plain RTCP, before SRTCP).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from benchmarks.media.streams import Stream
from benchmarks.media.vp8 import is_keyframe_start
from router.forwarding.transport_seq import read_transport_seq
from router.rtp import (
    GenericNack,
    Pli,
    ReceiverReport,
    ReportBlock,
    RtpDecodeError,
    Sdes,
    SdesChunk,
    SdesItem,
    SdesItemType,
    SenderReport,
    TransportCc,
    build_rtcp_compound,
    read_rtp_header_fields,
)
from router.rtp.fields import RTP_HEADER_SIZE

#: Seconds between 1900 (NTP) and the epoch of ``now`` (fixed: the load has no wall clock).
NTP_OFFSET = 2_208_988_800 + 1_700_000_000
TWCC_INTERVAL = 0.1
RR_INTERVAL = 1.0
#: TWCC reference time unit and delta tick (draft-holmer-rmcat-transport-wide-cc-extensions).
_REFERENCE_UNIT = 0.064
_TICK = 250e-6


def ntp_timestamp(now: float) -> int:
    """64-bit NTP time of ``now`` (seconds since :data:`NTP_OFFSET`)."""
    seconds = now + NTP_OFFSET
    whole = int(seconds)
    return (whole & 0xFFFFFFFF) << 32 | int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF


def _sdes(ssrc: int, cname: bytes) -> Sdes:
    return Sdes((SdesChunk(ssrc, (SdesItem(SdesItemType.CNAME, cname),)),))


@dataclass(slots=True)
class SenderReports:
    """A publisher's sender reports, one compound per stream when that stream's turn comes."""

    streams: list[Stream]
    rng: random.Random
    cname: bytes = b"synthetic"
    _next: dict[int, float] = field(default_factory=dict)

    def poll(self, now: float) -> list[bytes]:
        out = []
        for s in self.streams:
            interval = 1.0 if s.kind == "video" else 5.0
            due = self._next.get(s.ssrc)
            if due is None:  # first report within the first interval
                self._next[s.ssrc] = now + self.rng.uniform(0.1, interval)
                continue
            if due > now or not s.counters.packets:
                continue
            self._next[s.ssrc] = now + interval * self.rng.uniform(0.5, 1.5)
            c = s.counters
            rtp_ts = (c.rtp_timestamp + round((now - c.last_sent) * s.clock_rate)) & 0xFFFFFFFF
            report = SenderReport(s.ssrc, ntp_timestamp(now), rtp_ts, c.packets & 0xFFFFFFFF,
                                  c.octets & 0xFFFFFFFF)
            out.append(build_rtcp_compound([report, _sdes(s.ssrc, self.cname)]))
        return out


@dataclass(slots=True)
class _Source:
    """Reception state of one SSRC (RFC 3550 A.1, A.3 in their simplest form)."""

    kind: str
    base: int
    highest: int  # extended
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    missing: dict[int, int] = field(default_factory=dict)  # extended seq -> NACKs sent
    next_pli: float = 0.0


@dataclass(slots=True)
class ReceiverFeedback:
    """What one subscriber's receiver sends back about the media it gets."""

    ssrc: int
    rng: random.Random
    #: Extension id of transport-wide-cc as negotiated on this subscriber's transport.
    transport_cc_id: int | None = None
    video_payload_types: frozenset[int] = frozenset({96})
    nack_probability: float = 0.0
    nack_retries: int = 2
    pli_interval: float | None = 10.0
    cname: bytes = b"subscriber"
    _sources: dict[int, _Source] = field(default_factory=dict)
    _arrivals: dict[int, float] = field(default_factory=dict)  # unwrapped transport seq -> time
    _twcc_last: int = -1
    _twcc_count: int = 0
    _media_ssrc: int = 0
    _next_rr: float | None = None
    _next_twcc: float | None = None
    _pending: list[bytes] = field(default_factory=list)

    def on_rtp(self, now: float, packet: bytes | bytearray | memoryview) -> None:
        """Account for one decrypted RTP packet (malformed ones are ignored)."""
        try:
            pt, _marker, seq, _ts, ssrc = read_rtp_header_fields(packet)
        except RtpDecodeError:
            return
        # The router's own scanner (no exception, no element list): this runs for every packet
        # every subscriber gets, and the generator's CPU bounds the rates a bench can show.
        twcc = (read_transport_seq(packet, self.transport_cc_id)
                if self.transport_cc_id is not None else -1)
        video = pt in self.video_payload_types
        source = self._sources.get(ssrc)
        if source is None:
            source = self._sources[ssrc] = _Source("video" if video else "audio", seq, seq)
            if video and not is_keyframe_start(_payload(packet)):
                self._pending.append(build_rtcp_compound([Pli(self.ssrc, ssrc)]))
            source.next_pli = now + self._pli_gap()
        ext = _extend(source.highest, seq)
        if ext > source.highest:
            for gap in range(source.highest + 1, min(ext, source.highest + 200)):
                source.missing[gap] = 0
            source.highest = ext
        source.missing.pop(ext, None)
        source.received += 1
        if self.nack_probability and self.rng.random() < self.nack_probability:
            source.missing[ext] = 0  # pretend it was lost: the router retransmits it
        if twcc >= 0:
            value = twcc
            unwrapped = _extend(self._twcc_last if self._twcc_last >= 0 else value, value)
            self._twcc_last = max(self._twcc_last, unwrapped)
            self._arrivals[unwrapped] = now
            self._media_ssrc = ssrc

    def _pli_gap(self) -> float:
        return self.pli_interval * self.rng.uniform(0.5, 1.5) if self.pli_interval else 1e18

    def poll(self, now: float) -> list[bytes]:
        """Datagrams due by ``now``."""
        out, self._pending = self._pending, []
        for ssrc, source in self._sources.items():
            if source.missing:
                seqs = [s & 0xFFFF for s, n in source.missing.items() if n < self.nack_retries]
                for s in list(source.missing):
                    source.missing[s] += 1
                    if source.missing[s] >= self.nack_retries:
                        del source.missing[s]
                if seqs:
                    out.append(build_rtcp_compound([GenericNack.from_seqs(self.ssrc, ssrc,
                                                                          seqs[:64])]))
            if source.kind == "video" and now >= source.next_pli:
                source.next_pli = now + self._pli_gap()
                out.append(build_rtcp_compound([Pli(self.ssrc, ssrc)]))
        if self._next_rr is None:
            self._next_rr = now + self.rng.uniform(0.1, RR_INTERVAL)
        elif now >= self._next_rr and self._sources:
            self._next_rr = now + RR_INTERVAL * self.rng.uniform(0.5, 1.5)
            out.append(self._receiver_report())
        if self._next_twcc is None:
            self._next_twcc = now + TWCC_INTERVAL
        elif now >= self._next_twcc:
            self._next_twcc = now + TWCC_INTERVAL
            if self._arrivals:
                out.append(self._transport_feedback())
        return out

    def _receiver_report(self) -> bytes:
        blocks = []
        for ssrc, s in list(self._sources.items())[:31]:
            expected = s.highest - s.base + 1
            lost = max(0, expected - s.received)
            interval_expected = expected - s.expected_prior
            interval_lost = interval_expected - (s.received - s.received_prior)
            fraction = (interval_lost << 8) // interval_expected \
                if interval_expected > 0 and interval_lost > 0 else 0
            s.expected_prior, s.received_prior = expected, s.received
            blocks.append(ReportBlock(ssrc, min(fraction, 255), min(lost, 0x7FFFFF),
                                      s.highest & 0xFFFFFFFF))
        return build_rtcp_compound([ReceiverReport(self.ssrc, tuple(blocks)),
                                    _sdes(self.ssrc, self.cname)])

    def _transport_feedback(self) -> bytes:
        arrivals, self._arrivals = self._arrivals, {}
        first, last = min(arrivals), max(arrivals)
        last = min(last, first + 0xFFFF - 1)
        first_time = min(arrivals.values())
        reference = int(first_time / _REFERENCE_UNIT)
        previous = reference * _REFERENCE_UNIT
        deltas: list[int | None] = []
        for seq in range(first, last + 1):
            at = arrivals.get(seq)
            if at is None:
                deltas.append(None)
                continue
            ticks = max(-0x8000, min(0x7FFF, round((at - previous) / _TICK)))
            deltas.append(ticks)
            previous += ticks * _TICK
        wrapped = reference & 0xFFFFFF
        if wrapped > 0x7FFFFF:
            wrapped -= 0x1000000
        feedback = TransportCc.from_deltas(self.ssrc, self._media_ssrc, first & 0xFFFF, wrapped,
                                           self._twcc_count & 0xFF, deltas)
        self._twcc_count += 1
        return build_rtcp_compound([feedback])


def _extend(highest: int, seq: int) -> int:
    """``seq`` (16 bits) unwrapped next to the extended ``highest``."""
    candidate = (highest & ~0xFFFF) | seq
    if candidate - highest > 0x8000:
        candidate -= 0x10000
    elif highest - candidate > 0x8000:
        candidate += 0x10000
    return candidate


def _payload(packet: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    first = packet[0]
    offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if first & 0x10 and len(packet) >= offset + 4:
        offset += 4 + 4 * (packet[offset + 2] << 8 | packet[offset + 3])
    return packet[offset:]


__all__ = ["NTP_OFFSET", "ReceiverFeedback", "SenderReports", "ntp_timestamp"]
