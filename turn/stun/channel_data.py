"""ChannelData framing (RFC 8656 §12.4-12.5): TURN's 4-byte-header alternative to Send/Data.

``channel (16) | length (16) | data | padding``. Channel numbers 0x4000-0x4FFF are valid;
0x5000-0xFFFF are reserved (the top two bits 0b01 are what RFC 7983 demultiplexing keys on, so
0x5000-0x7FFF look like ChannelData but must still be refused). Over TCP and TLS the frame is
padded to a multiple of 4 so the next frame stays aligned; over UDP padding is optional, so a
datagram may carry up to 3 bytes beyond the announced length and no more.

``allow_rfc5766_range=True`` (a keyword on every entry point, off by default) accepts RFC 5766's
older range 0x4000-0x7FFF instead: coturn's clients still pick channels there
(``turnutils_uclient`` bound 0x60bb in our interop run) and coturn accepts them. RFC 8656 §12
reserves 0x5000-0x7FFF only so that ports shared with DTLS/RTP stay demultiplexable, which a
TURN listener is not, so a server may opt in. Everything else (lengths, padding) is unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from turn.stun.errors import StunDecodeError, StunEncodeError
from turn.stun.header import Buffer

CHANNEL_NUMBER_MIN: Final = 0x4000
CHANNEL_NUMBER_MAX: Final = 0x4FFF
#: The top of RFC 5766's range, accepted with ``allow_rfc5766_range=True``.
RFC5766_CHANNEL_NUMBER_MAX: Final = 0x7FFF
CHANNEL_HEADER_SIZE: Final = 4

_HEADER: Final = struct.Struct(">HH")
_PAD: Final = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def channel_number_max(allow_rfc5766_range: bool = False) -> int:
    """The highest acceptable channel number: 0x4FFF (RFC 8656) or 0x7FFF (RFC 5766)."""
    return RFC5766_CHANNEL_NUMBER_MAX if allow_rfc5766_range else CHANNEL_NUMBER_MAX


def is_valid_channel_number(number: int, *, allow_rfc5766_range: bool = False) -> bool:
    """True for the 4096 usable channel numbers 0x4000-0x4FFF (0x4000-0x7FFF in RFC 5766 mode)."""
    return CHANNEL_NUMBER_MIN <= number <= channel_number_max(allow_rfc5766_range)


def padded_size(length: int) -> int:
    """Size on a stream of a frame carrying ``length`` data bytes (header plus padding)."""
    return CHANNEL_HEADER_SIZE + length + (-length & 3)


def is_channel_data(data: Buffer, *, allow_rfc5766_range: bool = False) -> bool:
    """Cheap demux test: a valid channel number and a length the datagram can hold."""
    n = len(data)
    top = 0x7F if allow_rfc5766_range else 0x4F
    if n < CHANNEL_HEADER_SIZE or not 0x40 <= data[0] <= top:
        return False
    length = data[2] << 8 | data[3]
    return 0 <= n - CHANNEL_HEADER_SIZE - length <= 3


@dataclass(frozen=True, slots=True)
class ChannelData:
    """One ChannelData message: application data for the peer bound to ``channel``."""

    channel: int
    data: bytes

    def encode(self, *, pad: bool = False, allow_rfc5766_range: bool = False) -> bytes:
        """Wire bytes; ``pad=True`` (mandatory over TCP/TLS) pads to a multiple of 4."""
        return encode_channel_data(self.channel, self.data, pad=pad,
                                   allow_rfc5766_range=allow_rfc5766_range)


def encode_channel_data(
    channel: int, data: Buffer, *, pad: bool = False, allow_rfc5766_range: bool = False
) -> bytes:
    """Frame ``data`` for ``channel``. Raises :class:`StunEncodeError` on invalid input."""
    top = channel_number_max(allow_rfc5766_range)
    if not isinstance(channel, int) or not CHANNEL_NUMBER_MIN <= channel <= top:
        raise StunEncodeError(
            f"ChannelData channel number {channel!r} is not in 0x4000-0x{top:04x}"
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StunEncodeError("ChannelData data must be bytes")
    n = len(data)
    if n > 0xFFFF:
        raise StunEncodeError(f"ChannelData data is {n} bytes, at most 65535 fit")
    head = _HEADER.pack(channel, n)
    return head + bytes(data) + _PAD[n & 3] if pad else head + bytes(data)


def peek_channel_data(data: Buffer, *, allow_rfc5766_range: bool = False) -> tuple[int, int]:
    """Validate a ChannelData datagram and return ``(channel, length)`` without copying data.

    The relay hot path uses this and forwards ``memoryview(data)[4:4 + length]``.
    """
    n = len(data)
    if n < CHANNEL_HEADER_SIZE:
        raise StunDecodeError(f"ChannelData truncated: {n} bytes, the header alone needs 4")
    channel, length = _HEADER.unpack_from(data)
    if channel >> 14 != 0b01:
        raise StunDecodeError(
            f"not a ChannelData message: first two bits are 0b{channel >> 14:02b}, expected 0b01"
        )
    top = channel_number_max(allow_rfc5766_range)
    if channel > top:
        raise StunDecodeError(
            f"ChannelData channel number 0x{channel:04x} is reserved "
            f"(valid channels are 0x4000-0x{top:04x})"
        )
    present = n - CHANNEL_HEADER_SIZE
    if length > present:
        raise StunDecodeError(
            f"ChannelData truncated: header says {length} bytes of data, {present} present"
        )
    if present - length > 3:
        raise StunDecodeError(
            f"ChannelData has {present - length} bytes after its {length} bytes of data, "
            "at most 3 bytes of padding allowed"
        )
    return channel, length


def decode_channel_data(data: Buffer, *, allow_rfc5766_range: bool = False) -> ChannelData:
    """Decode one ChannelData datagram (padding optional). Raises :class:`StunDecodeError`."""
    channel, length = peek_channel_data(data, allow_rfc5766_range=allow_rfc5766_range)
    return ChannelData(channel, bytes(data[CHANNEL_HEADER_SIZE : CHANNEL_HEADER_SIZE + length]))
