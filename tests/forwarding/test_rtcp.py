"""RTCP: SR translation, receiver reports, keyframe requests, NACK, REMB/TWCC, BYE."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from router.forwarding import LayerSpec
from router.forwarding.link_config import LinkConfig
from router.forwarding.packet import abs_send_time
from router.rtp import (
    Bye,
    Fir,
    FirEntry,
    GenericNack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtpPacket,
    Sdes,
    SenderReport,
    TransportCc,
    build_rtcp_compound,
)
from tests.forwarding.helpers import (
    make_forwarder,
    parsed,
    room,
    rtcp_for,
    rtp,
    subscription,
    video_track,
)


def test_sender_report_translated_per_subscriber() -> None:
    fwd = make_forwarder()
    room(fwd, 2)
    for i in range(4):
        fwd.route_rtp("pub", rtp(10 + i, 1000 + 3000 * i, payload=bytes(100)), i * 0.033)
    got = parsed(fwd.rtp_to_send(), "s1")
    fwd.unsubscribe("s0", "v", 0.2)  # s0 gets a BYE, no SR
    sr = SenderReport(0x1000, 0xE000_0000_8000_0000, 1000 + 9000, 4, 400)
    fwd.receive_rtcp("pub", sr.build(), 0.2)
    out = fwd.rtcp_to_send()
    assert [type(p) for p in rtcp_for(out, "s0")] == [Bye]
    [translated] = rtcp_for(out, "s1")
    assert isinstance(translated, SenderReport)
    assert translated.ssrc == 0xA001
    assert translated.ntp_timestamp == sr.ntp_timestamp
    # The publisher's RTP time 10000 corresponds to our outgoing time of packet 3.
    assert translated.rtp_timestamp == got[3].timestamp
    assert (translated.packet_count, translated.octet_count) == (4, 400)


def _reference_stats(arrivals: list[tuple[int, int, float]], clock: int) -> tuple[int, float]:
    """Straight RFC 3550 A.3/A.8 over (seq, ts, arrival) in arrival order, no wrap."""
    seqs = [s for s, _, _ in arrivals]
    expected = max(seqs) - arrivals[0][0] + 1
    lost = expected - len(arrivals)
    jitter = 0.0
    for (_, ts0, t0), (_, ts1, t1) in itertools.pairwise(arrivals):
        d = (t1 * clock - ts1) - (t0 * clock - ts0)
        jitter += (abs(d) - jitter) / 16
    return lost, jitter


def test_receiver_report_loss_and_jitter_match_reference() -> None:
    fwd = make_forwarder(report_interval=1.0, cname="router")
    room(fwd, 0)
    rnd = random.Random(3)
    arrivals = []
    for seq in range(100, 300):
        if rnd.random() < 0.1:
            continue
        t = (seq - 100) * 0.02 + rnd.uniform(0, 0.01)
        arrivals.append((seq, 1800 * (seq - 100), t))
    for seq, ts, t in arrivals:
        fwd.route_rtp("pub", rtp(seq, ts), t)
    sr = SenderReport(0x1000, 0x0001_2345_6789_0000, 0, 1, 1)
    fwd.receive_rtcp("pub", sr.build(), 4.0)
    deadline = fwd.get_timer()
    assert deadline is not None
    fwd.handle_timer(max(deadline, 4.5))
    packets = rtcp_for(fwd.rtcp_to_send(), "pub")
    rr = next(p for p in packets if isinstance(p, ReceiverReport))
    assert any(isinstance(p, Sdes) and p.cname(rr.ssrc) == b"router" for p in packets)
    [block] = rr.reports
    lost, jitter = _reference_stats(arrivals, 90000)
    assert block.ssrc == 0x1000
    assert block.cumulative_lost == lost
    assert block.fraction_lost == (lost * 256) // 200
    assert block.highest_seq == 299
    assert block.jitter == int(jitter)
    assert block.lsr == 0x2345_6789
    assert block.dlsr == int((max(deadline, 4.5) - 4.0) * 65536)


def test_fraction_lost_is_per_interval_and_timer_randomised() -> None:
    # The link logic's NACK retries would be the earlier deadline here.
    fwd = make_forwarder(report_interval=1.0, link=LinkConfig(enabled=False))
    room(fwd, 0)
    for seq in range(0, 100, 2):  # half lost
        fwd.route_rtp("pub", rtp(seq), seq * 0.01)
    t1 = fwd.get_timer()
    assert t1 is not None and 0.5 <= t1 <= 1.5
    fwd.handle_timer(t1)
    [rr1] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, ReceiverReport)]
    for seq in range(100, 200):  # none lost after 98
        fwd.route_rtp("pub", rtp(seq), 1 + seq * 0.01)
    t2 = fwd.get_timer()
    assert t2 is not None and t1 + 0.5 <= t2 <= t1 + 1.5
    fwd.handle_timer(t2)
    [rr2] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, ReceiverReport)]
    assert rr1.reports[0].fraction_lost == (49 << 8) // 99  # 49 of 99 expected
    assert rr2.reports[0].fraction_lost == (1 << 8) // 101  # only 99 lost of 99..199
    assert rr2.reports[0].cumulative_lost == 50


def test_keyframe_requested_on_subscribe_and_throttled() -> None:
    fwd = make_forwarder(keyframe_min_interval=0.5)
    room(fwd, 0)
    fwd.add_participant("s0")
    fwd.subscribe(subscription("s0"), 0.0)
    [pli] = rtcp_for(fwd.rtcp_to_send(), "pub")
    assert isinstance(pli, Pli) and pli.media_ssrc == 0x1000
    fwd.add_participant("s1")
    fwd.subscribe(subscription("s1", ssrc=0xA001), 0.1)
    fwd.receive_rtcp("s0", Pli(1, 0xA000).build(), 0.2)
    assert fwd.rtcp_to_send() == []  # merged into one deferred request
    assert fwd.get_timer() == pytest.approx(0.5)
    fwd.handle_timer(0.5)
    [pli2] = rtcp_for(fwd.rtcp_to_send(), "pub")
    assert isinstance(pli2, Pli)
    assert fwd.get_timer() != pytest.approx(0.5)
    fwd.receive_rtcp("s1", Pli(1, 0xA001).build(), 1.2)
    assert len(rtcp_for(fwd.rtcp_to_send(), "pub")) == 1
    assert fwd.counters.keyframe_requests_sent == 3


def test_fir_upstream_has_increasing_sequence_numbers() -> None:
    fwd = make_forwarder(keyframe_min_interval=0.5)
    room(fwd, 1, track=video_track(keyframe="fir"))
    seqs = []
    for i in range(4):
        fwd.receive_rtcp("s0", Fir(1, (FirEntry(0xA000, i),)).build(), 1.0 + i)
        [fir] = rtcp_for(fwd.rtcp_to_send(), "pub")
        assert isinstance(fir, Fir) and fir.entries[0].ssrc == 0x1000
        seqs.append(fir.entries[0].seq_nr)
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    # A retransmitted FIR (same sequence number) is not a new request.
    fwd.receive_rtcp("s0", Fir(1, (FirEntry(0xA000, 3),)).build(), 9.0)
    assert fwd.rtcp_to_send() == []


def test_audio_gets_no_keyframe_requests() -> None:
    from tests.forwarding.helpers import audio_track

    fwd = make_forwarder()
    room(fwd, 0)
    fwd.add_track(audio_track(), 0.0)
    fwd.add_participant("s")
    fwd.subscribe(subscription("s", "a", 0xB000), 0.0)
    fwd.receive_rtcp("s", Pli(1, 0xB000).build(), 1.0)
    assert fwd.rtcp_to_send() == []


def test_nack_served_from_cache_with_same_outgoing_seq() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i in range(10):
        fwd.route_rtp("pub", rtp(100 + i, 3000 * i, payload=bytes([i])), i * 0.01)
    sent = parsed(fwd.rtp_to_send(), "s0")
    wanted = [sent[3].sequence_number, sent[7].sequence_number]
    fwd.receive_rtcp("s0", GenericNack.from_seqs(1, 0xA000, wanted).build(), 0.2)
    again = parsed(fwd.rtp_to_send(), "s0")
    # Same packets, except abs-send-time, which says when they were sent again.
    resend_time = abs_send_time(0.2).to_bytes(3, "big")
    for packet in again:
        assert packet.extension is not None
        assert [(e.id, e.data) for e in packet.extension.elements] == [(2, resend_time)]
    assert [replace(p, extension=None) for p in again] == [
        replace(p, extension=None) for p in (sent[3], sent[7])
    ]
    assert fwd.rtcp_to_send() == []


def test_nack_as_rtx_when_negotiated() -> None:
    fwd = make_forwarder()
    room(fwd, 0)
    fwd.add_participant("s")
    fwd.subscribe(subscription("s", rtx_ssrc=0xA100), 0.0)
    for i in range(3):
        fwd.route_rtp("pub", rtp(100 + i, payload=b"data%d" % i), 0.0)
    sent = parsed(fwd.rtp_to_send(), "s")
    fwd.receive_rtcp("s", GenericNack.from_seqs(1, 0xA000, [sent[1].sequence_number]).build(), 1)
    [rtx] = parsed(fwd.rtp_to_send(), "s")
    assert (rtx.ssrc, rtx.payload_type) == (0xA100, 97)
    assert rtx.payload == sent[1].sequence_number.to_bytes(2, "big") + b"data1"


def test_nack_cache_miss_goes_upstream_once() -> None:
    fwd = make_forwarder(cache_size=16)
    room(fwd, 2)
    for i in range(40):
        if i != 30:
            fwd.route_rtp("pub", rtp(100 + i), i * 0.01)
    out = fwd.rtp_to_send()
    first = parsed(out, "s0")[0].sequence_number
    for sub, ssrc, out_first in (
        ("s0", 0xA000, first),
        ("s1", 0xA001, parsed(out, "s1")[0].sequence_number),
    ):
        lost = [(out_first + 2) & 0xFFFF, (out_first + 30) & 0xFFFF]  # evicted, never received
        fwd.receive_rtcp(sub, GenericNack.from_seqs(1, ssrc, lost).build(), 0.5)
    [nack] = rtcp_for(fwd.rtcp_to_send(), "pub")  # the second subscriber's NACK is suppressed
    assert isinstance(nack, GenericNack) and nack.media_ssrc == 0x1000
    assert sorted(nack.lost_seqs()) == [102, 130]


def test_remb_and_twcc_terminated_rr_from_subscriber_recorded() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    twcc = TransportCc.from_deltas(1, 0xA000, 0, 0, 0, [1, 2])
    rr = ReceiverReport(1, (ReportBlock(0xA000, fraction_lost=25, cumulative_lost=3),))
    fwd.receive_rtcp("s0", build_rtcp_compound([rr, Remb(1, 1_000_000, (0xA000,)), twcc]), 1.0)
    assert fwd.rtcp_to_send() == []
    c = fwd.counters
    assert (c.remb_received, c.twcc_received, c.rr_received) == (1, 1, 1)


def test_bye_from_publisher_unbinds_stream_and_falls_back() -> None:
    fwd = make_forwarder()
    layers = (LayerSpec("h", ssrc=0x11), LayerSpec("l", ssrc=0x22))
    room(fwd, 1, track=video_track(layers=layers))
    fwd.route_rtp("pub", rtp(1, ssrc=0x11, payload=b"h"), 0.0)
    fwd.route_rtp("pub", rtp(1, ssrc=0x22, payload=b"l"), 0.0)
    fwd.receive_rtcp("pub", Bye((0x11,)).build(), 0.1)
    fwd.route_rtp("pub", rtp(2, ssrc=0x22, payload=b"l"), 0.2)
    assert [p.payload for p in parsed(fwd.rtp_to_send(), "s0")] == [b"h", b"l"]
    assert fwd.stats().streams == 1


@pytest.mark.parametrize(
    "packet", [b"", b"\x80", b"\x80\xc9\x00\x05" + bytes(4), b"\x40\xc8\x00\x00", bytes(8)]
)
def test_malformed_rtcp_counted_not_raised(packet: bytes) -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    fwd.receive_rtcp("s0", packet, 0.0)
    fwd.receive_rtcp("ghost", Pli(1, 2).build(), 0.0)
    assert fwd.counters.rtcp_malformed == 1
    assert fwd.counters.rtcp_unknown_participant == 1


def test_retransmitted_packet_parses() -> None:
    assert RtpPacket.parse(rtp(1)).sequence_number == 1
