"""Reassembly of STUN messages and ChannelData frames from a TCP or TLS byte stream.

RFC 8656 §12.5 and RFC 6062: over a stream, a TURN client interleaves STUN messages (first two
bits 0b00, length in the header, always a multiple of 4) and ChannelData (0b01, padded to a
multiple of 4). Nothing else may appear, and there is no resynchronisation marker: once a byte
that starts neither kind arrives, every later boundary is unknowable, so the only safe answer is
:class:`StunFramingError` and closing the connection.

Hostile lengths cannot desynchronise this parser: sizes are computed in Python integers (no
16-bit overflow, the bug that once broke coturn near 0xFFFF), every header field is checked as
soon as its bytes arrive, and a frame larger than ``max_frame_size`` is refused before any of its
body is buffered. Between reads a drained reassembler holds less than one frame.

``StreamReassembler(allow_rfc5766_range=True)`` also frames ChannelData on channels
0x5000-0x7FFF (RFC 5766's range, which coturn's clients use); by default they are a framing
error, as RFC 8656 reserves them. Only that check changes; every length check stays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, NoReturn

from turn.stun.channel_data import CHANNEL_HEADER_SIZE, ChannelData, channel_number_max
from turn.stun.constants import HEADER_SIZE, MAGIC_COOKIE, MAX_BODY_LENGTH
from turn.stun.errors import StunFramingError
from turn.stun.header import Buffer

#: The largest frame the wire format can express: a STUN header plus 0xFFFC attribute bytes.
MAX_FRAME_SIZE: Final = HEADER_SIZE + MAX_BODY_LENGTH

_U16X2: Final = struct.Struct(">HH")
_U32: Final = struct.Struct(">I")
_CHUNK: Final = 65536


@dataclass(frozen=True, slots=True)
class StunFrame:
    """One whole STUN message cut from the stream; hand ``data`` to ``parse_message``.

    Parsing is left to the caller on purpose: a malformed message inside a well-framed stream
    is dropped (or answered 400) while the connection lives on; only framing errors close it.
    """

    data: bytes


StreamFrame = StunFrame | ChannelData


class StreamReassembler:
    """Bytes in, whole frames out: ``receive_data()`` then ``next_frame()`` until ``None``.

    After a :class:`StunFramingError` the reassembler stays failed and raises the same error on
    every call; the connection must be closed.
    """

    __slots__ = (
        "_buf",
        "_channel_max",
        "_error",
        "_pos",
        "allow_rfc5766_range",
        "max_buffer_size",
        "max_frame_size",
    )

    def __init__(
        self,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_buffer_size: int = 0,
        allow_rfc5766_range: bool = False,
    ) -> None:
        """``max_frame_size`` caps one frame (a server may lower it to refuse 64 KiB bodies);
        ``max_buffer_size`` caps unconsumed bytes (default: one frame plus a 64 KiB read);
        ``allow_rfc5766_range`` accepts channels 0x5000-0x7FFF too."""
        self.allow_rfc5766_range = allow_rfc5766_range
        self._channel_max = channel_number_max(allow_rfc5766_range)
        if max_frame_size < HEADER_SIZE:
            max_frame_size = HEADER_SIZE
        self.max_frame_size = max_frame_size
        self.max_buffer_size = max_buffer_size or max_frame_size + _CHUNK
        self._buf = bytearray()
        self._pos = 0
        self._error: StunFramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def receive_data(self, data: Buffer) -> None:
        """Append bytes read from the stream. Raises :class:`StunFramingError` on overflow."""
        if self._error is not None:
            raise self._error
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        if len(self._buf) + len(data) > self.max_buffer_size:
            self._fail(
                f"stream buffer overflow: {len(self._buf) + len(data)} bytes unconsumed, "
                f"limit {self.max_buffer_size} (drain next_frame() between reads)"
            )
        self._buf += data

    def next_frame(self) -> StreamFrame | None:
        """The next complete frame, or ``None`` until more bytes arrive."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail == 0:
            return None
        first = buf[pos]
        if first < 0x40:
            return self._next_stun(buf, pos, avail)
        if first < 0x80:
            return self._next_channel_data(buf, pos, avail)
        self._fail(
            f"stream out of sync at byte 0x{first:02x}: first two bits are "
            f"0b{first >> 6:02b}, neither STUN (0b00) nor ChannelData (0b01)"
        )

    def feed(self, data: Buffer) -> list[StreamFrame]:
        """Convenience: receive ``data`` and return every frame it completes."""
        frames: list[StreamFrame] = []
        view = memoryview(data)
        for start in range(0, max(len(view), 1), _CHUNK):
            self.receive_data(view[start : start + _CHUNK])
            while (frame := self.next_frame()) is not None:
                frames.append(frame)
        return frames

    def _next_stun(self, buf: bytearray, pos: int, avail: int) -> StunFrame | None:
        if avail < 4:
            return None
        length = _U16X2.unpack_from(buf, pos)[1]
        if length & 3:
            self._fail(f"STUN message length {length} on stream is not a multiple of 4")
        size = HEADER_SIZE + length
        if size > self.max_frame_size:
            self._fail(
                f"STUN message of {size} bytes exceeds the stream frame limit of "
                f"{self.max_frame_size}"
            )
        if avail < 8:
            return None
        cookie = _U32.unpack_from(buf, pos + 4)[0]
        if cookie != MAGIC_COOKIE:
            self._fail(f"STUN magic cookie on stream is 0x{cookie:08x}, expected 0x2112a442")
        if avail < size:
            return None
        self._pos = pos + size
        return StunFrame(bytes(buf[pos : pos + size]))

    def _next_channel_data(self, buf: bytearray, pos: int, avail: int) -> ChannelData | None:
        if buf[pos] > self._channel_max >> 8:
            self._fail(
                f"ChannelData channel number 0x{buf[pos]:02x}xx on stream is reserved "
                f"(valid channels are 0x4000-0x{self._channel_max:04x})"
            )
        if avail < CHANNEL_HEADER_SIZE:
            return None
        channel, length = _U16X2.unpack_from(buf, pos)
        size = CHANNEL_HEADER_SIZE + length + (-length & 3)
        if size > self.max_frame_size:
            self._fail(
                f"ChannelData frame of {size} bytes exceeds the stream frame limit of "
                f"{self.max_frame_size}"
            )
        if avail < size:
            return None
        start = pos + CHANNEL_HEADER_SIZE
        self._pos = pos + size
        return ChannelData(channel, bytes(buf[start : start + length]))

    def _fail(self, message: str) -> NoReturn:
        self._error = StunFramingError(message)
        raise self._error
