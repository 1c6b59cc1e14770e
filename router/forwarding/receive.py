"""Reception state of one incoming stream: sequence tracking and RFC 3550 receiver statistics.

One object per incoming SSRC does three jobs that all need the same sequence bookkeeping, so
they share one update per packet:

* extend 16-bit sequence numbers (RFC 3550 A.1), spot restarts (a jump beyond ``max_dropout``
  or behind the reorder window, confirmed by a second packet in sequence, as ``bad_seq`` does);
* filter duplicates with a bitmask of the last ``window`` sequence numbers, so a packet the
  publisher sent twice (or an RTX repair of a packet that did arrive) is forwarded once;
* keep the counts, interval counts and interarrival jitter (A.3, A.8) and the last SR, from
  which :meth:`ReceiveStats.report_block` builds the report block sent to the publisher.

Extended numbers start at ``2**16 + seq`` so a packet reordered across a wrap right at the start
never goes negative; the reported value subtracts that again.
"""

from __future__ import annotations

from typing import Final

from router.rtp import ReportBlock

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "LATE",
    "OUT_OF_RANGE",
    "RESTARTED",
    "TOO_OLD",
    "ReceiveStats",
]

ACCEPTED: Final = 0
"""The newest packet so far."""
LATE: Final = 1
"""Reordered but within the window and not seen before: forward it."""
RESTARTED: Final = 2
"""The stream restarted (confirmed jump): forward, and re-anchor every subscriber."""
DUPLICATE: Final = 3
TOO_OLD: Final = 4
OUT_OF_RANGE: Final = 5
"""A jump not (yet) confirmed as a restart: dropped."""

_EXT_BASE: Final = 1 << 16
_CUM_MAX: Final = 0x7FFFFF
_CUM_MIN: Final = -0x800000


class ReceiveStats:
    """Sequence tracking plus RFC 3550 receiver statistics for one incoming SSRC."""

    __slots__ = (
        "_bad_seq",
        "_clock_rate",
        "_seen",
        "_window",
        "_window_mask",
        "base_ext",
        "expected_prior",
        "jitter",
        "last_arrival",
        "last_ext",
        "last_ts",
        "lsr",
        "lsr_time",
        "max_dropout",
        "max_ext",
        "received",
        "received_prior",
    )

    def __init__(self, clock_rate: int, window: int, max_dropout: int) -> None:
        self._clock_rate = clock_rate
        self._window = window
        self._window_mask = (1 << window) - 1
        self.max_dropout = max_dropout
        self.max_ext = -1
        self.base_ext = 0
        self.last_ext = 0
        self._seen = 0
        self._bad_seq = -1
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self.last_arrival = 0.0
        self.last_ts = -1
        self.lsr = 0
        self.lsr_time = 0.0

    def _init(self, seq: int) -> None:
        ext = _EXT_BASE + seq
        self.max_ext = ext
        self.base_ext = ext
        self._seen = 1
        self._bad_seq = -1
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.last_ts = -1

    def update(self, seq: int, ts: int, now: float) -> int:
        """Account for one packet; return its disposition and set :attr:`last_ext`."""
        hi = self.max_ext
        if hi < 0:
            self._init(seq)
            self.last_ext = self.max_ext
            self._count(ts, now)
            return ACCEPTED
        diff = ((seq - hi + 0x8000) & 0xFFFF) - 0x8000
        if diff > 0:
            if diff > self.max_dropout:
                return self._probation(seq, ts, now)
            self._seen = ((self._seen << diff) | 1) & self._window_mask
            self.last_ext = self.max_ext = hi + diff
            # _count() inlined: this branch is every in-order packet.
            self.received += 1
            arrival = now * self._clock_rate
            d_ts = ((ts - self.last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            jitter = self.jitter
            self.jitter = jitter + (abs(arrival - self.last_arrival - d_ts) - jitter) / 16.0
            self.last_ts = ts
            self.last_arrival = arrival
            return ACCEPTED
        if diff == 0:
            self.received += 1
            return DUPLICATE
        back = -diff
        if back >= self._window:
            return self._probation(seq, ts, now)
        bit = 1 << back
        if self._seen & bit:
            self.received += 1
            return DUPLICATE
        self._seen |= bit
        ext = hi + diff
        if ext < self.base_ext:
            # Late packet from before the first one we saw: too old to place (RFC A.1 would
            # also drop it) and forwarding it would go behind every subscriber's anchor.
            return TOO_OLD
        self.last_ext = ext
        self._count(ts, now)
        return LATE

    def _probation(self, seq: int, ts: int, now: float) -> int:
        if seq == self._bad_seq:
            self._init(seq)
            self.last_ext = self.max_ext
            self._count(ts, now)
            return RESTARTED
        self._bad_seq = (seq + 1) & 0xFFFF
        return OUT_OF_RANGE

    def _count(self, ts: int, now: float) -> None:
        """Count a packet and update jitter (A.8) in arrival order, wrap-safe."""
        self.received += 1
        arrival = now * self._clock_rate
        last_ts = self.last_ts
        if last_ts >= 0:
            d_ts = ((ts - last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = abs((arrival - self.last_arrival) - d_ts)
            self.jitter += (d - self.jitter) / 16.0
        self.last_ts = ts
        self.last_arrival = arrival

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember the middle 32 bits of the SR's NTP time and when it arrived (for LSR/DLSR)."""
        self.lsr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self.lsr_time = now

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """The RFC 3550 report block about this stream; starts a new loss interval."""
        expected = self.max_ext - self.base_ext + 1
        lost = expected - self.received
        cumulative = max(_CUM_MIN, min(_CUM_MAX, lost))
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self.lsr:
            dlsr = min(0xFFFFFFFF, max(0, int((now - self.lsr_time) * 65536)))
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=cumulative,
            highest_seq=(self.max_ext - _EXT_BASE) & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self.jitter)),
            lsr=self.lsr,
            dlsr=dlsr,
        )
