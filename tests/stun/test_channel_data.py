"""ChannelData framing over UDP (padding optional) and its demux test."""

# ruff: noqa: E501  (tables of exact error messages read best one per line)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stun.strategies import channel_data
from turn.stun import (
    ChannelData,
    StunDecodeError,
    StunEncodeError,
    decode_channel_data,
    encode_channel_data,
    is_channel_data,
    is_stun,
    is_valid_channel_number,
    padded_size,
    peek_channel_data,
)


@given(frame=channel_data, pad=st.booleans())
def test_roundtrip(frame: ChannelData, pad: bool) -> None:
    wire = frame.encode(pad=pad)
    assert len(wire) == (padded_size(len(frame.data)) if pad else 4 + len(frame.data))
    assert len(wire) % 4 == 0 or not pad
    assert decode_channel_data(wire) == frame
    assert decode_channel_data(memoryview(wire)) == frame
    assert is_channel_data(wire)
    assert not is_stun(wire)
    assert peek_channel_data(wire) == (frame.channel, len(frame.data))


def test_wire_format() -> None:
    assert encode_channel_data(0x4001, b"hello") == b"\x40\x01\x00\x05hello"
    assert encode_channel_data(0x4FFF, b"hello", pad=True) == b"\x4f\xff\x00\x05hello\x00\x00\x00"
    assert encode_channel_data(0x4000, b"", pad=True) == b"\x40\x00\x00\x00"


def test_channel_number_range() -> None:
    assert is_valid_channel_number(0x4000) and is_valid_channel_number(0x4FFF)
    assert not is_valid_channel_number(0x3FFF) and not is_valid_channel_number(0x5000)


@pytest.mark.parametrize("channel", [0x0000, 0x3FFF, 0x5000, 0x7FFF, 0xFFFF, -1])
def test_encode_rejects_invalid_channels(channel: int) -> None:
    with pytest.raises(StunEncodeError) as info:
        encode_channel_data(channel, b"x")
    assert str(info.value) == f"ChannelData channel number {channel!r} is not in 0x4000-0x4fff"


def test_encode_rejects_oversized_data() -> None:
    with pytest.raises(
        StunEncodeError, match=r"^ChannelData data is 65536 bytes, at most 65535 fit$"
    ):
        encode_channel_data(0x4000, bytes(65536))
    assert len(encode_channel_data(0x4000, bytes(65535), pad=True)) == 4 + 65536


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x40\x00\x00", "ChannelData truncated: 3 bytes, the header alone needs 4"),
        (b"\x00\x01\x00\x00", "not a ChannelData message: first two bits are 0b00, expected 0b01"),
        (b"\xc0\x00\x00\x00", "not a ChannelData message: first two bits are 0b11, expected 0b01"),
        (b"\x50\x00\x00\x00", "ChannelData channel number 0x5000 is reserved (valid channels are 0x4000-0x4fff)"),
        (b"\x7f\xff\x00\x00", "ChannelData channel number 0x7fff is reserved (valid channels are 0x4000-0x4fff)"),
        (b"\x40\x00\x00\x05abcd", "ChannelData truncated: header says 5 bytes of data, 4 present"),
        (b"\x40\x00\xff\xff" + bytes(100), "ChannelData truncated: header says 65535 bytes of data, 100 present"),
        (b"\x40\x00\x00\x01abcde", "ChannelData has 4 bytes after its 1 bytes of data, at most 3 bytes of padding allowed"),
    ],
)  # fmt: skip
def test_decode_errors_are_exact(data: bytes, message: str) -> None:
    with pytest.raises(StunDecodeError) as info:
        decode_channel_data(data)
    assert str(info.value) == message
    assert not is_channel_data(data)


def test_udp_padding_is_optional() -> None:
    for extra in range(4):
        assert decode_channel_data(b"\x40\x00\x00\x01a" + bytes(extra)) == ChannelData(0x4000, b"a")


@given(data=st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        frame = decode_channel_data(data)
    except StunDecodeError:
        assert not is_channel_data(data)
        return
    assert is_channel_data(data)
    assert frame.encode() == data[: 4 + len(frame.data)]
