"""Loss on the subscribers' downlinks, before and after recovery, from what they tell us.

The router sees every gap on a publisher's uplink itself; what reaches a subscriber it only
learns from the subscriber. Before recovery: the sequence numbers its NACKs ask for the first
time (the packets it found missing; a receiver asks again until the repair arrives, and those
repeats are not counted: :func:`first_requests`). After recovery: its receiver reports of each
stream we send it (RFC 3550 §6.4.1: extended highest sequence number received, cumulative
number lost). A receiver counts a packet repaired by a retransmission as received, so its
cumulative lost can go down again; a loss is counted as lasting once two reports in a row
still call it lost: a report interval (about a second) is many round trips, so NACK repair is
over by then.

Per downstream, :class:`DownlinkReports` turns consecutive report blocks into increments of
two monotonic counters, packets expected (from the stream's first packet up to the latest
report) and packets lost after recovery (up to the previous report, the last one confirmed).
A subscriber can only report on packets we really sent it: a report naming a sequence number
beyond the last one we sent is ignored, and so is an older report overtaken by a newer one;
one whose number leaps starts afresh; expected never adds up to more packets than we sent on
the stream, and lost never to more than expected, so a lying or restarted receiver cannot
inflate the region's figures beyond its own stream.

Only streams a subscriber can have repaired count (NACK negotiated: video in WebRTC), as on the
uplinks: audio is never retransmitted, so its loss after recovery is its loss on the wire and
would only hide the repair's figure (the per-subscriber RTCP figures in ``link_stats`` carry
it).
"""

from __future__ import annotations

from typing import Final

MAX_STEP: Final = 1 << 15
"""Largest advance of the highest sequence number between two reports taken as continuous
(half the 16-bit space: more is a restart or garbage)."""


def first_requests(seqs: list[int], last_sent: int, highest_nacked: int) -> tuple[int, int]:
    """How many of the NACKed 16-bit ``seqs`` are asked for the first time, and the new highest
    number asked for. Numbers are extended next to ``last_sent`` (the extended number of the
    last packet we sent); one at or below ``highest_nacked`` is a repeat (receivers ask for
    gaps in order) and one beyond ``last_sent`` was never sent."""
    fresh = 0
    highest = highest_nacked
    for seq in seqs:
        ext = last_sent + ((seq - last_sent + 0x8000) & 0xFFFF) - 0x8000
        if highest_nacked < ext <= last_sent:
            fresh += 1
            highest = max(highest, ext)
    return fresh, highest


class DownlinkReports:
    """One downstream's receiver-report history: the last report and what has been counted."""

    __slots__ = ("counted_lost", "prev_lost", "prev_seq", "total_expected", "total_lost")

    def __init__(self, highest_seq: int, cumulative_lost: int = 0) -> None:
        """Start as if a report of ``highest_seq`` and ``cumulative_lost`` had just come."""
        self.total_expected = 0
        """Every packet ever counted as expected: never more than we sent."""
        self.total_lost = 0
        self._rebase(highest_seq, cumulative_lost)

    @classmethod
    def before_first_packet(cls, highest_seq: int, first_seq: int) -> DownlinkReports:
        """For a stream's first report (of ``highest_seq``) when the first packet we sent on
        it had the 16-bit number ``first_seq``: counting covers the stream from its start."""
        return cls(highest_seq - ((highest_seq - first_seq) & 0xFFFF) - 1)

    def _rebase(self, highest_seq: int, cumulative_lost: int) -> None:
        self.prev_seq = highest_seq
        self.prev_lost = self.counted_lost = cumulative_lost

    def on_report(self, highest_seq: int, cumulative_lost: int, last_sent: int,
                  sent: int) -> tuple[int, int]:
        """Take one report block (``last_sent``: the sequence number of the last packet we
        sent on the stream, ``sent``: how many we sent on it); ``(expected, lost)``: how much
        each counter grows. Expected grows with this report; lost once the next one confirms
        it."""
        if 0 < (highest_seq - last_sent) & 0xFFFF < 0x8000:
            return 0, 0  # a number we never sent: not a report about our stream
        step = highest_seq - self.prev_seq
        if -MAX_STEP <= step < 0:
            return 0, 0  # an older report, overtaken
        if step < 0 or step > MAX_STEP:
            self._rebase(highest_seq, cumulative_lost)  # the receiver restarted, or garbage
            return 0, 0
        expected = max(0, min(step, sent - self.total_expected))
        self.total_expected += expected
        confirmed_lost = min(self.prev_lost, cumulative_lost)
        lost = max(0, min(confirmed_lost - self.counted_lost,
                          self.total_expected - self.total_lost))
        self.total_lost += lost
        self.counted_lost = max(self.counted_lost, confirmed_lost)
        self.prev_seq, self.prev_lost = highest_seq, cumulative_lost
        return expected, lost


__all__ = ["MAX_STEP", "DownlinkReports", "first_requests"]
