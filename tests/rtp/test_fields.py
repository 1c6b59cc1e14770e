"""Hot-path accessors, in-place rewriters and the RTP/RTCP classifier."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.rtp import (
    ExtensionBlock,
    HeaderExtension,
    RtpDecodeError,
    RtpEncodeError,
    RtpPacket,
    find_rtp_extension,
    is_rtcp,
    is_rtp,
    is_rtp_or_rtcp,
    read_rtp_header_fields,
    rtp_marker,
    rtp_payload_type,
    rtp_seq,
    rtp_ssrc,
    rtp_timestamp,
    set_rtp_marker,
    set_rtp_payload_type,
    set_rtp_seq,
    set_rtp_ssrc,
    set_rtp_ssrc_seq_timestamp,
    set_rtp_timestamp,
)
from tests.rtp.strategies import rtp_packets
from tests.rtp.test_rtp_packet import CHROME_RTP


@given(rtp_packets)
def test_accessors_agree_with_full_parse(pkt: RtpPacket) -> None:
    data = pkt.build()
    for buf in (data, bytearray(data), memoryview(data)):
        assert read_rtp_header_fields(buf) == (
            pkt.payload_type,
            pkt.marker,
            pkt.sequence_number,
            pkt.timestamp,
            pkt.ssrc,
        )
        assert rtp_ssrc(buf) == pkt.ssrc
        assert rtp_seq(buf) == pkt.sequence_number
        assert rtp_timestamp(buf) == pkt.timestamp
        assert rtp_payload_type(buf) == pkt.payload_type
        assert rtp_marker(buf) is pkt.marker
    # RFC 5761: the second byte (marker | PT) in 192..223 reads as RTCP, which is why
    # payload types 64..95 must not be used under rtcp-mux.
    assert is_rtp(data) == (not (pkt.marker and 64 <= pkt.payload_type <= 95))
    assert is_rtp_or_rtcp(data)


@given(rtp_packets, st.integers(0, 2**32 - 1), st.integers(-5, 2**17), st.integers(-5, 2**33))
def test_in_place_rewrite(pkt: RtpPacket, ssrc: int, seq: int, ts: int) -> None:
    buf = bytearray(pkt.build())
    set_rtp_ssrc_seq_timestamp(buf, ssrc, seq, ts)
    expected = RtpPacket.parse(buf)
    assert (expected.ssrc, expected.sequence_number, expected.timestamp) == (
        ssrc,
        seq & 0xFFFF,
        ts & 0xFFFFFFFF,
    )
    assert expected.payload == pkt.payload and expected.extension == pkt.extension
    buf2 = bytearray(pkt.build())
    set_rtp_ssrc(buf2, ssrc)
    set_rtp_seq(buf2, seq)
    set_rtp_timestamp(buf2, ts)
    assert buf2 == buf
    set_rtp_payload_type(buf2, 127 - pkt.payload_type)
    set_rtp_marker(buf2, not pkt.marker)
    assert read_rtp_header_fields(buf2)[:2] == (127 - pkt.payload_type, not pkt.marker)


def test_rewrite_through_memoryview_slice() -> None:
    backing = bytearray(100)
    backing[10:22] = bytes.fromhex("800000010000000200000003")
    view = memoryview(backing)[10:22]
    set_rtp_ssrc_seq_timestamp(view, 0xAABBCCDD, 7, 9)
    assert read_rtp_header_fields(backing[10:22]) == (0, False, 7, 9, 0xAABBCCDD)


@pytest.mark.parametrize(
    "reader",
    [read_rtp_header_fields, rtp_ssrc, rtp_seq, rtp_timestamp, rtp_payload_type, rtp_marker],
)
def test_readers_reject_short_buffers(reader: object) -> None:
    with pytest.raises(
        RtpDecodeError, match=r"^RTP packet truncated: 11 bytes, fixed header needs 12$"
    ):
        reader(bytes(11))  # type: ignore[operator]


def test_read_fields_rejects_bad_version() -> None:
    with pytest.raises(RtpDecodeError, match=r"^RTP version 0 is not 2$"):
        read_rtp_header_fields(bytes(12))


def test_rewriters_reject_bad_input() -> None:
    with pytest.raises(RtpEncodeError, match="cannot rewrite RTP header in place"):
        set_rtp_ssrc(bytearray(12), 2**32)
    with pytest.raises(RtpEncodeError, match="cannot rewrite RTP header in place"):
        set_rtp_ssrc_seq_timestamp(bytearray(8), 1, 1, 1)
    with pytest.raises(RtpEncodeError, match="cannot rewrite RTP header in place"):
        set_rtp_seq(bytearray(3), 1)
    with pytest.raises(RtpEncodeError, match="cannot rewrite RTP header in place"):
        set_rtp_ssrc(bytes(12), 1)  # type: ignore[arg-type]
    with pytest.raises(RtpEncodeError, match=r"^RTP payload type 128 out of range 0..127$"):
        set_rtp_payload_type(bytearray(12), 128)
    with pytest.raises(RtpEncodeError, match="buffer has 4 bytes"):
        set_rtp_marker(bytearray(4), True)
    with pytest.raises(RtpEncodeError, match="buffer has 4 bytes"):
        set_rtp_payload_type(bytearray(4), 1)


@pytest.mark.parametrize(
    ("first", "second", "rtp", "rtcp"),
    [
        (0x80, 96, True, False),  # RTP PT 96
        (0x80, 96 | 0x80, True, False),  # RTP PT 96 with marker
        (0x80, 200, False, True),  # SR
        (0x81, 201, False, True),  # RR
        (0x8F, 205, False, True),  # TWCC
        (0x81, 206, False, True),  # PLI
        (0x80, 192, False, True),  # PT 64 (FIR, RFC 2032) range start
        (0x80, 223, False, True),  # PT 95 range end
        (0x80, 224, True, False),  # PT 96 + marker
        (0x80, 191, True, False),  # PT 63 + marker
        (0x00, 0x01, False, False),  # STUN binding request
        (0x16, 0xFE, False, False),  # DTLS handshake
        (0x40, 0x00, False, False),  # TURN ChannelData
        (0xC0, 0x00, False, False),  # above RTP range (QUIC long header)
    ],
)
def test_classifier(first: int, second: int, rtp: bool, rtcp: bool) -> None:
    buf = bytes([first, second]) + bytes(18)
    assert is_rtp(buf) is rtp
    assert is_rtcp(buf) is rtcp
    assert is_rtp_or_rtcp(buf) is (rtp or rtcp)


def test_classifier_length_guards() -> None:
    assert not is_rtp(b"\x80\x60" + bytes(9))
    assert not is_rtcp(b"\x80\xc8" + bytes(5))
    assert is_rtcp(b"\x80\xc8" + bytes(6))
    assert not is_rtp_or_rtcp(b"")


@given(st.binary(max_size=40))
def test_classifier_and_readers_agree_and_never_crash(data: bytes) -> None:
    rtp, rtcp, either = is_rtp(data), is_rtcp(data), is_rtp_or_rtcp(data)
    assert not (rtp and rtcp), "one datagram is never both"
    assert (rtp or rtcp) <= either, "RTP and RTCP both lie inside the RFC 7983 range"
    assert rtp == (either and not rtcp and len(data) >= 12)
    try:
        payload_type, marker, seq, timestamp, ssrc = read_rtp_header_fields(data)
    except RtpDecodeError:
        assert not rtp or data[0] >> 6 != 2
    else:
        assert len(data) >= 12 and data[0] >> 6 == 2
        assert (payload_type | (0x80 if marker else 0)) == data[1]
        assert (seq, timestamp, ssrc) == (int.from_bytes(data[2:4], "big"),
                                          int.from_bytes(data[4:8], "big"),
                                          int.from_bytes(data[8:12], "big"))
    with contextlib.suppress(RtpDecodeError):
        found = find_rtp_extension(data, 3)
        if found is not None:
            offset, length = found
            assert 12 <= offset and offset + length <= len(data)


def test_find_extension_in_chrome_packet_and_rewrite() -> None:
    buf = bytearray(CHROME_RTP)
    assert find_rtp_extension(buf, 2) == (17, 3)
    loc = find_rtp_extension(buf, 3)
    assert loc == (21, 2)
    assert find_rtp_extension(buf, 4) is None
    off, _ = loc
    buf[off : off + 2] = (0xBEEF).to_bytes(2, "big")
    ext = RtpPacket.parse(buf).extension
    assert ext is not None and ext.get(3) == b"\xbe\xef"


def test_find_extension_without_extension_block() -> None:
    assert find_rtp_extension(bytes.fromhex("800000010000000200000003"), 1) is None
    with pytest.raises(RtpDecodeError, match=r"^RTP version 3 is not 2$"):
        find_rtp_extension(bytes.fromhex("c00000010000000200000003"), 1)
    with pytest.raises(RtpDecodeError, match="needs 16 bytes, packet has 12"):
        find_rtp_extension(bytes.fromhex("900000010000000200000003"), 1)
    with pytest.raises(RtpDecodeError, match="length 1 words exceeds packet"):
        find_rtp_extension(bytes.fromhex("900000010000000200000003bede0001"), 1)


@given(rtp_packets)
def test_find_extension_agrees_with_parse(pkt: RtpPacket) -> None:
    data = pkt.build()
    ext = pkt.extension
    for ext_id in (1, 2, 14, 200):
        loc = find_rtp_extension(data, ext_id)
        expected = None
        if ext is not None and ext.elements:
            expected = ext.get(ext_id)
        if expected is None:
            assert loc is None
        else:
            assert loc is not None
            assert data[loc[0] : loc[0] + loc[1]] == expected


def test_find_extension_two_byte() -> None:
    pkt = RtpPacket(96, 1, 2, 3, extension=ExtensionBlock(0x1000, (HeaderExtension(20, b"abc"),)))
    data = pkt.build()
    loc = find_rtp_extension(data, 20)
    assert loc is not None and data[loc[0] : loc[0] + 3] == b"abc"
