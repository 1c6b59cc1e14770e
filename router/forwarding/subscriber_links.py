"""The router's side of each subscriber's downlink: transport-wide sequence numbers, the
send history TWCC feedback refers to, the bandwidth estimate, the RTT and the repair budget.

One :class:`SubscriberLink` per subscriber peer connection (transport-wide numbers span every
track sent on it). The per-packet work is in :mod:`router.forwarding.routing`: it takes the
next number from :attr:`SubscriberLink.seq` and stores the send time and size in two ring
lists, with the outgoing packet built by one ``Struct.pack`` of the fixed header plus a
leading transport-cc element (:func:`transport_tail` prepares the shared rest once per
incoming packet). Putting the element first in the block keeps the per-copy cost at one pack
and one concatenation, as for subscribers without it.

A NACK storm cannot amplify: retransmissions to a subscriber spend a credit that grows by
``rtx_share`` of the media bytes sent to it (capped at ``rtx_burst_bytes``), and the same
packet is not sent again within one RTT.
"""

from __future__ import annotations

import struct
from typing import Final

from router.forwarding.gcc import SendSideEstimator
from router.forwarding.link_config import LinkConfig
from router.forwarding.packet import rewrite_extensions
from router.forwarding.state import Downstream, Participant
from router.rtp import RtpDecodeError, TransportCc
from router.transport import fastpath

__all__ = [
    "RING_MASK",
    "TW_ONE_BYTE",
    "TW_TWO_BYTE",
    "SubscriberLink",
    "stamp_transport_seq",
    "transport_tail",
]

RING_SIZE: Final = 1 << 13
RING_MASK: Final = RING_SIZE - 1
TW_ONE_BYTE: Final = struct.Struct("!BBHIIHHBHx")
"""Fixed header, one-byte extension block header, transport-cc element (id|len, seq, pad)."""
TW_TWO_BYTE: Final = struct.Struct("!BBHIIHHBBH")
"""Fixed header, two-byte extension block header, transport-cc element (id, 2, seq)."""
_ONE_BYTE: Final = 0xBEDE
_twcc_results = fastpath.twcc_results()
"""The compiled feedback loop of :meth:`SubscriberLink.on_twcc`, None on the reference path."""
_U32: Final = 0xFFFFFFFF

TransportTail = tuple[int, bool, int, int, bytes]
"""``(first byte, two-byte form, profile, words incl. our element, bytes after the block
header)`` of a packet that gets a transport-cc element in front of its extensions."""


def transport_tail(packet: bytes, table: bytes | None, tw_id: int) -> TransportTail | None:
    """What every stamped copy of ``packet`` shares; None if it cannot take the element here
    (CSRCs present, or a one-byte block with an id above 14, or an unknown profile).

    Raises :class:`RtpDecodeError` on a malformed extension block.
    """
    b0 = packet[0]
    if b0 & 0x0F:
        return None
    if table is not None:
        packet = rewrite_extensions(packet, table) or packet
    if not b0 & 0x10:
        if tw_id > 14:
            return b0 | 0x10, True, 0x1000, 1, packet[12:]
        return b0 | 0x10, False, _ONE_BYTE, 1, packet[12:]
    n = len(packet)
    if n < 16:
        raise RtpDecodeError(f"RTP header extension truncated: {n} bytes")
    profile = (packet[12] << 8) | packet[13]
    words = (packet[14] << 8) | packet[15]
    if 16 + 4 * words > n:
        raise RtpDecodeError(f"RTP header extension exceeds packet: needs {16 + 4 * words}")
    if profile == _ONE_BYTE:
        if tw_id > 14:
            return None
        return b0, False, profile, words + 1, packet[16:]
    if profile & 0xFFF0 == 0x1000:
        return b0, True, profile, words + 1, packet[16:]
    return None


def stamp_transport_seq(d: Downstream, packet: bytes, now: float) -> bytes:
    """``packet`` (already rewritten for ``d``) with a transport-cc element, recorded in the
    history; used off the common path (retransmissions, probes). Unchanged if impossible."""
    link = d.tw
    if link is None:
        return packet
    try:
        tail = transport_tail(packet, None, d.tw_id)
    except RtpDecodeError:
        return packet
    if tail is None:
        return packet
    _b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    s = link.take(len(packet) + 4, now)
    b0, two, profile, words, rest = tail
    if two:
        return TW_TWO_BYTE.pack(b0, b1, seq, ts, ssrc, profile, words, d.tw_id, 2, s) + rest
    return TW_ONE_BYTE.pack(b0, b1, seq, ts, ssrc, profile, words, d.tw_hdr, s) + rest


class SubscriberLink:
    """Downlink state of one subscriber connection (see the module docstring)."""

    __slots__ = (
        "_acked_seq",
        "_rtx_mark",
        "_rtx_recent",
        "_sr_times",
        "estimator",
        "feedback_packets",
        "part",
        "probe_backoff",
        "probe_bytes",
        "probe_first",
        "probe_from",
        "probe_last",
        "probe_next",
        "probe_rate",
        "probe_target",
        "probe_until",
        "probes_failed",
        "probes_ok",
        "rtt",
        "rtx_bytes",
        "rtx_credit",
        "rtx_dropped",
        "sent_at",
        "seq",
        "sizes",
        "twcc",
    )

    def __init__(self, part: Participant, config: LinkConfig, initial: int, ceiling: int) -> None:
        self.part = part
        self.twcc = False
        """True once a subscription negotiated transport-cc (numbers are being stamped)."""
        self.seq = 0
        """Next transport-wide sequence number (unwrapped; the wire carries the low 16 bits)."""
        self.sent_at: list[float] = [0.0] * RING_SIZE
        self.sizes: list[int] = [0] * RING_SIZE
        self._acked_seq = -1
        self.estimator = SendSideEstimator(initial, 50_000, ceiling)
        self.rtt = 0.1
        self._sr_times: dict[tuple[int, int], float] = {}
        self.rtx_credit = float(config.rtx_burst_bytes)
        self._rtx_mark = 0
        self._rtx_recent: dict[tuple[int, int], float] = {}
        self.rtx_dropped = 0
        self.rtx_bytes = 0
        self.feedback_packets = 0
        self.probe_until: float | None = None
        """End of the running probe (None: none running)."""
        self.probe_from = 0.0
        self.probe_next = 0.0
        self.probe_rate = 0.0
        self.probe_target: Downstream | None = None
        self.probe_bytes = 0
        self.probe_first = 0.0
        self.probe_last = 0.0
        self.probe_backoff = 1.0
        self.probes_ok = 0
        self.probes_failed = 0

    # -- probing --------------------------------------------------------------------------

    def may_probe(self, now: float) -> bool:
        """True when no probe runs, the backoff has passed and feedback can measure it."""
        return self.twcc and self.probe_until is None and now >= self.probe_next

    def start_probe(self, d: Downstream, rate: float, now: float, duration: float) -> None:
        """Send ``rate`` bits/s of redundant copies of ``d``'s recent packets for a while."""
        self.probe_target = d
        self.probe_rate = rate
        self.probe_from = now
        self.probe_until = now + duration
        self.probe_next = now
        self.probe_bytes = 0
        self.probe_first = self.probe_last = 0.0

    def probe_budget(self, now: float, tick: float) -> int:
        """Bytes of probe traffic to send now (0 when none is due)."""
        until = self.probe_until
        if until is None or now < self.probe_next or now >= until:
            return 0
        elapsed = min(now - self.probe_next + tick, 2 * tick)
        self.probe_next = now + tick
        return int(self.probe_rate * elapsed / 8)

    def finish_probe(self, now: float) -> None:
        """Once feedback about the whole probe is in, turn it into an estimate floor."""
        until = self.probe_until
        if until is None or now < until + max(0.15, 2 * self.rtt):
            return
        self.probe_until = None
        self.probe_target = None
        span = self.probe_last - self.probe_first
        rate = 8.0 * self.probe_bytes / span if span > 0.05 else 0.0
        if rate > 0 and self.estimator.on_probe_result(rate):
            self.probes_ok += 1
            self.probe_backoff = 1.0
        else:
            self.probes_failed += 1
            self.probe_backoff = min(16.0, self.probe_backoff * 2)
        self.probe_next = now + self.probe_backoff

    def take(self, size: int, now: float) -> int:
        """Number one outgoing packet (slow path); returns its 16-bit transport sequence."""
        s = self.seq
        self.seq = s + 1
        slot = s & RING_MASK
        self.sent_at[slot] = now
        self.sizes[slot] = size
        return s & 0xFFFF

    # -- feedback -------------------------------------------------------------------------

    def on_twcc(self, fb: TransportCc, now: float) -> bool:
        """Feed one feedback packet to the estimator; False if it names nothing we sent."""
        latest = self.seq - 1
        if latest < 0:
            return False
        base = latest - ((latest - fb.base_seq) & 0xFFFF)
        count = len(fb.statuses)
        if base < 0 or base + count - 1 > latest or latest - base >= RING_SIZE:
            return False
        t = fb.reference_time * 0.064
        sent_at, sizes = self.sent_at, self.sizes
        probing = self.probe_until is not None
        if not probing and _twcc_results is not None:
            # The compiled twin of the loop below (router/forwarding/_fanout.c), outside probes.
            fast = _twcc_results(fb.statuses, fb.deltas, t, base, sent_at, sizes, RING_MASK)
            if fast is not None:
                self.feedback_packets += 1
                self.estimator.on_feedback(fast, now)
                return True
        results: list[tuple[float, float | None, int]] = []
        deltas = iter(fb.deltas)
        p_from, p_until = self.probe_from, self.probe_until or 0.0
        for i, status in enumerate(fb.statuses):
            slot = (base + i) & RING_MASK
            if status in (1, 2):
                t += next(deltas) * 250e-6
                sent = sent_at[slot]
                results.append((sent, t, sizes[slot]))
                if probing and p_from <= sent <= p_until:
                    # Everything acknowledged that was sent during the probe, media included.
                    if not self.probe_bytes:
                        self.probe_first = t
                    self.probe_bytes += sizes[slot]
                    self.probe_last = t
            elif status == 0:
                results.append((sent_at[slot], None, sizes[slot]))
        # Arrival times are on the subscriber's clock: only their differences matter.
        self.feedback_packets += 1
        self.estimator.on_feedback(results, now)
        return True

    def note_sender_report(self, ssrc: int, ntp_timestamp: int, now: float) -> None:
        """A translated SR went out: remember when, to take the RTT from the RR about it."""
        times = self._sr_times
        if len(times) > 64:
            for key in [k for k, t in times.items() if t < now - 10.0]:
                del times[key]
        times[(ssrc, (ntp_timestamp >> 16) & _U32)] = now

    def on_report_block(
        self, ssrc: int, fraction_lost: int, lsr: int, dlsr: int, now: float
    ) -> None:
        """An RR block about one of our outgoing streams: RTT and (without TWCC) loss."""
        sent = self._sr_times.get((ssrc, lsr)) if lsr else None
        if sent is not None:
            sample = now - sent - dlsr / 65536.0
            if 0 <= sample < 10.0:
                self.rtt += (sample - self.rtt) / 8.0
        if not self.twcc:
            self.estimator.on_loss(fraction_lost / 256.0, now)

    # -- repair budget ---------------------------------------------------------------------

    def nack_filter(self, d: Downstream, seqs: list[int], now: float) -> list[int]:
        """Drop sequence numbers already retransmitted to ``d`` within one RTT."""
        recent = self._rtx_recent
        if len(recent) > 2048:
            horizon = now - 2 * self.rtt
            for key in [k for k, t in recent.items() if t < horizon]:
                del recent[key]
        window = now - self.rtt
        out = []
        for seq in seqs:
            key = (d.ssrc, seq & 0xFFFF)
            last = recent.get(key)
            if last is not None and last > window:
                continue
            recent[key] = now
            out.append(seq)
        return out

    def spend(self, packets: list[bytes], config: LinkConfig) -> list[bytes]:
        """Keep what the retransmission credit allows; the rest is dropped and counted."""
        octets = sum(d.octets for d in self.part.downstreams.values())
        gained = octets - self._rtx_mark
        self._rtx_mark = octets
        credit = self.rtx_credit + config.rtx_share * max(0, gained)
        self.rtx_credit = min(float(config.rtx_burst_bytes), credit)
        kept: list[bytes] = []
        for packet in packets:
            size = len(packet)
            if size > self.rtx_credit:
                self.rtx_dropped += 1
                continue
            self.rtx_credit -= size
            self.rtx_bytes += size
            kept.append(packet)
        return kept

    def stats(self) -> dict[str, float]:
        """Figures for the stats endpoint."""
        est = self.estimator
        return {
            "estimate_bps": float(est.estimate),
            "acked_bps": est.acked_bitrate(),
            "loss": est.last_loss,
            "rtt_ms": 1000.0 * self.rtt,
            "twcc": float(self.twcc),
            "feedback_packets": float(self.feedback_packets),
            "rtx_bytes": float(self.rtx_bytes),
            "rtx_dropped": float(self.rtx_dropped),
            "probes_ok": float(self.probes_ok),
            "probes_failed": float(self.probes_failed),
        }
