"""Transport-wide congestion control feedback: vectors, round trips, errors, hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.rtp import (
    RtcpDecodeError,
    RtcpEncodeError,
    TransportCc,
    build_rtcp_compound,
    parse_rtcp_compound,
)
from tests.rtp.strategies import twcc_packets

# Chrome-captured feedback packets (as used by pion/rtcp's tests); both carry RTCP padding.
CHROME_TWCC_1 = bytes.fromhex("afcd0005fa17fa1743032fa0009900013de8021720019401")
CHROME_TWCC_4 = bytes.fromhex("afcd0007fa17fa17193dd8bb0004000710636e0120074c2424100c0c10000003")


def _twcc(count: int, tail_hex: str) -> bytes:
    """A TWCC packet with fixed SSRCs/base/reference and the given chunks+deltas."""
    body = bytes.fromhex("00000001000000020064") + count.to_bytes(2, "big")
    body += bytes.fromhex("00000105") + bytes.fromhex(tail_hex)
    body += bytes(-len(body) % 4)
    return bytes.fromhex("8fcd") + (len(body) // 4).to_bytes(2, "big") + body


def _decode(data: bytes) -> TransportCc:
    (packet,) = parse_rtcp_compound(data)
    assert isinstance(packet, TransportCc)
    return packet


def test_chrome_vector_single_run() -> None:
    fb = _decode(CHROME_TWCC_1)
    assert fb == TransportCc(4195875351, 1124282272, 153, 4057090, 23, b"\x01", (0x94,))
    assert fb.packet_results() == [(153, 1, 148)]
    # Our build uses zero padding instead of the P bit; it must parse back identically.
    assert _decode(fb.build()) == fb


def test_chrome_vector_seven_small_deltas() -> None:
    fb = _decode(CHROME_TWCC_4)
    assert fb.base_seq == 4
    assert fb.reference_time == 1074030
    assert fb.fb_pkt_count == 1
    assert fb.statuses == b"\x01" * 7
    assert [d * 250 for d in fb.deltas] == [19000, 9000, 9000, 4000, 3000, 3000, 4000]


def test_draft_run_length_examples() -> None:
    # §3.1.3 example 1: a run of 221 "not received".
    fb = _decode(_twcc(221, "00dd"))
    assert fb.statuses == bytes(221) and fb.deltas == ()
    assert fb.base_seq == 100 and fb.reference_time == 1 and fb.fb_pkt_count == 5
    # §3.1.3 example 2: a run of 24 "received, w/o timestamp" (symbol 11).
    fb = _decode(_twcc(24, "6018"))
    assert fb.statuses == b"\x03" * 24 and fb.deltas == ()
    assert _decode(fb.build()) == fb


def test_draft_status_vector_examples() -> None:
    # §3.1.4 example 1: 1-bit symbols 0 11111 000 111 00.
    fb = _decode(_twcc(14, "9f1c" + "0102030405060708"))
    assert fb.statuses == bytes([0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0])
    assert fb.deltas == (1, 2, 3, 4, 5, 6, 7, 8)
    assert [r[2] for r in fb.packet_results()][:3] == [None, 1, 2]
    # §3.1.4 example 2: 2-bit symbols 00 11 01 01 01 00 00.
    fb = _decode(_twcc(7, "cd50" + "0a0b0c"))
    assert fb.statuses == bytes([0, 3, 1, 1, 1, 0, 0])
    assert fb.deltas == (10, 11, 12)


def test_vector_symbols_beyond_count_are_ignored_and_large_deltas_signed() -> None:
    # 2-bit vector 10 10 01 ...: only the first 3 of 7 symbols count.
    fb = _decode(_twcc(3, "e900" + "80007fff05"))
    assert fb.statuses == b"\x02\x02\x01"
    assert fb.deltas == (-32768, 32767, 5)


def test_negative_reference_time_and_wrapping_seq() -> None:
    fb = TransportCc.from_deltas(1, 2, 65534, -3, 255, [5, None, -4, 300])
    assert fb.statuses == bytes([1, 0, 2, 2])
    assert fb.packet_results() == [(65534, 1, 5), (65535, 0, None), (0, 2, -4), (1, 2, 300)]
    assert _decode(fb.build()) == fb


@settings(max_examples=300)
@given(twcc_packets())
def test_round_trip(fb: TransportCc) -> None:
    data = fb.build()
    assert len(data) % 4 == 0
    assert _decode(data) == fb
    assert build_rtcp_compound([_decode(data)]) == data


@given(st.lists(st.none() | st.integers(-0x8000, 0x7FFF), max_size=500))
def test_from_deltas_round_trip(deltas: list[int | None]) -> None:
    fb = TransportCc.from_deltas(1, 2, 3, 4, 5, deltas)
    parsed = _decode(fb.build())
    assert [r[2] for r in parsed.packet_results()] == deltas


def test_chunking_is_compact_for_long_runs() -> None:
    fb = TransportCc.from_deltas(1, 2, 0, 0, 0, [None] * 20000 + [1] * 3)
    # 20000 lost = 3 run chunks (8191 max each), then 1 run of 3: 4 chunks, 3 deltas.
    assert len(fb.build()) == 4 + 16 + 8 + 3 + 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            bytes.fromhex("8fcd0003000000010000000200640001"),
            "RTCP TWCC truncated: body has 12 bytes, needs 16",
        ),
        (
            _twcc(3, ""),
            "RTCP TWCC packet chunks truncated: 0 of 3 statuses decoded, body has 16 bytes",
        ),
        (
            _twcc(300, "00dd"),
            "RTCP TWCC packet chunks truncated: 221 of 300 statuses decoded, body has 20 bytes",
        ),
        (
            _twcc(14, "9f1c" + "0102"),
            "RTCP TWCC receive deltas truncated: need 26 body bytes, body has 20",
        ),
        (
            _twcc(8191, "3fff"),
            "RTCP TWCC receive deltas truncated: need 8209 body bytes, body has 20",
        ),
        (
            _twcc(1, "2001" + "01" + "00000000"),
            "RTCP TWCC has 5 bytes after receive deltas, at most 3 padding allowed",
        ),
    ],
)
def test_exact_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtcpDecodeError) as info:
        parse_rtcp_compound(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("fb", "message"),
    [
        (
            TransportCc(1, 2, 3, 4, 5, b"\x01", ()),
            "RTCP TWCC has 1 statuses with a delta but 0 deltas",
        ),
        (TransportCc(1, 2, 3, 4, 5, b"\x04", ()), "RTCP TWCC status 4 is not 0, 1, 2 or 3"),
        (
            TransportCc(1, 2, 3, 4, 5, b"\x01", (256,)),
            "RTCP TWCC small delta 256 out of range 0..255",
        ),
        (
            TransportCc(1, 2, 3, 4, 5, b"\x02", (40000,)),
            "RTCP TWCC large delta 40000 out of range -32768..32767",
        ),
        (
            TransportCc(1, 2, 3, 1 << 23, 5),
            "RTCP TWCC reference time 8388608 out of range -8388608..8388607",
        ),
        (
            TransportCc(1, 2, 65536, 0, 5),
            "RTCP TWCC base sequence number 65536 out of range 0..65535",
        ),
        (TransportCc(1, 2, 3, 0, 256), "RTCP TWCC feedback packet count 256 out of range 0..255"),
        (
            TransportCc(1, 2, 3, 0, 0, bytes(65536)),
            "RTCP TWCC packet status count 65536 out of range 0..65535",
        ),
    ],
)
def test_exact_encode_errors(fb: TransportCc, message: str) -> None:
    with pytest.raises(RtcpEncodeError) as info:
        fb.build()
    assert str(info.value) == message


def test_hostile_status_count_bounded() -> None:
    # 65535 "not received" from 9 chunks: the biggest allocation a packet can cause is 64 KiB.
    fb = _decode(_twcc(65535, "1fff" * 9))
    assert len(fb.statuses) == 65535 and fb.deltas == ()


@settings(max_examples=1500)
@given(st.binary(max_size=80))
def test_arbitrary_bodies_only_raise_decode_error(body: bytes) -> None:
    body += bytes(-len(body) % 4)
    data = bytes.fromhex("8fcd") + (len(body) // 4).to_bytes(2, "big") + body
    try:
        packets = parse_rtcp_compound(data)
    except RtcpDecodeError:
        return
    (packet,) = packets
    assert isinstance(packet, TransportCc)
    assert _decode(packet.build()) == packet


@settings(max_examples=500)
@given(twcc_packets(), st.data())
def test_mutated_feedback_only_raises_decode_error(fb: TransportCc, data: st.DataObject) -> None:
    raw = bytearray(fb.build())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(4, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(RtcpDecodeError):
        parse_rtcp_compound(bytes(raw))
