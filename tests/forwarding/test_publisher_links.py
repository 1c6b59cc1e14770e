"""Feedback towards publishers: transport-cc, REMB, proactive upstream NACK with retries."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from router.forwarding.link_config import LinkConfig
from router.forwarding.publisher_feedback import TwccRecorder
from router.forwarding.transport_seq import read_transport_seq
from router.rtp import GenericNack, Remb, TransportCc, parse_rtcp_compound
from tests.forwarding.helpers import (
    make_forwarder,
    rtcp_for,
    rtp,
    video_track,
)

TWCC_ID = 3


def twcc_packet(seq: int, twseq: int, ssrc: int = 0x1000) -> bytes:
    return rtp(seq, seq * 3000, ssrc, ext={TWCC_ID: (twseq & 0xFFFF).to_bytes(2, "big")})


def publisher(fwd_kwargs: dict[str, object] | None = None, **track: object):  # type: ignore[no-untyped-def]
    fwd = make_forwarder(**(fwd_kwargs or {}))
    fwd.add_participant("pub")
    spec = replace(video_track(), **track)  # type: ignore[arg-type]
    fwd.add_track(spec, 0.0)
    fwd.rtcp_to_send()
    return fwd


def test_transport_seq_reader_finds_the_number_in_both_forms() -> None:
    one_byte = rtp(1, ext={1: b"0", TWCC_ID: b"\x12\x34"})
    assert read_transport_seq(one_byte, TWCC_ID) == 0x1234
    assert read_transport_seq(one_byte, 4) == -1
    assert read_transport_seq(rtp(1), TWCC_ID) == -1
    two_byte = rtp(1, ext={20: b"\xab\xcd", TWCC_ID: b"\x00\x07"})
    assert read_transport_seq(two_byte, TWCC_ID) == 7
    assert read_transport_seq(one_byte[:18], TWCC_ID) == -1  # truncated block


def test_transport_cc_feedback_reports_every_packet_each_interval() -> None:
    fwd = publisher(bandwidth_feedback="transport-cc", nack=False)
    arrivals = {}
    for i in range(20):
        if i in (5, 6, 13):
            continue  # lost on the way in
        now = 0.001 + i * 0.002
        fwd.route_rtp("pub", twcc_packet(100 + i, 500 + i), now)
        arrivals[500 + i] = now
    due = fwd.get_timer()
    assert due is not None and abs(due - 0.051) < 1e-9  # one interval after the first arrival
    fwd.handle_timer(due)
    feedback = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, TransportCc)]
    assert len(feedback) == 1
    fb = feedback[0]
    assert fb.base_seq == 500 and len(fb.statuses) == 20 and fb.media_ssrc == 0x1000
    t = fb.reference_time * 0.064
    for seq, status, delta in fb.packet_results():
        if seq in arrivals:
            assert delta is not None
            t += delta * 250e-6
            assert abs(t - arrivals[seq]) < 250e-6
        else:
            assert status == 0
    assert fwd.counters.twcc_feedback_sent == 1
    # The next interval only reports what is new.
    fwd.route_rtp("pub", twcc_packet(120, 520), 0.06)
    fwd.handle_timer(0.1)
    assert not rtcp_for(fwd.rtcp_to_send(), "pub")
    fwd.handle_timer(0.11)
    [fb2] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, TransportCc)]
    assert fb2.base_seq == 520 and fb2.fb_pkt_count == 1 and len(fb2.statuses) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=0.2)),
        min_size=1,
        max_size=300,
    ),
    st.integers(0, 0xFFFF),
    st.floats(min_value=0.0, max_value=1e5),
)
def test_recorder_feedback_round_trips_through_the_codec(
    packets: list[tuple[bool, float]], first_seq: int, start: float
) -> None:
    """Decoded feedback gives back which packets arrived and when (to a 250 µs tick)."""
    recorder = TwccRecorder(TWCC_ID)
    now = start
    arrived: dict[int, float] = {}
    for i, (received, gap) in enumerate(packets):
        now += gap
        seq = (first_seq + i) & 0xFFFF
        if received:
            recorder.record(twcc_packet(i, seq), now)
            arrived[seq] = now
    raw = recorder.feedback(0x52474F31)
    decoded = [p for data in raw for p in parse_rtcp_compound(data)]
    assert all(isinstance(p, TransportCc) for p in decoded)
    seen: dict[int, float] = {}
    for fb in decoded:
        assert isinstance(fb, TransportCc)
        t = fb.reference_time * 0.064
        for seq, status, delta in fb.packet_results():
            if status:
                assert delta is not None
                t += delta * 250e-6
                seen[seq] = t
    assert set(seen) == set(arrived)
    for seq, t in seen.items():
        assert abs(t - arrived[seq]) <= 130e-6


def test_remb_only_publisher_gets_a_loss_based_remb() -> None:
    cfg = LinkConfig(publisher_max_bitrate=2_000_000, remb_interval=1.0)
    fwd = publisher({"link": cfg}, bandwidth_feedback="remb")
    seq = 0
    for step in range(100):  # 20 % loss during the first second
        if step % 5:
            fwd.route_rtp("pub", rtp(seq, seq * 3000), step * 0.01)
        seq += 1
    fwd.handle_timer(1.0)
    rembs = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, Remb)]
    assert len(rembs) == 1
    assert rembs[0].bitrate < 2_000_000 and rembs[0].ssrcs == (0x1000,)
    low = rembs[0].bitrate
    for step in range(100):  # then clean: the value climbs again
        fwd.route_rtp("pub", rtp(seq, seq * 3000), 1.0 + step * 0.01)
        seq += 1
    fwd.handle_timer(2.0)
    [remb] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, Remb)]
    assert remb.bitrate > low


def test_gap_is_nacked_at_once_then_retried_after_an_rtt_until_repaired() -> None:
    cfg = LinkConfig(nack_min_interval=0.02, nack_max_retries=3)
    fwd = publisher({"link": cfg})
    fwd.route_rtp("pub", rtp(10, 0), 0.0)
    fwd.route_rtp("pub", rtp(13, 0), 0.01)  # 11 and 12 missing
    due = fwd.get_timer()
    assert due is not None and due <= 0.01
    fwd.handle_timer(0.01)
    [nack] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, GenericNack)]
    assert nack.media_ssrc == 0x1000 and nack.lost_seqs() == [11, 12]
    # Not again before one RTT (0.1 s initial estimate) has passed.
    fwd.handle_timer(0.05)
    assert not [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, GenericNack)]
    fwd.route_rtp("pub", rtp(11, 0), 0.07)  # repair of 11 arrives
    retry_at = fwd.get_timer()
    assert retry_at is not None and retry_at >= 0.11 - 1e-9
    fwd.handle_timer(0.2)
    [retry] = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, GenericNack)]
    assert retry.lost_seqs() == [12]
    assert fwd.counters.nack_recovered == 1
    for t in (0.5, 1.0, 1.5, 2.0):
        fwd.handle_timer(t)
    sent = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, GenericNack)]
    assert len(sent) == 1  # third and last try, then given up
    assert fwd.counters.nack_given_up == 1
    assert fwd.stats().counters["nack_proactive_seqs"] == 4


def test_huge_jump_is_not_nacked_and_link_logic_can_be_switched_off() -> None:
    fwd = publisher()
    fwd.route_rtp("pub", rtp(10, 0), 0.0)
    fwd.route_rtp("pub", rtp(1000, 0), 0.01)
    fwd.handle_timer(0.02)
    assert not [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, GenericNack)]
    off = publisher({"link": LinkConfig(enabled=False)}, bandwidth_feedback="transport-cc")
    off.route_rtp("pub", twcc_packet(1, 1), 0.0)
    off.route_rtp("pub", twcc_packet(3, 3), 0.01)
    off.handle_timer(0.5)
    out = rtcp_for(off.rtcp_to_send(), "pub")
    assert not [p for p in out if isinstance(p, GenericNack | TransportCc)]
