"""Stream framing with RFC 5766 channel numbers: a minimal extension of the codec's reassembler.

The codec's :class:`~turn.stun.StreamReassembler` follows RFC 8656 and treats ChannelData
channels 0x5000-0x7FFF as a framing error. coturn's clients still pick channels from RFC 5766's
0x4000-0x7FFF (``turnutils_uclient`` bound 0x60bb in our interop run), and coturn accepts them,
so a TURN node that wants those clients over TCP/TLS must frame them. Only the reserved-range
check changes; every length check of the codec is kept.
"""

from __future__ import annotations

import struct
from typing import Final

from turn.stun import ChannelData, StreamReassembler

_U16X2: Final = struct.Struct(">HH")


class Rfc5766StreamReassembler(StreamReassembler):
    """A :class:`StreamReassembler` that also frames channels 0x5000-0x7FFF."""

    __slots__ = ()

    def _next_channel_data(self, buf: bytearray, pos: int, avail: int) -> ChannelData | None:
        if avail < 4:
            return None
        channel, length = _U16X2.unpack_from(buf, pos)
        size = 4 + length + (-length & 3)
        if size > self.max_frame_size:
            self._fail(
                f"ChannelData frame of {size} bytes exceeds the stream frame limit of "
                f"{self.max_frame_size}"
            )
        if avail < size:
            return None
        start = pos + 4
        self._pos = pos + size
        return ChannelData(channel, bytes(buf[start : start + length]))




_PAD: Final = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")
_HEAD: Final = struct.Struct(">HH")


def frame_channel_data(channel: int, data: bytes | bytearray | memoryview, pad: bool) -> bytes:
    """ChannelData bytes for any channel 0x4000-0x7FFF (the codec's encoder stops at 0x4FFF).

    ``channel`` comes from our own binding table, which only ever holds validated numbers.
    """
    n = len(data)
    head = _HEAD.pack(channel, n)
    return head + bytes(data) + _PAD[n & 3] if pad else head + bytes(data)


__all__ = ["Rfc5766StreamReassembler", "frame_channel_data"]
