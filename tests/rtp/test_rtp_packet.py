"""RTP packet codec: round trips, known vectors, exact errors, hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.errors import LocalProtocolError, RemoteProtocolError
from router.rtp import (
    ExtensionBlock,
    HeaderExtension,
    RtpDecodeError,
    RtpEncodeError,
    RtpPacket,
    decode_abs_send_time,
    decode_transport_seq,
    encode_abs_send_time,
    encode_transport_seq,
    make_extension_block,
    parse_rtp,
)
from tests.rtp.strategies import rtp_packets

# A VP8 packet as Chromium sends it: marker set, PT 96, one-byte extensions with
# abs-send-time (id 2, 3 bytes) and transport-wide-cc (id 3, 2 bytes) plus one padding byte.
CHROME_RTP = bytes.fromhex(
    "90e0"  # V=2 X=1, M=1 PT=96
    "3039"  # seq 12345
    "0001e240"  # timestamp 123456
    "1a2b3c4d"  # SSRC
    "bede0002"  # one-byte profile, 2 words
    "22abcdef"  # id 2 len 3: abs-send-time 0xabcdef
    "31010400"  # id 3 len 2: transport seq 0x0104, then a padding byte
    "9000be00"  # VP8 payload descriptor + some payload
)


def test_chrome_packet_known_vector() -> None:
    pkt = RtpPacket.parse(CHROME_RTP)
    assert pkt.payload_type == 96
    assert pkt.marker is True
    assert pkt.sequence_number == 12345
    assert pkt.timestamp == 123456
    assert pkt.ssrc == 0x1A2B3C4D
    assert pkt.csrcs == ()
    assert pkt.extension == ExtensionBlock(
        0xBEDE, (HeaderExtension(2, b"\xab\xcd\xef"), HeaderExtension(3, b"\x01\x04"))
    )
    assert pkt.extension is not None
    assert decode_abs_send_time(pkt.extension.get(2) or b"") == 0xABCDEF
    assert decode_transport_seq(pkt.extension.get(3) or b"") == 0x0104
    assert pkt.extension.get(9) is None
    assert pkt.payload == bytes.fromhex("9000be00")
    assert pkt.padding_size == 0
    assert pkt.header_size == 24
    # Rebuilding puts the padding byte at the end of the block: same size, same bytes here.
    assert pkt.build() == CHROME_RTP


def test_minimal_packet_bytes() -> None:
    pkt = RtpPacket(payload_type=0, sequence_number=1, timestamp=2, ssrc=3)
    assert pkt.build() == bytes.fromhex("800000010000000200000003")
    assert parse_rtp(pkt.build()) == pkt


def test_csrcs_padding_and_two_byte_extension() -> None:
    pkt = RtpPacket(
        payload_type=111,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0xFFFFFFFF,
        csrcs=(1, 2),
        extension=ExtensionBlock(0x1003, (HeaderExtension(200, b""), HeaderExtension(1, b"x"))),
        payload=b"opus",
        padding_size=3,
    )
    data = pkt.build()
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert data[-3:] == b"\x00\x00\x03"
    assert RtpPacket.parse(data) == pkt


@settings(max_examples=300)
@given(rtp_packets)
def test_round_trip(pkt: RtpPacket) -> None:
    assert RtpPacket.parse(pkt.build()) == pkt


@settings(max_examples=1000)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(RtpDecodeError):
        RtpPacket.parse(data)


@settings(max_examples=500)
@given(rtp_packets, st.data())
def test_mutated_valid_packets_only_raise_decode_error(pkt: RtpPacket, data: st.DataObject) -> None:
    raw = bytearray(pkt.build())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(RtpDecodeError):
        RtpPacket.parse(bytes(raw[:cut]))


def test_errors_are_remote_protocol_errors() -> None:
    assert issubclass(RtpDecodeError, RemoteProtocolError)
    assert issubclass(RtpEncodeError, LocalProtocolError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet truncated: 0 bytes, fixed header needs 12"),
        (
            bytes.fromhex("8000000100000002000000"),
            "RTP packet truncated: 11 bytes, fixed header needs 12",
        ),
        (bytes.fromhex("400000010000000200000003"), "RTP version 1 is not 2"),
        (
            bytes.fromhex("830000010000000200000003") + bytes(8),
            "RTP packet truncated: CSRC count 3 needs 24 bytes, packet has 20",
        ),
        (
            bytes.fromhex("900000010000000200000003bede"),
            "RTP header extension truncated: needs 16 bytes, packet has 14",
        ),
        (
            bytes.fromhex("900000010000000200000003bede000211223344"),
            "RTP header extension length 2 words exceeds packet: needs 24 bytes, packet has 20",
        ),
        (
            bytes.fromhex("900000010000000200000003bede000123112233"),
            "RTP one-byte header extension element 2 length 4 exceeds block: 3 bytes left",
        ),
        (
            bytes.fromhex("90000001000000020000000310000001000010ff"),
            "RTP two-byte header extension element 16 length 255 exceeds block: 0 bytes left",
        ),
        (
            bytes.fromhex("900000010000000200000003100000010000002a"),
            "RTP two-byte header extension element 42 truncated: "
            "1 byte left, element header needs 2",
        ),
        (
            bytes.fromhex("a00000010000000200000003"),
            "RTP padding flag set but packet has no bytes after header",
        ),
        (bytes.fromhex("a0000001000000020000000300"), "RTP padding count 0 is invalid"),
        (
            bytes.fromhex("a00000010000000200000003aa05"),
            "RTP padding count 5 exceeds 2 bytes after header",
        ),
    ],
)
def test_exact_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpDecodeError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


def test_one_byte_id_15_stops_parsing_and_padding_between_elements() -> None:
    # id 1 len 1, two padding bytes, id 2 len 2, then id 15 followed by junk that would be
    # an overlong element if it were parsed.
    block = bytes.fromhex("10aa000021bbccf0ff000000")
    data = bytes.fromhex("900000010000000200000003bede0003") + block
    pkt = RtpPacket.parse(data)
    assert pkt.extension == ExtensionBlock(
        0xBEDE, (HeaderExtension(1, b"\xaa"), HeaderExtension(2, b"\xbb\xcc"))
    )


def test_one_byte_padding_byte_with_nonzero_length_nibble_is_skipped() -> None:
    # libwebrtc treats any ID-0 byte as one byte of padding, whatever its length nibble.
    data = bytes.fromhex("900000010000000200000003bede00010f10aa00")
    pkt = RtpPacket.parse(data)
    assert pkt.extension == ExtensionBlock(0xBEDE, (HeaderExtension(1, b"\xaa"),))


def test_two_byte_padding_between_elements() -> None:
    data = bytes.fromhex("900000010000000200000003100f00020001015500020000")
    pkt = RtpPacket.parse(data)
    assert pkt.extension == ExtensionBlock(
        0x100F, (HeaderExtension(1, b"\x55"), HeaderExtension(2, b""))
    )


def test_opaque_profile_kept_raw() -> None:
    data = bytes.fromhex("900000010000000200000003abcd000101020304ff")
    pkt = RtpPacket.parse(data)
    assert pkt.extension == ExtensionBlock(0xABCD, (), b"\x01\x02\x03\x04")
    assert pkt.payload == b"\xff"
    assert pkt.build() == data


def test_make_extension_block_picks_form() -> None:
    small = (HeaderExtension(1, b"a"), HeaderExtension(14, bytes(16)))
    assert make_extension_block(small).profile == 0xBEDE
    assert make_extension_block((HeaderExtension(15, b"a"),)).profile == 0x1000
    assert make_extension_block((HeaderExtension(1, b""),)).profile == 0x1000
    assert make_extension_block((HeaderExtension(1, bytes(17)),)).profile == 0x1000


def _pkt(**kw: object) -> RtpPacket:
    base: dict[str, object] = {"payload_type": 96, "sequence_number": 1, "timestamp": 1, "ssrc": 1}
    base.update(kw)
    return RtpPacket(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pkt", "message"),
    [
        (_pkt(payload_type=128), "RTP payload type 128 out of range 0..127"),
        (_pkt(sequence_number=65536), "RTP sequence number 65536 out of range 0..65535"),
        (_pkt(timestamp=-1), "RTP timestamp -1 out of range 0..2**32-1"),
        (_pkt(ssrc=2**32), "RTP SSRC 4294967296 out of range 0..2**32-1"),
        (_pkt(csrcs=tuple(range(16))), "RTP CSRC count 16 exceeds 15"),
        (_pkt(csrcs=(-5,)), "RTP CSRC -5 out of range 0..2**32-1"),
        (_pkt(padding_size=256), "RTP padding size 256 out of range 0..255"),
        (
            _pkt(extension=ExtensionBlock(0xBEDE, (HeaderExtension(15, b"a"),))),
            "RTP one-byte header extension id 15 out of range 1..14",
        ),
        (
            _pkt(extension=ExtensionBlock(0xBEDE, (HeaderExtension(1, b""),))),
            "RTP one-byte header extension element 1 length 0 out of range 1..16",
        ),
        (
            _pkt(extension=ExtensionBlock(0x1000, (HeaderExtension(0, b""),))),
            "RTP two-byte header extension id 0 out of range 1..255",
        ),
        (
            _pkt(extension=ExtensionBlock(0x1000, (HeaderExtension(1, bytes(256)),))),
            "RTP two-byte header extension element 1 length 256 out of range 0..255",
        ),
        (
            _pkt(extension=ExtensionBlock(0x1234, (), b"abc")),
            "RTP header extension raw data length 3 is not a multiple of 4",
        ),
        (
            _pkt(extension=ExtensionBlock(0x1234, (HeaderExtension(1, b"a"),))),
            "RTP header extension profile 0x1234 is not RFC 8285; elements cannot be encoded",
        ),
        (
            _pkt(extension=ExtensionBlock(0xBEDE, (), b"abcd")),
            "RTP header extension raw data is only for non-RFC 8285 profiles",
        ),
        (
            _pkt(extension=ExtensionBlock(0x10000)),
            "RTP header extension profile 65536 out of range 0..65535",
        ),
    ],
)
def test_exact_encode_errors(pkt: RtpPacket, message: str) -> None:
    with pytest.raises(RtpEncodeError) as info:
        pkt.build()
    assert str(info.value) == message


def test_extension_value_helpers() -> None:
    assert encode_abs_send_time(0x123456) == b"\x12\x34\x56"
    assert encode_transport_seq(65535) == b"\xff\xff"
    with pytest.raises(RtpEncodeError, match="abs-send-time 16777216 out of range"):
        encode_abs_send_time(1 << 24)
    with pytest.raises(RtpEncodeError, match="transport-wide sequence number -1 out of range"):
        encode_transport_seq(-1)
    with pytest.raises(RtpDecodeError, match="abs-send-time extension must be 3 bytes, got 2"):
        decode_abs_send_time(b"ab")
    with pytest.raises(
        RtpDecodeError, match="transport-wide sequence extension must be 2 bytes, got 3"
    ):
        decode_transport_seq(b"abc")
