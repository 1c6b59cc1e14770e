"""Towards subscribers: transport-wide numbers, the estimate from their feedback, the repair
budget, and malformed feedback."""

from __future__ import annotations

from router.forwarding import Forwarder
from router.forwarding.publisher_feedback import TwccRecorder
from router.forwarding.specs import ABS_SEND_TIME, TRANSPORT_WIDE_CC
from router.forwarding.transport_seq import read_transport_seq
from router.rtp import (
    GenericNack,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtpPacket,
    SenderReport,
    TransportCc,
)
from tests.forwarding.helpers import (
    audio_track,
    make_forwarder,
    parsed,
    rtp,
    subscription,
    video_track,
)

TW = {TRANSPORT_WIDE_CC: 3, ABS_SEND_TIME: 2}


def twcc_room(fwd: Forwarder, extensions: dict[str, int] | None = None) -> None:
    fwd.add_participant("pub")
    fwd.add_track(video_track(), 0.0)
    fwd.add_track(audio_track(), 0.0)
    fwd.add_participant("s")
    fwd.subscribe(subscription("s", extensions=extensions or TW), 0.0)
    fwd.subscribe(subscription("s", "a", 0xB000, extensions=extensions or TW), 0.0)
    fwd.rtcp_to_send()


def test_every_copy_carries_the_next_transport_wide_number_and_only_that() -> None:
    fwd = make_forwarder()
    twcc_room(fwd)
    publisher_ext = {1: b"0", 2: b"\x01\x02\x03", 3: b"\x99\x99"}
    for i in range(4):
        fwd.route_rtp("pub", rtp(10 + i, ext=publisher_ext, payload=b"v%d" % i), 0.01 * i)
        fwd.route_rtp("pub", rtp(50 + i, ssrc=0x2000, pt=111, payload=b"a%d" % i), 0.01 * i)
    out = fwd.rtp_to_send()
    assert [read_transport_seq(data, 3) for _, data in out] == list(range(8))
    for packet in parsed(out, "s"):
        assert packet.extension is not None
        elements = {e.id: e.data for e in packet.extension.elements}
        assert set(elements) == {3}  # the publisher's MID, abs-send-time and number are gone
        assert packet.payload[:1] in (b"v", b"a")
    # Two-byte ids work too (no extension block in the incoming packet).
    fwd2 = make_forwarder()
    twcc_room(fwd2, {TRANSPORT_WIDE_CC: 20})
    fwd2.route_rtp("pub", rtp(1, payload=b"x"), 0.0)
    [(_, data)] = fwd2.rtp_to_send()
    packet = RtpPacket.parse(data)
    assert packet.extension is not None and packet.extension.profile == 0x1000
    assert [(e.id, e.data) for e in packet.extension.elements] == [(20, b"\x00\x00")]
    assert packet.payload == b"x"


def test_retransmissions_get_a_new_number() -> None:
    fwd = make_forwarder()
    twcc_room(fwd)
    for i in range(5):
        fwd.route_rtp("pub", rtp(100 + i, payload=bytes([i])), 0.01 * i)
    sent = parsed(fwd.rtp_to_send(), "s")
    fwd.receive_rtcp("s", GenericNack.from_seqs(1, 0xA000, [sent[2].sequence_number]).build(), 0.3)
    [(_, again)] = fwd.rtp_to_send()
    assert read_transport_seq(again, 3) == 5
    assert RtpPacket.parse(again).payload == bytes([2])


def _run_link(capacity_bps: float, seconds: float, rate_bps: float = 1_500_000) -> Forwarder:
    """Route video at ``rate_bps`` through a bottleneck of ``capacity_bps`` (a FIFO queue) and
    answer with real transport-cc feedback built by the publisher-side recorder."""
    fwd = make_forwarder()
    twcc_room(fwd)
    recorder = TwccRecorder(3)
    size = 1100
    interval = size * 8 / rate_bps
    queue_free = 0.0
    next_feedback = 0.05
    t = 0.0
    seq = 0
    while t < seconds:
        fwd.route_rtp("pub", rtp(seq, seq * 900, payload=bytes(size - 12)), t)
        for _, data in fwd.rtp_to_send():
            start = max(t, queue_free)
            queue_free = start + len(data) * 8 / capacity_bps
            recorder.record(data, queue_free + 0.02)
        if t >= next_feedback:
            for fb in recorder.feedback(0x5555):
                fwd.receive_rtcp("s", fb, t + 0.02)
            next_feedback += 0.05
        fwd.rtcp_to_send()
        seq += 1
        t += interval
    return fwd


def test_estimate_follows_a_bottleneck_and_stays_up_on_a_clean_link() -> None:
    congested = _run_link(500_000, 4.0)
    stats = congested.link_stats()["s"]
    assert stats["twcc"] == 1.0 and stats["feedback_packets"] > 50
    assert stats["estimate_bps"] < 600_000
    clean = _run_link(10_000_000, 4.0)
    assert clean.link_stats()["s"]["estimate_bps"] >= 1_000_000
    assert clean.counters.twcc_unmatched == 0


def test_loss_in_feedback_and_rr_fraction_lost_lower_the_estimate() -> None:
    fwd = make_forwarder()
    twcc_room(fwd)
    for i in range(200):
        fwd.route_rtp("pub", rtp(i, i * 900), i * 0.005)
    fwd.rtp_to_send()
    # 40 % of the numbers reported lost, over two feedback packets half a second apart
    # (loss is judged over a window, not per feedback packet).
    deltas = [None if i % 5 < 2 else 20 for i in range(100)]
    for n, base in enumerate((0, 100)):
        fb = TransportCc.from_deltas(1, 0xA000, base, 0, n, deltas).build()
        fwd.receive_rtcp("s", fb, 0.6 + 0.6 * n)
    assert fwd.link_stats()["s"]["estimate_bps"] < 1_000_000 * 0.85
    # A subscriber without transport-cc is estimated from its RRs and REMB.
    plain = make_forwarder()
    twcc_room(plain, {ABS_SEND_TIME: 2})
    rr = ReceiverReport(1, (ReportBlock(0xA000, 100, 5, 1, 0, 0, 0),)).build()
    plain.receive_rtcp("s", rr, 1.0)
    assert plain.link_stats()["s"]["estimate_bps"] < 1_000_000
    plain.receive_rtcp("s", Remb(1, 300_000, (0xA000,)).build(), 1.1)
    assert plain.link_stats()["s"]["estimate_bps"] == 300_000


def test_rtt_from_receiver_reports_about_translated_sender_reports() -> None:
    fwd = make_forwarder()
    twcc_room(fwd)
    fwd.route_rtp("pub", rtp(1, 0), 0.0)
    fwd.rtp_to_send()
    ntp = 0x1234_5678_9ABC_DEF0
    fwd.receive_rtcp("pub", SenderReport(0x1000, ntp, 0, 1, 5).build(), 1.0)
    fwd.rtcp_to_send()
    lsr = (ntp >> 16) & 0xFFFFFFFF
    block = ReportBlock(0xA000, 0, 0, 1, 0, lsr, int(0.1 * 65536))
    for _ in range(40):  # 0.05 s on the wire in total
        fwd.receive_rtcp("s", ReceiverReport(1, (block,)).build(), 1.15)
    assert abs(fwd.link_stats()["s"]["rtt_ms"] - 50.0) < 5.0


def test_malformed_feedback_is_dropped_and_counted() -> None:
    fwd = make_forwarder()
    twcc_room(fwd)
    good = TransportCc.from_deltas(1, 0xA000, 0, 0, 0, [1, 2, 3]).build()
    truncated_chunks = good[:20]
    truncated_chunks = truncated_chunks[:2] + (4).to_bytes(2, "big") + truncated_chunks[4:]
    count_past_end = bytearray(good)
    count_past_end[14:16] = (5000).to_bytes(2, "big")
    remb = bytearray(Remb(1, 1_000_000, (0xA000,)).build())
    remb[16] = 9  # claims 9 SSRCs, carries 1
    nack_short = GenericNack.from_seqs(1, 0xA000, [1]).build()[:-4]  # length says 16 bytes
    before = fwd.counters.rtcp_malformed
    for bad in (truncated_chunks, bytes(count_past_end), bytes(remb), nack_short):
        fwd.receive_rtcp("s", bad, 1.0)
    assert fwd.counters.rtcp_malformed - before == 4
    absurd = Remb(1, (1 << 18) - 1 << 40, ()).build()
    fwd.receive_rtcp("s", absurd, 1.0)
    assert fwd.counters.remb_absurd == 1
    assert fwd.link_stats()["s"]["estimate_bps"] == 1_000_000
    # Feedback about numbers never sent is ignored.
    fwd.receive_rtcp("s", good, 1.0)
    assert fwd.counters.twcc_unmatched == 1


def test_nack_storm_does_not_amplify() -> None:
    """10,000 NACKed numbers a second: retransmissions stay under the share of media sent."""
    fwd = make_forwarder()
    twcc_room(fwd)
    cfg = fwd.config.link
    media_bytes = 0
    rtx_bytes = 0
    seq = 0
    for ms in range(2000):  # 2 s: 200 video packets/s, 10 NACKs of 10 numbers every ms
        now = ms / 1000
        if ms % 5 == 0:
            fwd.route_rtp("pub", rtp(seq, seq * 450, payload=bytes(1000)), now)
            seq += 1
            media_bytes += sum(len(d) for _, d in fwd.rtp_to_send())
        recent = [(seq - 1 - k) & 0xFFFF for k in range(10)]
        fwd.receive_rtcp("s", GenericNack.from_seqs(1, 0xA000, recent).build(), now)
        rtx_bytes += sum(len(d) for _, d in fwd.rtp_to_send())
    assert rtx_bytes <= cfg.rtx_share * media_bytes * 1.1 + cfg.rtx_burst_bytes
    assert fwd.counters.nack_repeats_ignored > 10_000
