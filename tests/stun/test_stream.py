"""TCP/TLS stream reassembly: exact frames under any chunking, and no desync on hostile input."""

# ruff: noqa: E501  (tables of exact error messages read best one per line)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stun.strategies import channel_data, messages
from turn.errors import RemoteProtocolError
from turn.stun import (
    MAX_FRAME_SIZE,
    ChannelData,
    MessageClass,
    Method,
    StreamFrame,
    StreamReassembler,
    StunDecodeError,
    StunFrame,
    StunFramingError,
    StunMessage,
    encode_channel_data,
    parse_message,
)

TID = bytes(range(12))
STUN = StunMessage(Method.REFRESH, MessageClass.REQUEST, TID).encode(fingerprint=True)

frame_sources = st.lists(
    st.one_of(
        messages.map(lambda m: StunFrame(m.encode())),
        channel_data,
    ),
    max_size=8,
)


def wire_of(frame: StreamFrame) -> bytes:
    return frame.data if isinstance(frame, StunFrame) else frame.encode(pad=True)


@given(frames=frame_sources, cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_any_chunking_yields_the_exact_frames(frames: list[StreamFrame], cuts: list[int]) -> None:
    stream = b"".join(wire_of(f) for f in frames)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reassembler = StreamReassembler()
    out: list[StreamFrame] = []
    for chunk in chunks:
        out.extend(reassembler.feed(chunk))
    assert out == frames
    assert reassembler.buffered == 0
    for frame in out:
        if isinstance(frame, StunFrame):
            parse_message(frame.data)


@given(frames=frame_sources)
def test_byte_at_a_time(frames: list[StreamFrame]) -> None:
    stream = b"".join(wire_of(f) for f in frames)
    reassembler = StreamReassembler()
    out: list[StreamFrame] = []
    for i in range(len(stream)):
        reassembler.receive_data(stream[i : i + 1])
        while (frame := reassembler.next_frame()) is not None:
            out.append(frame)
    assert out == frames


@given(prefix=frame_sources, garbage=st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_framing_errors(
    prefix: list[StreamFrame], garbage: bytes
) -> None:
    reassembler = StreamReassembler(max_frame_size=2048)
    stream = b"".join(wire_of(f) for f in prefix) + garbage
    out: list[StreamFrame] = []
    try:
        for i in range(0, len(stream), 7):
            out.extend(reassembler.feed(stream[i : i + 7]))
    except StunFramingError as exc:
        # Once failed, it stays failed.
        with pytest.raises(StunFramingError) as again:
            reassembler.feed(b"")
        assert again.value is exc
    # Whatever came out is a prefix of the real frames or well framed garbage.
    assert out[: len(prefix)] == prefix[: len(out)]
    assert reassembler.buffered <= 2048 + 65536


@given(data=st.binary(max_size=200))
def test_pure_garbage(data: bytes) -> None:
    reassembler = StreamReassembler()
    try:
        for frame in reassembler.feed(data):
            assert isinstance(frame, StunFrame | ChannelData)
    except StunFramingError:
        pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80", "stream out of sync at byte 0x80: first two bits are 0b10, neither STUN (0b00) nor ChannelData (0b01)"),
        (b"\xff\xff\xff\xff", "stream out of sync at byte 0xff: first two bits are 0b11, neither STUN (0b00) nor ChannelData (0b01)"),
        (b"\x50", "ChannelData channel number 0x50xx on stream is reserved (valid channels are 0x4000-0x4fff)"),
        (b"\x7f\xff\xff\xff", "ChannelData channel number 0x7fxx on stream is reserved (valid channels are 0x4000-0x4fff)"),
        (b"\x00\x01\x00\x05", "STUN message length 5 on stream is not a multiple of 4"),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x43", "STUN magic cookie on stream is 0x2112a443, expected 0x2112a442"),
    ],
)  # fmt: skip
def test_framing_errors_are_exact_and_early(data: bytes, message: str) -> None:
    reassembler = StreamReassembler()
    with pytest.raises(StunFramingError) as info:
        reassembler.feed(data)
    assert str(info.value) == message
    assert isinstance(info.value, StunDecodeError) and isinstance(info.value, RemoteProtocolError)


def test_lengths_near_0xffff() -> None:
    # ChannelData of 65535 bytes pads to 65536: 65540 on the wire, still framed exactly.
    big = encode_channel_data(0x4ABC, b"\xaa" * 65535, pad=True)
    assert len(big) == 65540
    reassembler = StreamReassembler()
    assert reassembler.feed(big[:-1]) == []
    assert reassembler.buffered == 65539
    out = reassembler.feed(big[-1:] + STUN)
    assert out == [ChannelData(0x4ABC, b"\xaa" * 65535), StunFrame(STUN)]
    # A STUN header announcing 0xFFFC bytes is the largest frame there is.
    header = b"\x00\x01\xff\xfc\x21\x12\xa4\x42" + TID
    assert reassembler.feed(header) == []
    assert reassembler.buffered == 20
    assert MAX_FRAME_SIZE == 65552


def test_oversized_frames_refused_before_buffering() -> None:
    reassembler = StreamReassembler(max_frame_size=1024)
    with pytest.raises(StunFramingError) as info:
        reassembler.feed(b"\x40\x00\xff\xff")
    assert (
        str(info.value) == "ChannelData frame of 65540 bytes exceeds the stream frame limit of 1024"
    )
    reassembler = StreamReassembler(max_frame_size=1024)
    with pytest.raises(StunFramingError) as info:
        reassembler.feed(b"\x00\x01\xff\xfc")
    assert str(info.value) == "STUN message of 65552 bytes exceeds the stream frame limit of 1024"


def test_truncated_frame_waits_then_completes() -> None:
    frame = encode_channel_data(0x4000, b"abcde", pad=True)
    reassembler = StreamReassembler()
    for i in range(len(frame) - 1):
        reassembler.receive_data(frame[i : i + 1])
        assert reassembler.next_frame() is None
    reassembler.receive_data(frame[-1:])
    assert reassembler.next_frame() == ChannelData(0x4000, b"abcde")
    assert reassembler.next_frame() is None


def test_bounded_buffer_when_not_drained() -> None:
    reassembler = StreamReassembler(max_frame_size=100, max_buffer_size=200)
    reassembler.receive_data(STUN * 5)
    with pytest.raises(StunFramingError) as info:
        reassembler.receive_data(STUN * 5)
    assert str(info.value) == (
        "stream buffer overflow: 280 bytes unconsumed, limit 200 (drain next_frame() between reads)"
    )


def test_feed_splits_huge_chunks_to_respect_the_bound() -> None:
    frames = [encode_channel_data(0x4000 + i, bytes(1000), pad=True) for i in range(300)]
    out = StreamReassembler().feed(b"".join(frames))
    assert [f.channel for f in out if isinstance(f, ChannelData)] == [
        0x4000 + i for i in range(300)
    ]


def test_garbage_after_valid_frames_keeps_earlier_frames_via_next_frame() -> None:
    reassembler = StreamReassembler()
    reassembler.receive_data(STUN + b"\xff")
    assert reassembler.next_frame() == StunFrame(STUN)
    with pytest.raises(StunFramingError):
        reassembler.next_frame()
    with pytest.raises(StunFramingError):
        reassembler.receive_data(STUN)
