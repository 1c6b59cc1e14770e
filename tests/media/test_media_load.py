"""Properties of the shared media load (benchmarks.media): what goes on the wire parses back
with the project's RTP/RTCP codecs into exactly what the generators meant to send."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.media import (
    CHROMIUM_AUDIO,
    CHROMIUM_SIMULCAST,
    CHROMIUM_VIDEO,
    AudioStream,
    HeaderTemplate,
    Publisher,
    ReceiverFeedback,
    SenderReports,
    TransportSequence,
    VideoStream,
    Vp8Descriptor,
    Vp8Error,
    abs_send_time,
    is_keyframe_start,
    read_tail,
    write_tail,
)
from benchmarks.media.streams import MediaPacket
from router.rtp import (
    GenericNack,
    Pli,
    ReceiverReport,
    Sdes,
    SenderReport,
    TransportCc,
    decode_abs_send_time,
    decode_transport_seq,
    parse_rtcp_compound,
    parse_rtp,
)

descriptors = st.builds(
    Vp8Descriptor,
    start_of_partition=st.booleans(), partition_index=st.integers(0, 7),
    non_reference=st.booleans(), picture_id=st.none() | st.integers(0, 0x7FFF),
    long_picture_id=st.booleans(), tl0_pic_idx=st.none() | st.integers(0, 255),
    temporal_id=st.none() | st.integers(0, 3), layer_sync=st.booleans(),
    key_idx=st.none() | st.integers(0, 31),
)  # fmt: skip


@given(descriptors, st.binary(max_size=20))
def test_vp8_descriptor_round_trips(descriptor: Vp8Descriptor, rest: bytes) -> None:
    wire = descriptor.encode()
    parsed, size = Vp8Descriptor.parse(wire + rest)
    assert size == len(wire)
    expected_long = descriptor.picture_id is not None and (
        descriptor.long_picture_id or descriptor.picture_id > 0x7F)
    assert parsed.picture_id == descriptor.picture_id
    assert parsed.long_picture_id == expected_long
    assert parsed.tl0_pic_idx == descriptor.tl0_pic_idx
    assert parsed.start_of_partition == descriptor.start_of_partition
    assert parsed.partition_index == descriptor.partition_index
    assert parsed.non_reference == descriptor.non_reference
    if descriptor.temporal_id is not None:
        assert (parsed.temporal_id, parsed.layer_sync) == (descriptor.temporal_id,
                                                           descriptor.layer_sync)
    if descriptor.key_idx is not None:
        assert parsed.key_idx == descriptor.key_idx


@given(st.binary(max_size=8))
def test_vp8_parse_rejects_or_accepts_without_crashing(data: bytes) -> None:
    try:
        _, size = Vp8Descriptor.parse(data)
    except Vp8Error:
        return
    assert 1 <= size <= len(data)


def test_vp8_descriptor_rejects_out_of_range_values() -> None:
    with pytest.raises(Vp8Error, match="picture id"):
        Vp8Descriptor(True, picture_id=0x8000).encode()
    with pytest.raises(Vp8Error, match="partition"):
        Vp8Descriptor(True, partition_index=8).encode()


@given(seq=st.integers(0, 0xFFFF), timestamp=st.integers(0, 0xFFFFFFFF), marker=st.booleans(),
       now=st.floats(0, 1e6), transport_seq=st.integers(0, 0xFFFF),
       level=st.integers(0, 127), voice=st.booleans(), payload=st.binary(min_size=16,
                                                                          max_size=64))
def test_header_template_renders_what_the_codec_parses(
        seq: int, timestamp: int, marker: bool, now: float, transport_seq: int, level: int,
        voice: bool, payload: bytes) -> None:
    ids = CHROMIUM_AUDIO
    template = HeaderTemplate(ssrc=0x1234, payload_type=111, ids=ids, mid="0")
    packet = parse_rtp(template.render(payload, seq=seq, timestamp=timestamp, marker=marker,
                                       now=now, transport_seq=transport_seq,
                                       audio_level=level, voice=voice))
    assert (packet.sequence_number, packet.timestamp, packet.marker, packet.ssrc,
            packet.payload_type) == (seq, timestamp, marker, 0x1234, 111)
    assert packet.payload == payload
    ext = packet.extension
    assert ext is not None
    assert ext.get(4) == b"0"
    assert decode_abs_send_time(ext.get(2) or b"") == abs_send_time(now)
    assert decode_transport_seq(ext.get(3) or b"") == transport_seq
    assert ext.get(1) == bytes([(0x80 if voice else 0) | level])


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
       st.binary(min_size=16, max_size=40))
def test_tail_stamp_round_trips(stream: int, number: int, ns: int, payload: bytes) -> None:
    packet = bytearray(b"\x80\x60" + bytes(10) + payload)
    write_tail(packet, stream, number, ns)
    assert read_tail(bytes(packet)) == (stream, number, ns)
    assert packet[:12] == b"\x80\x60" + bytes(10)


def _run(source: VideoStream | AudioStream | Publisher, seconds: float,
         step: float = 0.005) -> list[MediaPacket]:
    out: list[MediaPacket] = []
    t = 0.0
    while t <= seconds:
        out += source.poll(t)
        t += step
    return out


def test_video_is_vp8_shaped_with_keyframe_bursts_every_two_seconds() -> None:
    video = VideoStream(stream=7, ssrc=99, start=0.0, bitrate_bps=1_000_000,
                        transport=TransportSequence(), rng=random.Random(1), temporal_layers=3)
    packets = _run(video, 3.99)
    parsed = [parse_rtp(p.data) for p in packets]
    assert all(len(p.payload) <= 1100 for p in parsed)
    frames = [p for p in parsed if p.marker]
    assert len(frames) == 120  # 30 fps for 4 s
    seqs = [p.sequence_number for p in parsed]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    starts = [(pkt, Vp8Descriptor.parse(p.payload)[0]) for pkt, p in zip(packets, parsed,
                                                                           strict=True)]
    keyframes = [pkt for pkt, d in starts if d.start_of_partition and pkt.keyframe]
    assert [round(k.due, 1) for k in keyframes] == [0.0, 2.0]
    assert all(is_keyframe_start(parse_rtp(k.data).payload) for k in keyframes)
    burst = sum(1 for p in packets if p.keyframe)
    assert burst > 2 * 4 * len(keyframes)  # a keyframe is several times a delta frame
    pictures = [d.picture_id or 0 for _, d in starts if d.start_of_partition]
    assert all((b - a) & 0x7FFF == 1 for a, b in itertools.pairwise(pictures))
    tids = [d.temporal_id for _, d in starts if d.start_of_partition]
    assert set(tids) == {0, 1, 2}
    # Average rate within 30 % of the target (keyframes add on top of delta frames).
    total_bits = sum(len(p.payload) * 8 for p in parsed)
    assert 0.8e6 < total_bits / 4 < 2.0e6
    # Pacing: a burst leaves over time, never before its frame.
    assert all(pkt.due >= 0 for pkt in packets)
    assert packets[-1].due > packets[0].due


def test_audio_is_fifty_opus_packets_a_second_with_audio_level() -> None:
    audio = AudioStream(stream=1, ssrc=5, start=0.0, transport=None, rng=random.Random(2))
    packets = [parse_rtp(p.data) for p in _run(audio, 1.999)]
    assert len(packets) == 100
    assert {(b.timestamp - a.timestamp) & 0xFFFFFFFF
            for a, b in itertools.pairwise(packets)} == {960}
    assert all(60 <= len(p.payload) <= 120 and p.payload[0] == 0x78 for p in packets)
    assert all(p.extension is not None and p.extension.get(1) is not None for p in packets)


def test_publisher_numbers_its_transport_in_send_order_across_simulcast_layers() -> None:
    rng = random.Random(3)
    publisher = Publisher.meeting(first_stream=10, ssrcs=[1, 2, 3, 4], start=0.0, rng=rng,
                                  simulcast=CHROMIUM_SIMULCAST, temporal_layers=3)
    packets = _run(publisher, 2.5)
    dues = [p.due for p in packets]
    assert dues == sorted(dues)
    parsed = [parse_rtp(p.data) for p in packets]
    twcc = [decode_transport_seq(p.extension.get(3) or b"") for p in parsed if p.extension]
    assert len(twcc) == len(parsed)
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(twcc))
    rids = {p.ssrc: p.extension.get(CHROMIUM_VIDEO.rid or 0) for p in parsed if p.extension}
    assert rids == {1: None, 2: b"q", 3: b"h", 4: b"f"}
    assert {p.stream for p in packets} == {10, 11, 12, 13}
    publisher.request_keyframe(4)
    later = publisher.poll(2.6)
    assert any(p.keyframe and p.stream == 13 for p in later)
    assert not any(p.keyframe and p.stream == 11 for p in later)


def test_publisher_sender_reports_come_at_chromium_rates_and_count_right() -> None:
    rng = random.Random(4)
    publisher = Publisher.meeting(first_stream=0, ssrcs=[11, 12], start=0.0, rng=rng)
    reports = SenderReports(publisher.streams, rng)
    by_ssrc: dict[int, list[SenderReport]] = {11: [], 12: []}
    t = 0.0
    while t < 20:
        publisher.poll(t)
        for datagram in reports.poll(t):
            sr, sdes = parse_rtcp_compound(datagram)
            assert isinstance(sr, SenderReport) and isinstance(sdes, Sdes)
            assert sdes.cname(sr.ssrc) == b"synthetic"
            by_ssrc[sr.ssrc].append(sr)
        t += 0.01
    assert 2 <= len(by_ssrc[11]) <= 8  # audio: about every 5 s
    assert 12 <= len(by_ssrc[12]) <= 30  # video: about every second
    last = by_ssrc[11][-1]
    assert 0 < last.packet_count <= 50 * 20


def _feed(feedback: ReceiverFeedback, packets: list[MediaPacket], skip: set[int]) -> list[bytes]:
    out = []
    for i, p in enumerate(packets):
        if i not in skip:
            feedback.on_rtp(p.due, p.data)
        out += feedback.poll(p.due)
    return out


def test_subscriber_feedback_nacks_gaps_and_reports() -> None:
    rng = random.Random(5)
    publisher = Publisher.meeting(first_stream=0, ssrcs=[21, 22], start=0.0, rng=rng)
    packets = _run(publisher, 3.0)
    feedback = ReceiverFeedback(ssrc=777, rng=random.Random(6), transport_cc_id=3,
                                pli_interval=None)
    video_index = next(i for i, p in enumerate(packets) if p.kind == "video" and i > 50)
    lost_seq = parse_rtp(packets[video_index].data).sequence_number
    datagrams = _feed(feedback, packets, skip={video_index}) + feedback.poll(3.2)
    parsed = [pkt for d in datagrams for pkt in parse_rtcp_compound(d)]
    nacks = [p for p in parsed if isinstance(p, GenericNack)]
    assert nacks and all(p.media_ssrc == 22 for p in nacks)
    assert {s for n in nacks for s in n.lost_seqs()} == {lost_seq}
    assert len(nacks) == 2  # nack_retries
    reports = [p for p in parsed if isinstance(p, ReceiverReport)]
    assert 2 <= len(reports) <= 6
    assert {b.ssrc for b in reports[-1].reports} == {21, 22}
    assert not any(isinstance(p, Pli) for p in parsed)  # video started with a keyframe
    twcc = [p for p in parsed if isinstance(p, TransportCc)]
    assert 25 <= len(twcc) <= 31  # every 100 ms
    results = [r for fb in twcc for r in fb.packet_results()]
    lost_ext = parse_rtp(packets[video_index].data).extension
    assert lost_ext is not None
    lost_twcc = decode_transport_seq(lost_ext.get(3) or b"")
    not_received = {seq for seq, status, _ in results if status == 0}
    assert not_received == {lost_twcc}
    assert sum(1 for _, status, _ in results if status) == len(packets) - 1


def test_subscriber_asks_for_a_keyframe_when_joining_mid_stream() -> None:
    rng = random.Random(7)
    video = VideoStream(stream=0, ssrc=31, start=0.0, bitrate_bps=500_000,
                        transport=None, rng=rng)
    packets = [p for p in _run(video, 1.0) if not p.keyframe]
    feedback = ReceiverFeedback(ssrc=1, rng=random.Random(8), pli_interval=None)
    plis = [p for d in _feed(feedback, packets, set()) for p in parse_rtcp_compound(d)
            if isinstance(p, Pli)]
    assert [p.media_ssrc for p in plis] == [31]


def test_simulated_loss_produces_nacks_at_about_the_asked_rate() -> None:
    rng = random.Random(9)
    video = VideoStream(stream=0, ssrc=41, start=0.0, bitrate_bps=2_000_000,
                        transport=None, rng=rng)
    packets = _run(video, 5.0)
    feedback = ReceiverFeedback(ssrc=1, rng=random.Random(10), nack_probability=0.02,
                                nack_retries=1, pli_interval=None)
    nacked = [s for d in _feed(feedback, packets, set()) for p in parse_rtcp_compound(d)
              if isinstance(p, GenericNack) for s in p.lost_seqs()]
    assert 0.005 * len(packets) < len(nacked) < 0.05 * len(packets)


def _keyframe_times(source: VideoStream | Publisher, seconds: float) -> list[float]:
    packets = _run(source, seconds)
    return [round(p.due, 2) for p in packets
            if p.keyframe and p.kind == "video" and Vp8Descriptor.parse(
                parse_rtp(p.data).payload)[0].start_of_partition]


def test_periodic_keyframes_follow_their_phase() -> None:
    video = VideoStream(stream=7, ssrc=99, start=0.0, bitrate_bps=500_000, transport=None,
                        rng=random.Random(3), keyframe_phase=0.5)
    times = _keyframe_times(video, 4.8)
    # Due on the 30 fps frame grid: each at the first frame at or after its time.
    assert len(times) == 4
    for due, expected in zip(times, [0.0, 0.5, 2.5, 4.5], strict=True):
        assert expected <= due < expected + 3 / 30


def test_meeting_publishers_do_not_keyframe_in_step() -> None:
    rng = random.Random(5)
    phases = set()
    for n in range(10):
        publisher = Publisher.meeting(first_stream=2 * n, ssrcs=[2 * n + 1, 2 * n + 2],
                                      start=0.0, rng=rng, video_bps=300_000)
        times = _keyframe_times(publisher, 2.5)
        assert times[0] < 1 / 30 + 0.01  # every stream starts with a keyframe
        assert len(times) >= 2  # and has a periodic one within the 2 s interval
        phases.add(round(times[1] - times[0], 1))
    assert len(phases) >= 5  # spread over the interval, not one burst of ten keyframes


def test_streams_refuse_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="max_payload"):
        VideoStream(stream=0, ssrc=1, start=0.0, bitrate_bps=1e6, transport=None,
                    rng=random.Random(), max_payload=5000)
    with pytest.raises(ValueError, match="positive"):
        VideoStream(stream=0, ssrc=1, start=0.0, bitrate_bps=0, transport=None,
                    rng=random.Random())
    with pytest.raises(ValueError, match="keyframe_phase"):
        VideoStream(stream=0, ssrc=1, start=0.0, bitrate_bps=1e6, transport=None,
                    rng=random.Random(), keyframe_phase=3.0)
    with pytest.raises(ValueError, match="SSRCs"):
        Publisher.meeting(first_stream=0, ssrcs=[1], start=0.0, rng=random.Random())


def test_publisher_resumes_after_a_pause_without_a_backlog() -> None:
    publisher = Publisher.meeting(first_stream=0, ssrcs=[1, 2], start=0.0,
                                  rng=random.Random(11), video_bps=500_000)
    first = _run(publisher, 1.0)
    publisher.resume(100.0, video_bps=2_000_000)
    later = publisher.poll(100.0)
    assert len(later) < 40  # one frame (maybe a keyframe) and one audio packet
    t = 100.005
    while t < 101.0:
        later += publisher.poll(t)
        t += 0.005
    video_bytes = [sum(len(p.data) for p in packets if p.kind == "video")
                   for packets in (first, later)]
    assert video_bytes[1] > 2.5 * video_bytes[0]
    numbers = [p.number for p in first + later if p.stream == 1]
    assert numbers == list(range(len(numbers)))
