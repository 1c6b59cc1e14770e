"""Subscribers' downlink loss before and after recovery (issue 14 leftover): NACKed sequence
numbers, and losses their receiver reports still name in two reports in a row, per packet
expected; a receiver cannot report on more than we sent it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.forwarding.downlink_loss import MAX_STEP, DownlinkReports, first_requests
from router.rtp import GenericNack, ReceiverReport, ReportBlock
from tests.forwarding.helpers import make_forwarder, parsed, room, rtp


def test_transient_loss_is_not_counted_lasting_loss_is() -> None:
    reports = DownlinkReports(highest_seq=1000)
    # 100 packets later the receiver misses 5; 3 are repaired by RTX before its next report.
    assert reports.on_report(1100, 5, 1100, 1100) == (100, 0)
    assert reports.on_report(1200, 2, 1200, 1200) == (100, 2), "2 lost in both reports: lasting"
    assert reports.on_report(1300, 2, 1300, 1300) == (100, 0)
    # 4 more missing in one report only (repaired by the next): not counted.
    assert reports.on_report(1400, 6, 1400, 1400) == (100, 0)
    assert reports.on_report(1500, 2, 1500, 1500) == (100, 0)


def test_counting_from_the_first_packet_sent() -> None:
    reports = DownlinkReports.before_first_packet(0xFFF5, first_seq=0xFFEC)
    assert reports.on_report(0xFFF5, 3, 0xFFF5, 10) == (10, 0), "0xFFEC..0xFFF5: 10 packets"
    assert reports.on_report(0x1_0005, 3, 0x1_0005, 26) == (16, 3)


def test_a_receiver_reports_on_no_more_than_we_sent() -> None:
    reports = DownlinkReports(0)
    assert reports.on_report(30, 30, 10, 10) == (0, 0), "number 30 was never sent: ignored"
    assert reports.on_report(10, 10, 10, 10) == (10, 0)
    assert reports.on_report(10, 10, 10, 10) == (0, 10), "every packet sent, lost for good"
    assert reports.on_report(5, 10, 20, 20) == (0, 0), "an older report: ignored"
    assert reports.on_report(20, 10, 20, 20) == (10, 0)
    leap = 20 + MAX_STEP + 1
    assert reports.on_report(leap, 0, leap, 30) == (0, 0), "a leap: start afresh"
    assert reports.on_report(leap + 50, 50, leap + 50, 80) == (50, 0)
    assert reports.on_report(leap + 99, 99, leap + 99, 80) == (10, 50), "80 sent in all"
    assert (reports.total_expected, reports.total_lost) == (80, 60)


def test_nack_repeats_and_numbers_never_sent_are_not_counted() -> None:
    assert first_requests([100, 101, 105], 0x1_0010, -1) == (0, -1), "never sent (ahead)"
    assert first_requests([3, 5], 0x1_0010, -1) == (2, 0x1_0005)
    assert first_requests([3, 5, 7], 0x1_0010, 0x1_0005) == (1, 0x1_0007), "3 and 5 again"
    # Around the 16-bit wrap: 0xFFFE is just before 0x1_0000.
    assert first_requests([0xFFFE, 1], 0x1_0003, 0xFFF0) == (2, 0x1_0001)


@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000),
                          st.integers(-100, 6000)), min_size=1, max_size=30))
def test_counts_never_exceed_what_was_sent(steps: list[tuple[int, int, int]]) -> None:
    sent = 0
    reports = DownlinkReports(0)
    total_expected = total_lost = 0
    for more, behind, lost in steps:
        sent += more
        expected, new_lost = reports.on_report(max(0, sent - behind), lost, sent, sent)
        assert expected >= 0 and new_lost >= 0
        total_expected += expected
        total_lost += new_lost
        assert total_lost <= total_expected
    assert total_expected <= sent and total_lost <= total_expected


def test_forwarder_counts_subscriber_nacks_and_reports() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i in range(50):
        fwd.route_rtp("pub", rtp(100 + i, 3000 * i), i * 0.01)
    sent = parsed(fwd.rtp_to_send(), "s0")
    first = sent[0].sequence_number
    nack = GenericNack.from_seqs(1, 0xA000, [first + 3, first + 7]).build()
    fwd.receive_rtcp("s0", nack, 0.6)
    fwd.receive_rtcp("s0", nack, 0.7)  # asked again: the same two packets
    fwd.rtp_to_send()

    def report(highest: int, lost: int, now: float) -> None:
        block = ReportBlock(0xA000, cumulative_lost=lost, highest_seq=highest)
        fwd.receive_rtcp("s0", ReceiverReport(1, (block,)).build(), now)

    report(first + 9, 1, 1.0)  # the first report: 1 missing
    report(first + 29, 3, 2.0)  # 2 more missing, the first one still
    report(first + 49, 2, 3.0)  # one of the two repaired
    report(first + 60, 1, 4.0)  # beyond what was sent: ignored
    c = fwd.counters
    assert c.downlink_nacked == 2
    # Expected from the first packet sent to the latest report (first + 49); lost up to the
    # last confirmed one (first + 29).
    assert (c.downlink_expected, c.downlink_lost) == (50, 2)
