"""The codec's RFC 5766 channel-range option (``allow_rfc5766_range``), in both modes.

Strict (default, RFC 8656): channels 0x4000-0x4FFF only, 0x5000-0x7FFF reserved. RFC 5766 mode:
0x4000-0x7FFF, with every length and padding check unchanged.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turn.stun import (
    ChannelData,
    StreamReassembler,
    StunDecodeError,
    StunEncodeError,
    StunFrame,
    StunFramingError,
    decode_channel_data,
    encode_channel_data,
    is_channel_data,
    is_valid_channel_number,
    peek_channel_data,
)

all_channels = st.integers(0, 0xFFFF)
rfc5766_only = st.integers(0x5000, 0x7FFF)
payloads = st.binary(max_size=64)


@given(channel=all_channels, data=payloads, pad=st.booleans(), lax=st.booleans())
def test_encode_decode_agree_on_the_range(channel: int, data: bytes, pad: bool,
                                          lax: bool) -> None:
    valid = 0x4000 <= channel <= (0x7FFF if lax else 0x4FFF)
    assert is_valid_channel_number(channel, allow_rfc5766_range=lax) == valid
    try:
        wire = encode_channel_data(channel, data, pad=pad, allow_rfc5766_range=lax)
    except StunEncodeError:
        assert not valid
        return
    assert valid
    assert decode_channel_data(wire, allow_rfc5766_range=lax) == ChannelData(channel, data)
    assert peek_channel_data(wire, allow_rfc5766_range=lax) == (channel, len(data))
    assert is_channel_data(wire, allow_rfc5766_range=lax)
    assert ChannelData(channel, data).encode(pad=pad, allow_rfc5766_range=lax) == wire


@given(channel=rfc5766_only, data=payloads)
def test_rfc5766_channels_only_in_lax_mode(channel: int, data: bytes) -> None:
    wire = encode_channel_data(channel, data, allow_rfc5766_range=True)
    assert decode_channel_data(wire, allow_rfc5766_range=True).channel == channel
    with pytest.raises(StunDecodeError, match="reserved"):
        decode_channel_data(wire)
    assert not is_channel_data(wire)
    with pytest.raises(StunEncodeError, match=r"not in 0x4000-0x4fff$"):
        encode_channel_data(channel, data)


@given(channel=st.integers(0x8000, 0xFFFF) | st.integers(0, 0x3FFF))
def test_outside_both_ranges_always_refused(channel: int) -> None:
    with pytest.raises(StunEncodeError, match=r"not in 0x4000-0x7fff$"):
        encode_channel_data(channel, b"x", allow_rfc5766_range=True)
    wire = channel.to_bytes(2, "big") + b"\x00\x01x"
    with pytest.raises(StunDecodeError):
        decode_channel_data(wire, allow_rfc5766_range=True)


@given(data=st.binary(max_size=80))
def test_lax_decode_of_arbitrary_bytes(data: bytes) -> None:
    try:
        frame = decode_channel_data(data, allow_rfc5766_range=True)
    except StunDecodeError:
        assert not is_channel_data(data, allow_rfc5766_range=True)
        return
    assert is_channel_data(data, allow_rfc5766_range=True)
    assert frame.encode(allow_rfc5766_range=True) == data[: 4 + len(frame.data)]


frames_lax = st.lists(
    st.one_of(
        st.builds(ChannelData, st.integers(0x4000, 0x7FFF), payloads),
        st.just(StunFrame(bytes.fromhex("000100002112a442") + bytes(12))),
    ),
    max_size=8,
)


@given(frames=frames_lax, cuts=st.lists(st.integers(0, 600), max_size=8))
def test_lax_reassembler_frames_any_chunking(frames: list[ChannelData | StunFrame],
                                             cuts: list[int]) -> None:
    stream = b"".join(
        f.data if isinstance(f, StunFrame) else f.encode(pad=True, allow_rfc5766_range=True)
        for f in frames
    )
    points = sorted({min(c, len(stream)) for c in cuts})
    reassembler = StreamReassembler(allow_rfc5766_range=True)
    out = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        out.extend(reassembler.feed(stream[a:b]))
    assert out == frames
    assert reassembler.buffered == 0


@given(channel=rfc5766_only, data=payloads)
def test_strict_reassembler_refuses_rfc5766_channels(channel: int, data: bytes) -> None:
    wire = encode_channel_data(channel, data, pad=True, allow_rfc5766_range=True)
    with pytest.raises(StunFramingError) as info:
        StreamReassembler().feed(wire)
    assert str(info.value) == (
        f"ChannelData channel number 0x{channel >> 8:02x}xx on stream is reserved "
        "(valid channels are 0x4000-0x4fff)"
    )


@pytest.mark.parametrize("hostile", [b"\x80\x00", b"\xc0\x00\x00\x00", b"\x7f\xff\xff\xff"])
def test_lax_reassembler_keeps_the_length_checks(hostile: bytes) -> None:
    reassembler = StreamReassembler(allow_rfc5766_range=True, max_frame_size=1024)
    with pytest.raises(StunFramingError):
        reassembler.feed(hostile)
    with pytest.raises(StunFramingError):
        reassembler.next_frame()  # stays failed
