"""Loss on the subscribers' downlinks, before and after recovery, from what they tell us.

The router sees every gap on a publisher's uplink itself; what reaches a subscriber it only
learns from the subscriber. Before recovery: the sequence numbers its NACKs ask for (the
packets it found missing). After recovery: its receiver reports of each stream we send it
(RFC 3550 §6.4.1: extended highest sequence number received, cumulative number lost). A
receiver counts a packet repaired by a retransmission as received, so its cumulative lost can
go down again; a loss is counted as lasting once two reports in a row still call it lost: a
report interval (about a second) is many round trips, so NACK repair is over by then.

Per downstream, :class:`DownlinkReports` turns consecutive report blocks into increments of
two monotonic counters, packets expected and packets lost after recovery, both up to the
previous report (the last one confirmed). A subscriber can only report on packets we really
sent it: a report naming a sequence number beyond the last one we sent is ignored, and so is
an older report overtaken by a newer one; one whose number leaps starts afresh; expected never
adds up to more packets than we sent on the stream, and lost never grows faster than
expected, so a lying or restarted receiver cannot inflate the region's figures beyond its own
stream. Counting starts at a stream's first report (what was lost before it is not counted).
"""

from __future__ import annotations

from typing import Final

MAX_STEP: Final = 1 << 15
"""Largest advance of the highest sequence number between two reports taken as continuous
(half the 16-bit space: more is a restart or garbage)."""


class DownlinkReports:
    """One downstream's receiver-report history: the last report and what has been counted."""

    __slots__ = ("counted_lost", "counted_seq", "prev_lost", "prev_seq", "total_expected")

    def __init__(self, highest_seq: int, cumulative_lost: int) -> None:
        self.total_expected = 0
        """Every packet ever counted as expected: never more than we sent."""
        self._rebase(highest_seq, cumulative_lost)

    def _rebase(self, highest_seq: int, cumulative_lost: int) -> None:
        self.prev_seq = self.counted_seq = highest_seq
        self.prev_lost = self.counted_lost = cumulative_lost

    def on_report(self, highest_seq: int, cumulative_lost: int, last_sent: int,
                  sent: int) -> tuple[int, int]:
        """Take one report block (``last_sent``: the sequence number of the last packet we
        sent on the stream, ``sent``: how many we sent on it); ``(expected, lost)``: how much
        each counter grows."""
        if 0 < (highest_seq - last_sent) & 0xFFFF < 0x8000:
            return 0, 0  # a number we never sent: not a report about our stream
        step = highest_seq - self.prev_seq
        if -MAX_STEP <= step < 0:
            return 0, 0  # an older report, overtaken
        if step < 0 or step > MAX_STEP:
            self._rebase(highest_seq, cumulative_lost)  # the receiver restarted, or garbage
            return 0, 0
        confirmed_lost = min(self.prev_lost, cumulative_lost)
        expected = max(0, min(self.prev_seq - self.counted_seq, sent - self.total_expected))
        lost = max(0, min(confirmed_lost - self.counted_lost, expected))
        self.total_expected += expected
        self.counted_seq = self.prev_seq
        self.counted_lost = max(self.counted_lost, confirmed_lost)
        self.prev_seq, self.prev_lost = highest_seq, cumulative_lost
        return expected, lost


__all__ = ["MAX_STEP", "DownlinkReports"]
