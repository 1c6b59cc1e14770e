"""RTCP the forwarder originates or translates (builders; the dispatch lives in the forwarder).

* Sender reports are translated per subscriber: NTP time kept (it is the publisher's wallclock,
  which is what lip sync needs), RTP time moved through the subscriber's timestamp offset, and
  the counts replaced by what we actually sent on that outgoing SSRC.
* Receiver reports towards publishers come from :class:`~router.forwarding.receive.ReceiveStats`.
* NACKs from subscribers are served from the packet cache, rewritten exactly as the original
  was (same outgoing sequence number), as RTX when the subscriber negotiated it; what the cache
  no longer has is returned as incoming sequence numbers to NACK upstream.
"""

from __future__ import annotations

import struct
from typing import Final

from router.forwarding.packet import abs_send_time, build_rtx, outgoing_tail
from router.forwarding.state import Downstream, Participant, Stream
from router.forwarding.subscriber_links import stamp_transport_seq
from router.rtp import (
    Fir,
    FirEntry,
    GenericNack,
    Pli,
    ReceiverReport,
    RtcpPacket,
    RtpDecodeError,
    Sdes,
    SdesChunk,
    SdesItem,
    SenderReport,
    build_rtcp_compound,
)

__all__ = [
    "keyframe_request",
    "receiver_report",
    "retransmissions",
    "translate_sender_report",
    "upstream_nack",
]

_HDR: Final = struct.Struct("!BBHII")
_U32: Final = 0xFFFFFFFF
_MAX_BLOCKS: Final = 31


def translate_sender_report(sr: SenderReport, stream: Stream) -> list[tuple[str, bytes]]:
    """One SR per subscriber currently anchored on ``stream`` (others have no valid offset)."""
    out: list[tuple[str, bytes]] = []
    epoch = stream.epoch
    for d in stream.fanout:
        if d.epoch != epoch:
            continue
        translated = SenderReport(
            ssrc=d.ssrc,
            ntp_timestamp=sr.ntp_timestamp,
            rtp_timestamp=(sr.rtp_timestamp + d.ts_offset) & _U32,
            packet_count=d.packets & _U32,
            octet_count=d.octets & _U32,
        )
        out.append((d.subscriber, translated.build()))
    return out


def receiver_report(
    part: Participant, reporter_ssrc: int, cname: str | None, now: float
) -> bytes | None:
    """A compound RR (+ SDES CNAME) about every primary stream ``part`` publishes, or None."""
    blocks = [
        stream.receive.report_block(stream.ssrc, now)
        for stream in part.streams.values()
        if not stream.is_rtx and stream.receive.max_ext >= 0
    ]
    if not blocks:
        return None
    packets: list[RtcpPacket] = [
        ReceiverReport(reporter_ssrc, tuple(blocks[i : i + _MAX_BLOCKS]))
        for i in range(0, len(blocks), _MAX_BLOCKS)
    ]
    if cname is not None:
        item = SdesItem(1, cname.encode()[:255])
        packets.append(Sdes((SdesChunk(reporter_ssrc, (item,)),)))
    return build_rtcp_compound(packets)


def keyframe_request(stream: Stream, reporter_ssrc: int) -> bytes:
    """PLI, or FIR with a fresh request sequence number (RFC 5104 §4.3.1.1), for ``stream``."""
    if stream.track.spec.keyframe_request == "fir":
        stream.fir_seq = (stream.fir_seq + 1) & 0xFF
        return Fir(reporter_ssrc, (FirEntry(stream.ssrc, stream.fir_seq),)).build()
    return Pli(reporter_ssrc, stream.ssrc).build()


def retransmissions(
    d: Downstream, out_seqs: list[int], limit: int, now: float = 0.0, *, stamp: bool = True
) -> tuple[list[bytes], list[int]]:
    """Serve a subscriber's NACK: ``(packets to send it, incoming ext seqs to NACK upstream)``.

    Outgoing numbers map back to the current source through the subscription's offset; those
    from before the last switch or beyond what was sent are ignored (nobody can repair them).
    A retransmission carries the abs-send-time of ``now``, when it is sent again.
    ``stamp=False`` leaves out the transport-wide number: a caller that may still drop some
    of the packets (repair budget, probe budget) stamps only those it sends, because a number
    taken and never sent reads as a lost packet in the subscriber's feedback.
    """
    stream = d.stream
    if stream is None or d.epoch != stream.epoch:
        return [], []
    cache = stream.cache
    spec = d.spec
    rtx_pts = spec.rtx_payload_types
    packets: list[bytes] = []
    missing: list[int] = []
    last = d.last_out_ext
    for seq in out_seqs[:limit]:
        out_ext = last + (((seq - last + 0x8000) & 0xFFFF) - 0x8000)
        if out_ext > last:
            continue
        ext = out_ext - d.seq_offset
        if ext < d.min_ext:
            continue
        original = cache.get(ext) if cache is not None else None
        if original is None:
            missing.append(ext)
            continue
        rewritten = rewrite_packet(d, original, out_ext, now, stamp=stamp)
        if rewritten is None:
            continue
        if spec.rtx_ssrc is not None:
            rtx_pt = rtx_pts.get(rewritten[1] & 0x7F)
            if rtx_pt is not None:
                d.rtx_seq = (d.rtx_seq + 1) & 0xFFFF
                rewritten = build_rtx(rewritten, spec.rtx_ssrc, d.rtx_seq, rtx_pt)
        packets.append(rewritten)
    return packets, missing


def rewrite_packet(
    d: Downstream, original: bytes, out_ext: int, now: float = 0.0, *, stamp: bool = True
) -> bytes | None:
    """``original`` rewritten for ``d`` as the forwarding path did (None if not for it)."""
    b0, b1, _seq, ts, _ssrc = _HDR.unpack_from(original)
    ob1 = d.b1_table[b1] if d.b1_table else -1
    if ob1 < 0:
        return None
    tail: bytes | memoryview = memoryview(original)[12:]
    key = d.tail_key
    if key is not None and (key[1] or b0 & 0x10):
        try:
            b0, tail = outgoing_tail(original, key[0], key[1], abs_send_time(now))
        except RtpDecodeError:
            return None
    header = _HDR.pack(b0, ob1, out_ext & 0xFFFF, (ts + d.ts_offset) & _U32, d.ssrc)
    if stamp and d.tw is not None:
        return stamp_transport_seq(d, header + tail, now)
    return header + tail


def upstream_nack(
    stream: Stream, exts: list[int], now: float, suppress: float, reporter_ssrc: int
) -> bytes | None:
    """A NACK to the publisher for cache misses, leaving out packets NACKed < ``suppress`` ago.

    Several subscribers usually lose the same packet upstream of the router (or the router
    lost it); one request is enough. The suppression table is pruned as it grows.
    """
    nacked = stream.nacked
    horizon = now - suppress
    if len(nacked) > 256:
        for ext in [e for e, t in nacked.items() if t < horizon]:
            del nacked[ext]
    fresh = [e for e in exts if nacked.get(e, horizon - 1.0) < horizon]
    if not fresh:
        return None
    for ext in fresh:
        nacked[ext] = now
    return GenericNack.from_seqs(reporter_ssrc, stream.ssrc, fresh).build()
