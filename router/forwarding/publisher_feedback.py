"""Bandwidth feedback the router sends its publishers: transport-cc, or REMB where only
goog-remb was negotiated.

A browser estimates its uplink from this feedback (send-side BWE): without it Chromium stays
near its start bitrate and never learns that the uplink got worse. One object per publisher
peer connection (transport-wide sequence numbers span all its tracks).

:class:`TwccRecorder` keeps the arrival time of every packet since the last feedback and turns
them into TransportCc packets (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1):
reference time in 64 ms units, receive deltas in 250 µs ticks, each relative to the previous
received packet (the rounding error is carried, as libwebrtc does). Packets that arrive after
their sequence number was reported lost are counted, not reported again.

:class:`RembController` is a loss-based controller (GCC's loss part, draft-ietf-rmcat-gcc-02
§6) over the loss the router sees on the publisher's streams: above 10 % loss it cuts the
bitrate to ``rate x (1 - loss/2)``, below 2 % it raises it by 8 % per interval, bounded by the
configured range. The router cannot run a delay-based receive-side estimator without the
publisher's abs-send-time on every packet, and that is not needed to stop an uplink drowning.
"""

from __future__ import annotations

from typing import Final

from router.forwarding.link_config import LinkConfig
from router.forwarding.state import Participant
from router.forwarding.transport_seq import read_transport_seq
from router.rtp import Remb, TransportCc
from router.rtp.twcc import compiled_twcc, statuses_for

__all__ = ["MAX_PENDING", "RembController", "TwccRecorder", "py_arrival_deltas"]

_MAX_STATUSES: Final = 1 << 13
"""Statuses per feedback packet at most; a longer span is split over several packets."""
MAX_PENDING: Final = 1 << 14
"""Arrivals kept between feedbacks at most (a flood is reported in part, never stored whole)."""
_TICK_US: Final = 250
_REF_US: Final = 64_000


def py_arrival_deltas(
    arrivals: dict[int, float], base: int, stop: int
) -> tuple[int, bytes, tuple[int, ...]]:
    """Reference time (64 ms units, not wrapped), statuses and receive deltas (250 µs ticks)
    for extended numbers ``base..stop-1``; ``base`` must have arrived. Each delta is relative to
    the previous received packet and the rounding error is carried, as libwebrtc does.
    ``router/rtp/_twcc.c`` has the compiled twin (tests/forwarding/test_publisher_feedback.py
    compares them)."""
    first_us = int(arrivals[base] * 1e6)
    ref = first_us // _REF_US
    prev = ref * _REF_US
    deltas: list[int | None] = []
    for ext in range(base, stop):
        t = arrivals.get(ext)
        if t is None:
            deltas.append(None)
            continue
        ticks = round((int(t * 1e6) - prev) / _TICK_US)
        ticks = max(-0x8000, min(0x7FFF, ticks))
        prev += ticks * _TICK_US
        deltas.append(ticks)
    statuses, received = statuses_for(deltas)
    return ref, statuses, received


_compiled = compiled_twcc()
_arrival_deltas = None if _compiled is None else _compiled.arrival_deltas
""":func:`py_arrival_deltas`, compiled, or None on the reference path."""


class TwccRecorder:
    """Arrival times of one publisher's packets, by transport-wide sequence number."""

    __slots__ = (
        "_arrivals",
        "_base",
        "_fb_count",
        "_last",
        "_max",
        "ext_id",
        "late",
        "media_ssrc",
        "recorded",
        "sent",
        "since",
    )

    def __init__(self, ext_id: int) -> None:
        self.ext_id = ext_id
        self._arrivals: dict[int, float] = {}
        self._base = -1
        """Lowest extended sequence number not yet reported (-1 before the first packet)."""
        self._max = -1
        self._last = -1
        self._fb_count = 0
        self.media_ssrc = 0
        """Put in the feedback's media SSRC field (a stream of the publisher; receivers
        ignore it, but 0 confuses some parsers)."""
        self.recorded = 0
        self.late = 0
        """Packets that arrived after their number had been reported (as lost)."""
        self.sent = 0
        self.since = 0.0
        """Arrival of the first packet not yet reported (valid while :attr:`pending`)."""

    def record(self, packet: bytes, now: float) -> None:
        """Note the arrival of one RTP packet (no-op if it carries no transport sequence)."""
        seq = read_transport_seq(packet, self.ext_id)
        if seq < 0:
            return
        last = self._last
        if last < 0:
            ext = (1 << 16) + seq
            self._base = ext
        else:
            ext = last + ((seq - last + 0x8000) & 0xFFFF) - 0x8000
        if ext > self._max:
            self._max = ext
        self._last = ext
        if ext < self._base:
            self.late += 1
            return
        arrivals = self._arrivals
        if not arrivals:
            self.since = now
        elif len(arrivals) >= MAX_PENDING:
            return
        arrivals[ext] = now
        self.recorded += 1

    @property
    def pending(self) -> bool:
        """True if a feedback packet is due at the next interval."""
        return bool(self._arrivals)

    def feedback(self, sender_ssrc: int) -> list[bytes]:
        """TransportCc packets covering everything recorded since the last call."""
        arrivals = self._arrivals
        if not arrivals:
            return []
        base = max(self._base, min(arrivals))
        end = self._max
        out: list[bytes] = []
        while base <= end:
            stop = min(end + 1, base + _MAX_STATUSES)
            while stop > base and stop - 1 not in arrivals:
                stop -= 1  # a feedback ends with a received packet
            if stop == base:
                break
            out.append(self._packet(sender_ssrc, base, stop, arrivals))
            base = stop
            while base <= end and base not in arrivals:
                base += 1
        self._base = end + 1
        arrivals.clear()
        self.sent += len(out)
        return out

    def _packet(self, sender_ssrc: int, base: int, stop: int, arrivals: dict[int, float]) -> bytes:
        fast = None if _arrival_deltas is None else _arrival_deltas(arrivals, base, stop)
        ref, statuses, deltas = py_arrival_deltas(arrivals, base, stop) if fast is None else fast
        count = self._fb_count
        self._fb_count = (count + 1) & 0xFF
        packet = TransportCc(
            sender_ssrc, self.media_ssrc, base & 0xFFFF, ref & 0x7FFFFF, count, statuses, deltas
        )
        return packet.build()


class RembController:
    """A loss-based REMB value for one publisher that negotiated only goog-remb."""

    __slots__ = ("_config", "_next", "_priors", "bitrate", "sent")

    def __init__(self, config: LinkConfig, now: float) -> None:
        self._config = config
        self.bitrate = config.publisher_max_bitrate
        self._next = now + config.remb_interval
        self._priors: dict[int, tuple[int, int]] = {}
        """SSRC -> (expected, received) at the last interval."""
        self.sent = 0

    @property
    def deadline(self) -> float:
        """When the next REMB is due."""
        return self._next

    def loss(self, part: Participant) -> float:
        """Fraction of the publisher's packets lost since the last call (all its streams)."""
        expected_total = received_total = 0
        priors = self._priors
        for stream in part.streams.values():
            rs = stream.receive
            if stream.is_rtx or rs.max_ext < 0:
                continue
            expected = rs.max_ext - rs.base_ext + 1
            prior = priors.get(stream.ssrc, (0, 0))
            priors[stream.ssrc] = (expected, rs.received)
            expected_total += max(0, expected - prior[0])
            received_total += max(0, rs.received - prior[1])
        if expected_total <= 0:
            return 0.0
        return max(0.0, 1.0 - received_total / expected_total)

    def update(self, part: Participant, reporter_ssrc: int, now: float) -> bytes | None:
        """The REMB to send now, if one is due."""
        if now < self._next:
            return None
        cfg = self._config
        self._next = now + cfg.remb_interval
        loss = self.loss(part)
        if loss > 0.10:
            self.bitrate = int(self.bitrate * (1.0 - 0.5 * loss))
        elif loss < 0.02:
            self.bitrate = int(self.bitrate * 1.08)
        self.bitrate = max(cfg.publisher_min_bitrate, min(cfg.publisher_max_bitrate, self.bitrate))
        ssrcs = tuple(s.ssrc for s in part.streams.values() if not s.is_rtx)[:255]
        self.sent += 1
        return Remb(reporter_ssrc, self.bitrate, ssrcs).build()
