"""RTP forwarding: content and order per subscriber, rewriting, continuity, malformed input."""

from __future__ import annotations

import itertools

import pytest

from router.forwarding import ForwardingUsageError, LayerSpec
from router.forwarding.link_config import LinkConfig
from router.forwarding.packet import abs_send_time, outgoing_tail
from router.forwarding.specs import ABS_SEND_TIME, SDES_MID, TRANSPORT_WIDE_CC
from router.rtp import ExtensionBlock, HeaderExtension, RtpDecodeError, RtpPacket
from tests.forwarding.helpers import (
    OPUS,
    VP8,
    audio_track,
    make_forwarder,
    parsed,
    room,
    rtp,
    subscription,
    video_track,
)


def test_every_subscriber_gets_every_payload_in_order() -> None:
    fwd = make_forwarder()
    subs = room(fwd, 3)
    for i in range(20):
        fwd.route_rtp("pub", rtp(1000 + i, 3000 * i, payload=f"p{i}".encode()), i * 0.01)
    out = fwd.rtp_to_send()
    for n, sub in enumerate(subs):
        packets = parsed(out, sub)
        assert [p.payload for p in packets] == [f"p{i}".encode() for i in range(20)]
        assert {p.ssrc for p in packets} == {0xA000 + n}
        seqs = [p.sequence_number for p in packets]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        ts = [p.timestamp for p in packets]
        assert all((b - a) & 0xFFFFFFFF == 3000 for a, b in itertools.pairwise(ts))
    assert fwd.rtp_to_send() == []


def test_bytearray_input_and_output_is_bytes() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    assert fwd.route_rtp("pub", bytearray(rtp(5)), 0.0) == 1
    [(sub, data)] = fwd.rtp_to_send()
    assert sub == "s0" and type(data) is bytes


def test_payload_type_mapping_and_unnegotiated_codec() -> None:
    fwd = make_forwarder()
    fwd.add_participant("pub")
    fwd.add_track(video_track(), 0.0)
    for name, codecs in (("same", {VP8: 96}), ("other", {VP8: 100}), ("none", {OPUS: 111})):
        fwd.add_participant(name)
        fwd.subscribe(subscription(name, codecs=codecs), 0.0)
    fwd.route_rtp("pub", rtp(1, marker=True), 0.0)
    out = fwd.rtp_to_send()
    assert [(p.payload_type, p.marker) for p in parsed(out, "same")] == [(96, True)]
    assert [(p.payload_type, p.marker) for p in parsed(out, "other")] == [(100, True)]
    assert parsed(out, "none") == []


def _elements(packet: RtpPacket) -> dict[int, bytes]:
    assert packet.extension is not None
    return {e.id: e.data for e in packet.extension.elements}


def test_extension_ids_rewritten_mid_and_rid_stripped_abs_send_time_ours() -> None:
    fwd = make_forwarder()
    fwd.add_participant("pub")
    fwd.add_track(video_track(), 0.0)
    fwd.add_participant("a")
    fwd.subscribe(subscription("a", extensions={ABS_SEND_TIME: 2}), 0.0)
    fwd.add_participant("b")
    fwd.subscribe(subscription("b", extensions={ABS_SEND_TIME: 9, TRANSPORT_WIDE_CC: 14}), 0.0)
    fwd.add_participant("c")
    fwd.subscribe(subscription("c", extensions={}), 0.0)
    packet = rtp(1, ext={1: b"0", 2: b"\x01\x02\x03", 3: b"\x00\x07", 4: b"h"}, payload=b"xyz")
    fwd.route_rtp("pub", packet, 1.5)
    out = fwd.rtp_to_send()
    [a] = parsed(out, "a")
    [b] = parsed(out, "b")
    [c] = parsed(out, "c")
    ours = abs_send_time(1.5).to_bytes(3, "big")
    assert ours == b"\x06\x00\x00"
    # The publisher's abs-send-time is replaced by the router's send time (see routing.py);
    # with transport-cc negotiated too, the router's transport-wide number replaces both.
    assert _elements(a) == {2: ours}
    assert _elements(b) == {14: b"\x00\x00"}
    assert c.extension is None
    assert a.payload == b.payload == c.payload == b"xyz"
    # Stripped elements are left out (the 16-byte block shrinks, or goes when nothing is left).
    assert len(dict(out)["c"]) == len(packet) - 16
    assert len(dict(out)["a"]) == len(packet) - 8


def test_abs_send_time_inserted_when_the_publisher_sent_none() -> None:
    fwd = make_forwarder()
    fwd.add_participant("pub")
    fwd.add_track(video_track(extensions={}), 0.0)
    for name, ast_id in (("one", 2), ("two", 20)):
        fwd.add_participant(name)
        fwd.subscribe(subscription(name, extensions={ABS_SEND_TIME: ast_id}), 0.0)
    fwd.add_participant("none")
    fwd.subscribe(subscription("none", extensions={}), 0.0)
    packet = rtp(1, payload=b"media", marker=True)
    fwd.route_rtp("pub", packet, 3.0)
    out = fwd.rtp_to_send()
    value = abs_send_time(3.0).to_bytes(3, "big")
    [one], [two], [none] = parsed(out, "one"), parsed(out, "two"), parsed(out, "none")
    assert _elements(one) == {2: value} and one.extension.profile == 0xBEDE  # type: ignore[union-attr]
    assert _elements(two) == {20: value} and two.extension.profile == 0x1000  # type: ignore[union-attr]
    assert none.extension is None and dict(out)["none"][12:] == packet[12:]
    assert one.payload == two.payload == b"media" and one.marker and two.marker


def test_outgoing_tail_appends_to_an_existing_block() -> None:
    two_byte = RtpPacket(
        96, 1, 0, 5, extension=ExtensionBlock(0x1000, (HeaderExtension(7, b"abcdefghijklmnopq"),)),
        payload=b"p",
    ).build()  # fmt: skip
    b0, tail = outgoing_tail(two_byte, None, 3, 0xABCDEF)
    parsed_two = RtpPacket.parse(bytes([b0]) + two_byte[1:12] + tail)
    assert _elements(parsed_two) == {7: b"abcdefghijklmnopq", 3: b"\xab\xcd\xef"}
    one_byte = rtp(1, ext={5: b"x"})
    b0, tail = outgoing_tail(one_byte, None, 15, 1)  # id 15 cannot go in a one-byte block
    assert bytes([b0]) + one_byte[1:12] + tail == one_byte
    assert outgoing_tail(one_byte, None, 0, 1) == (one_byte[0], one_byte[12:])
    with pytest.raises(RtpDecodeError):
        outgoing_tail(b"\x90\x60" + bytes(10) + b"\xbe\xde\x00\x09", None, 2, 1)
    assert abs_send_time(64.0) == 0 and abs_send_time(1 / 262144) == 1


def test_identity_extension_mapping_keeps_bytes() -> None:
    fwd = make_forwarder()
    toffset = "urn:ietf:params:rtp-hdrext:toffset"
    ext = {SDES_MID: 1, toffset: 5}
    fwd.add_participant("pub")
    fwd.add_track(video_track(extensions={toffset: 5}), 0.0)
    fwd.add_participant("s")
    fwd.subscribe(subscription("s", extensions=ext), 0.0)
    packet = rtp(1, ext={5: b"\x00\x00\x01"})
    fwd.route_rtp("pub", packet, 0.0)
    [(_, data)] = fwd.rtp_to_send()
    assert data[12:] == packet[12:]


def test_duplicates_dropped_late_packets_forwarded_gaps_kept() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for seq in (10, 11, 13, 11, 12, 14, 14):
        fwd.route_rtp("pub", rtp(seq, payload=bytes([seq])), 0.0)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert [p.payload[0] for p in got] == [10, 11, 13, 12, 14]
    base = got[0].sequence_number
    assert [(p.sequence_number - base) & 0xFFFF for p in got] == [0, 1, 3, 2, 4]
    assert fwd.counters.rtp_duplicate == 2


def test_sequence_wraparound() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i in range(10):
        fwd.route_rtp("pub", rtp(65530 + i), 0.0)
    got = parsed(fwd.rtp_to_send(), "s0")
    seqs = [p.sequence_number for p in got]
    assert len(seqs) == 10
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def test_publisher_restart_with_new_ssrc_is_continuous() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i in range(5):
        fwd.route_rtp("pub", rtp(100 + i, 1000 + 3000 * i, ssrc=0x1000), i * 0.033)
    # Same mid, new SSRC, unrelated numbering: bound through the MID extension.
    for i in range(5):
        fwd.route_rtp(
            "pub", rtp(7000 + i, 5_000_000 + 3000 * i, ssrc=0x3333, ext={1: b"0"}), 1.0 + i * 0.033
        )
    got = parsed(fwd.rtp_to_send(), "s0")
    assert len(got) == 10 and {p.ssrc for p in got} == {0xA000}
    seqs = [p.sequence_number for p in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    gap = (got[5].timestamp - got[4].timestamp) & 0xFFFFFFFF
    assert gap == round((1.0 - 4 * 0.033) * 90000)
    assert (got[6].timestamp - got[5].timestamp) & 0xFFFFFFFF == 3000
    stats = fwd.stats()
    assert stats.streams == 1  # the old SSRC is forgotten


def test_same_ssrc_sequence_jump_restarts_after_confirmation() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i in range(3):
        fwd.route_rtp("pub", rtp(100 + i, 3000 * i), i * 0.03)
    for i in range(3):
        fwd.route_rtp("pub", rtp(40000 + i, 9_000_000 + 3000 * i), 1 + i * 0.03)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert len(got) == 5  # the first packet after the jump waits for confirmation
    seqs = [p.sequence_number for p in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert fwd.counters.rtp_restarts == 1 and fwd.counters.rtp_out_of_range == 1


def test_republish_under_same_track_id_continues() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    fwd.route_rtp("pub", rtp(1, 100), 0.0)
    fwd.remove_track("v", 0.5)
    assert fwd.stats().waiting_track_ids == 1
    fwd.add_participant("pub2")
    fwd.add_track(video_track(publisher="pub2", ssrc=0x5555), 1.0)
    fwd.route_rtp("pub2", rtp(30000, 777, ssrc=0x5555), 1.0)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert (got[1].sequence_number - got[0].sequence_number) & 0xFFFF == 1
    assert (got[1].timestamp - got[0].timestamp) & 0xFFFFFFFF == 90000
    assert got[1].ssrc == got[0].ssrc == 0xA000


def test_retarget_to_another_track_continues() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    fwd.add_track(video_track("v2", ssrc=0x6000, mid="2"), 0.0)
    fwd.route_rtp("pub", rtp(1, 100), 0.0)
    fwd.retarget("s0", "v", "v2", 0.1)
    fwd.route_rtp("pub", rtp(2, 3100), 0.2)  # old track: no longer forwarded
    fwd.route_rtp("pub", rtp(500, 9, ssrc=0x6000), 0.2)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert len(got) == 2
    assert (got[1].sequence_number - got[0].sequence_number) & 0xFFFF == 1
    assert (got[1].timestamp - got[0].timestamp) & 0xFFFFFFFF == 18000


def test_simulcast_bound_by_rid_and_best_layer_chosen() -> None:
    # Without the link logic the best receiving layer is taken at once (the layer choice and
    # keyframe-aligned switching are in test_layers.py).
    fwd = make_forwarder(link=LinkConfig(enabled=False))
    layers = (LayerSpec("h"), LayerSpec("m"), LayerSpec("l"))
    room(fwd, 1, track=video_track(ssrc=None, layers=layers))
    fwd.route_rtp("pub", rtp(1, ssrc=0x33, ext={1: b"0", 4: b"l"}, payload=b"low"), 0.0)
    fwd.route_rtp("pub", rtp(2, ssrc=0x33, payload=b"low"), 0.01)
    assert [p.payload for p in parsed(fwd.rtp_to_send(), "s0")] == [b"low", b"low"]
    fwd.route_rtp("pub", rtp(50, ssrc=0x11, ext={1: b"0", 4: b"h"}, payload=b"high"), 0.02)
    fwd.route_rtp("pub", rtp(3, ssrc=0x33, payload=b"low"), 0.03)
    fwd.route_rtp("pub", rtp(51, ssrc=0x11, payload=b"high"), 0.04)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert [p.payload for p in got] == [b"high", b"high"]
    assert fwd.stats().streams == 2
    fwd.select_layer("s0", "v", 2, 0.05)
    fwd.route_rtp("pub", rtp(4, ssrc=0x33, payload=b"low"), 0.06)
    assert [p.payload for p in parsed(fwd.rtp_to_send(), "s0")] == [b"low"]


def test_rtx_from_publisher_is_unwrapped_and_padding_probes_dropped() -> None:
    fwd = make_forwarder()
    room(fwd, 1, track=video_track(rtx_ssrc=0x1001))
    fwd.route_rtp("pub", rtp(10, payload=b"a"), 0.0)
    fwd.route_rtp("pub", rtp(12, payload=b"c"), 0.0)
    fwd.route_rtp("pub", rtp(500, ssrc=0x1001, pt=97, payload=b"\x00\x0bb"), 0.1)
    fwd.route_rtp("pub", rtp(501, ssrc=0x1001, pt=97, payload=b"\x00\x0bb"), 0.1)  # dup repair
    probe = RtpPacket(97, 502, 0, 0x1001, payload=b"", padding_size=200).build()
    fwd.route_rtp("pub", probe, 0.1)
    got = parsed(fwd.rtp_to_send(), "s0")
    assert [p.payload for p in got] == [b"a", b"c", b"b"]
    assert [p.payload_type for p in got] == [96, 96, 96]
    assert (got[2].sequence_number - got[0].sequence_number) & 0xFFFF == 1
    assert fwd.counters.rtp_padding_probe == 1 and fwd.counters.rtp_duplicate == 1


def test_audio_and_video_routed_separately() -> None:
    fwd = make_forwarder()
    room(fwd, 0)
    fwd.add_track(audio_track(), 0.0)
    fwd.add_participant("s")
    fwd.subscribe(subscription("s", "a", 0xB000), 0.0)
    fwd.route_rtp("pub", rtp(1, ssrc=0x2000, pt=111), 0.0)
    fwd.route_rtp("pub", rtp(1, ssrc=0x1000, pt=96), 0.0)
    got = parsed(fwd.rtp_to_send(), "s")
    assert [(p.ssrc, p.payload_type) for p in got] == [(0xB000, 111)]


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x80",
        bytes(11),
        b"\x40" + bytes(11),  # version 1
        b"\x8f" + bytes(15),  # 15 CSRCs announced, none present
        b"\x90\x60" + bytes(10) + b"\xbe\xde\x00\x09",  # extension runs past the end
        b"\xa0\x60" + bytes(10) + b"\x00\x00\x00\x00",  # padding count 0
        b"\xa0\x60" + bytes(10) + b"\x00\x00\x00\x09",  # padding longer than payload
    ],
)
def test_malformed_rtp_is_counted_not_raised(packet: bytes) -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    assert fwd.route_rtp("pub", packet, 0.0) == 0
    assert fwd.counters.rtp_malformed == 1
    assert fwd.rtp_to_send() == []


def test_unknown_sources_are_counted() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    assert fwd.route_rtp("nobody", rtp(1), 0.0) == 0
    assert fwd.route_rtp("pub", rtp(1, ssrc=0x9999, ext={1: b"zz"}), 0.0) == 0
    assert fwd.route_rtp("pub", rtp(1, pt=55), 0.0) == 0
    c = fwd.counters
    assert (c.rtp_unknown_participant, c.rtp_unknown_ssrc, c.rtp_bad_payload_type) == (1, 1, 1)


def test_a_publisher_cannot_inject_into_another_publishers_ssrc() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    fwd.add_participant("evil")
    assert fwd.route_rtp("evil", rtp(1, ssrc=0x1000), 0.0) == 0


def test_api_misuse_raises_usage_error() -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    with pytest.raises(ForwardingUsageError):
        fwd.add_participant("pub")
    with pytest.raises(ForwardingUsageError):
        fwd.add_track(video_track(), 0.0)
    with pytest.raises(ForwardingUsageError):
        fwd.subscribe(subscription("s0"), 0.0)
    with pytest.raises(ForwardingUsageError):
        fwd.unsubscribe("s0", "nope", 0.0)
    with pytest.raises(ForwardingUsageError):
        fwd.subscribe(subscription("ghost"), 0.0)
