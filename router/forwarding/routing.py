"""The per-packet path: one incoming RTP packet -> one rewritten packet per subscriber.

Cost model (the goal is well under 5 µs per output packet next to ~4 µs of SRTP):

* once per incoming packet: one ``unpack_from`` of the fixed header, the layout check, two dict
  lookups (participant, SSRC), the sequence/duplicate/jitter update, a cache store (two list
  writes) and, only if some subscriber needs different extension ids, one rewritten copy per
  distinct id mapping (subscribers negotiated by the same browser share one);
* abs-send-time (when the subscriber negotiated it): the router's own send time (the batch's
  ``now``) goes into every copy, inserted if the publisher sent none. Not the publisher's
  value: browsers that negotiate transport-cc send no abs-send-time at all, and a subscriber's
  REMB estimator sees every track of its BUNDLE transport together, so values from several
  publishers' clocks (or a source switch) would look like huge delay jumps; the router's
  clock measures the path it controls, router to subscriber. Computed once per incoming
  packet and shared by subscribers with the same extension mapping;
* once per subscriber: a 256-entry table index for the payload type, one ``Struct.pack`` of the
  12-byte fixed header (SSRC, sequence number, timestamp, marker|PT) and one concatenation with
  the shared tail of the packet. That is a single copy of the packet, and the result is
  ``bytes``, which is what ``PeerTransport.send_rtp``/pylibsrtp want (a bytearray rewritten in
  place would need a second copy to become ``bytes``).

No objects per packet beyond the output bytes and its ``(subscriber, bytes)`` tuple.
"""

from __future__ import annotations

import struct
from typing import Final

from router.forwarding.counters import Counters
from router.forwarding.layers import complete_switches, continue_vp8, rebase_vp8
from router.forwarding.packet import abs_send_time, outgoing_tail, unwrap_rtx
from router.forwarding.receive import ACCEPTED, DUPLICATE, LATE, RESTARTED, TOO_OLD
from router.forwarding.state import Downstream, Stream, next_epoch
from router.forwarding.subscriber_links import (
    RING_MASK,
    TW_ONE_BYTE,
    TW_TWO_BYTE,
    TransportTail,
    transport_tail,
)
from router.forwarding.vp8 import Vp8Info, vp8_info
from router.rtp import RtpDecodeError
from router.transport import fastpath

__all__ = ["anchor", "fan_out_from", "forward", "forward_rtx"]

_fan_out = fastpath.fan_out()
"""The compiled per-subscriber loop (router/forwarding/_fanout.c), None on the reference path."""
_DONE: Final = 0
_NEED_TW_TAIL: Final = 1
_NEED_TAIL: Final = 2

_HDR: Final = struct.Struct("!BBHII")
_PACK: Final = _HDR.pack
_TW1: Final = TW_ONE_BYTE.pack
_TW2: Final = TW_TWO_BYTE.pack
_TS_MASK: Final = 0xFFFFFFFF
_MISSING: Final = (0, False, 0, 0, b"")
"""Sentinel for "no prepared tail yet" (None means "cannot take the element")."""

Output = list[tuple[str, bytes]]


def anchor(d: Downstream, stream: Stream, ext: int, ts: int, now: float) -> None:
    """Map ``stream`` onto ``d``'s outgoing numbering starting at the packet ``(ext, ts)``.

    Sequence continues at last + 1 (no gap for the receiver to NACK into a stream it never
    had); the timestamp advances by the wall time since the last packet sent, so jitter buffers
    and A/V sync see a plausible clock. Packets of this source older than ``ext`` are dropped
    afterwards: their outgoing numbers would collide with what the old source used.
    """
    out_ext = d.last_out_ext + 1
    last_time = d.last_out_time
    if last_time is None:
        out_ts = d.last_out_ts
    else:
        elapsed = now - last_time
        step = round(elapsed * stream.clock_rate) if elapsed > 0 else 0
        out_ts = (d.last_out_ts + max(1, step)) & _TS_MASK
    d.seq_offset = out_ext - ext
    d.ts_offset = (out_ts - ts) & _TS_MASK
    d.min_ext = ext
    d.epoch = stream.epoch


def restart(stream: Stream, counters: Counters) -> None:
    """The publisher restarted this SSRC's numbering: a new epoch, an empty cache."""
    stream.epoch = next_epoch()
    if stream.cache is not None:
        stream.cache.clear()
    stream.nacked.clear()
    if stream.gaps is not None:
        stream.gaps.forget()
    counters.rtp_restarts += 1


def forward(
    stream: Stream,
    packet: bytes,
    b0: int,
    b1: int,
    seq: int,
    ts: int,
    plen: int,
    now: float,
    out: Output,
    counters: Counters,
) -> int:
    """Account for a primary-stream packet and queue one rewritten copy per subscriber."""
    if (b1 & 0x7F) not in stream.track.pts:
        counters.rtp_bad_payload_type += 1
        return 0
    rs = stream.receive
    hi = rs.max_ext
    disposition = rs.update(seq, ts, now)
    if disposition > RESTARTED:
        if disposition == DUPLICATE:
            counters.rtp_duplicate += 1
        elif disposition == TOO_OLD:
            counters.rtp_too_old += 1
        else:
            counters.rtp_out_of_range += 1
        return 0
    if disposition == RESTARTED:
        restart(stream, counters)
    ext = rs.last_ext
    gaps = stream.gaps
    if gaps is not None:
        if ext > hi + 1 and disposition == ACCEPTED and hi >= 0:
            gaps.on_gap(hi + 1, ext, now)
        elif disposition == LATE:
            gaps.on_late(ext, now)
    cache = stream.cache
    if cache is not None:
        slot = ext & cache.mask  # PacketCache.put() inlined
        cache.packets[slot] = packet
        cache.exts[slot] = ext
    stream.octets += plen
    info: Vp8Info | None = None
    ptail = 0
    if stream.vp8:
        # Simulcast VP8: where the picture id / TL0PICIDX are, and whether a keyframe starts
        # (subscriptions waiting to switch to this layer move over on it).
        hl = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            hl += 4 + (((packet[hl + 2] << 8) | packet[hl + 3]) << 2)
        ptail = len(packet) - hl
        info = vp8_info(packet, hl, hl + plen)
        if info is not None and info.keyframe:
            if info.height:
                stream.height = info.height
            if stream.waiting:
                complete_switches(stream)
    if not stream.fanout:
        return 0
    return fan_out_from(stream, packet, b0, b1, ext, ts, plen, now, out, counters, info, ptail)


def fan_out_from(
    stream: Stream,
    packet: bytes,
    b0: int,
    b1: int,
    ext: int,
    ts: int,
    plen: int,
    now: float,
    out: Output,
    counters: Counters,
    info: Vp8Info | None = None,
    ptail: int = 0,
    start: int = 0,
    before: int | None = None,
) -> int:
    """:func:`forward`'s copies for ``stream.fanout[start:]``; counts ``rtp_forwarded`` for
    every copy queued since ``out`` held ``before`` items (default: now). ``start`` > 0 resumes
    a fan-out the compiled route (``_fanout.route``) stopped at a step it leaves to Python."""
    fanout = stream.fanout
    epoch = stream.epoch
    n = len(packet) + 4
    if before is None:
        before = len(out)
    # Prepared tails per subscriber mapping, for this packet only; the compiled loop takes None
    # for "none yet", so a packet whose copies need none allocates nothing.
    tails: dict[tuple[bytes | None, int], tuple[int, bytes | memoryview]] | None = None
    tw_tails: dict[tuple[bytes | None, int], TransportTail | None] | None = None
    fan = _fan_out
    if fan is not None and info is None and type(packet) is bytes:
        # The compiled loop takes the steady state and stops where it leaves a step to the
        # reference below (see router/forwarding/_fanout.c): the same state changes, in order.
        i = start
        while True:
            r = fan(fanout, i, epoch, ext, ts, b0, b1, packet, n, plen, now, RING_MASK, out,
                    tw_tails, tails)  # fmt: skip
            i, stop = r >> 2, r & 3
            if stop == _DONE:
                break
            d = fanout[i]
            if stop == _NEED_TW_TAIL:
                twk = d.tw_key
                if tw_tails is None:
                    tw_tails = {}
                try:
                    tw_tails[twk] = transport_tail(packet, twk[0], twk[1])
                except RtpDecodeError:
                    counters.rtp_malformed += 1
                    break
                continue
            if stop == _NEED_TAIL:
                key = d.tail_key
                assert key is not None
                if tails is None:
                    tails = {}
                try:
                    tails[key] = outgoing_tail(packet, key[0], key[1], abs_send_time(now))
                except RtpDecodeError:
                    counters.rtp_malformed += 1
                    break
                continue
            if tw_tails is None:
                tw_tails = {}
            if tails is None:
                tails = {}
            if _copy(d, stream, packet, b0, b1, ext, ts, n, plen, now, info, ptail, tails,
                     tw_tails, out, counters) < 0:  # fmt: skip
                break
            i += 1
    else:
        tails, tw_tails = {}, {}
        for d in fanout[start:] if start else fanout:
            if _copy(d, stream, packet, b0, b1, ext, ts, n, plen, now, info, ptail, tails,
                     tw_tails, out, counters) < 0:  # fmt: skip
                break
    sent = len(out) - before
    counters.rtp_forwarded += sent
    return sent


def _copy(
    d: Downstream,
    stream: Stream,
    packet: bytes,
    b0: int,
    b1: int,
    ext: int,
    ts: int,
    n: int,
    plen: int,
    now: float,
    info: Vp8Info | None,
    ptail: int,
    tails: dict[tuple[bytes | None, int], tuple[int, bytes | memoryview]],
    tw_tails: dict[tuple[bytes | None, int], TransportTail | None],
    out: Output,
    counters: Counters,
) -> int:
    """One subscription's copy of ``packet`` (the reference the compiled loop is tested
    against): 1 if queued, 0 if skipped, -1 if the packet is malformed for this subscriber's
    mapping (counted; the caller stops the fan-out, as nothing after would fare better).

    ``tails``/``tw_tails`` share the prepared packet tails among subscribers with equal
    extension mappings for this one packet; ``n`` is the outgoing size recorded for TWCC.
    """
    if d.epoch != stream.epoch:
        anchor(d, stream, ext, ts, now)
        if d.sim is not None:
            rebase_vp8(d.sim, info)
    elif ext < d.min_ext:
        counters.rtp_too_old += 1
        return 0
    ob1 = d.b1_table[b1]
    if ob1 < 0:
        return 0
    out_ext = ext + d.seq_offset
    out_ts = (ts + d.ts_offset) & _TS_MASK
    tw = d.tw
    twt: TransportTail | None = None
    if tw is not None:
        # Transport-wide number for this subscriber's estimate (see subscriber_links).
        twk = d.tw_key
        twt = tw_tails.get(twk, _MISSING)
        if twt is _MISSING:
            try:
                twt = tw_tails[twk] = transport_tail(packet, twk[0], twk[1])
            except RtpDecodeError:
                counters.rtp_malformed += 1
                return -1
    if twt is not None and tw is not None:
        s = tw.seq
        tw.seq = s + 1
        slot = s & RING_MASK
        tw.sent_at[slot] = now
        tw.sizes[slot] = n
        tb0, two, profile, words, rest = twt
        if two:
            data = _TW2(tb0, ob1, out_ext & 0xFFFF, out_ts, d.ssrc, profile, words,
                        d.tw_id, 2, s & 0xFFFF) + rest  # fmt: skip
        else:
            data = _TW1(tb0, ob1, out_ext & 0xFFFF, out_ts, d.ssrc, profile, words,
                        d.tw_hdr, s & 0xFFFF) + rest  # fmt: skip
    else:
        key = d.tail_key
        t: bytes | memoryview
        if key is None or (not key[1] and not b0 & 0x10):
            ob0, t = b0, memoryview(packet)[12:]
        else:
            cached = tails.get(key)
            if cached is None:
                try:
                    cached = outgoing_tail(packet, key[0], key[1], abs_send_time(now))
                except RtpDecodeError:
                    counters.rtp_malformed += 1
                    return -1
                tails[key] = cached
            ob0, t = cached
        data = _PACK(ob0, ob1, out_ext & 0xFFFF, out_ts, d.ssrc) + t
    if info is not None and d.sim is not None:
        data = continue_vp8(d.sim, data, len(data) - ptail, info)
    out.append((d.subscriber, data))
    if out_ext > d.last_out_ext:
        d.last_out_ext = out_ext
        d.last_out_ts = out_ts
        d.last_out_time = now
    d.packets += 1
    d.octets += plen
    return 1


def forward_rtx(
    stream: Stream,
    packet: bytes,
    header_length: int,
    plen: int,
    now: float,
    out: Output,
    counters: Counters,
) -> int:
    """An RTX repair from the publisher: unwrap it and forward it as the late original.

    The original's duplicate filter then drops repairs of packets that did arrive, and a
    repaired gap reaches subscribers under the outgoing number they are waiting for.
    """
    primary = stream.layer.stream
    if primary is None:
        counters.rtp_unknown_ssrc += 1
        return 0
    apt = stream.track.spec.rtx_payload_types.get(packet[1] & 0x7F)
    if apt is None:
        counters.rtp_bad_payload_type += 1
        return 0
    try:
        original = unwrap_rtx(packet, header_length, plen, primary.ssrc, apt)
    except RtpDecodeError:
        counters.rtp_malformed += 1
        return 0
    if original is None:
        counters.rtp_padding_probe += 1
        return 0
    b0, b1, seq, ts, _ = _HDR.unpack_from(original)
    return forward(primary, original, b0, b1, seq, ts, plen - 2, now, out, counters)
