"""The benchmark's RTP packets: a plain header plus a payload that identifies itself.

Payload: publisher index (u32), sequence (u32), send time (u64, ``CLOCK_MONOTONIC`` ns), then
zero padding to the requested size. The router rewrites SSRC, sequence number and timestamp
per subscriber but never the payload, so the receiver reads who sent what and when from it;
``CLOCK_MONOTONIC`` is system-wide, so send and receive times from different processes on the
same machine subtract meaningfully.
"""

from __future__ import annotations

import struct
from typing import Final

HEADER: Final = struct.Struct("!BBHII")
STAMP: Final = struct.Struct("!IIQ")
#: Smallest payload: the stamp itself.
MIN_SIZE: Final = STAMP.size
#: Opus's usual dynamic payload type (the synthetic publisher offers audio/opus).
PAYLOAD_TYPE: Final = 111


def payload_offset(packet: bytes) -> int:
    """Where an RTP packet's payload starts (after CSRCs and a header extension, which the
    router may add when it forwards)."""
    first = packet[0]
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        (words,) = struct.unpack_from("!H", packet, offset + 2)
        offset += 4 + 4 * words
    return offset


__all__ = ["HEADER", "MIN_SIZE", "PAYLOAD_TYPE", "STAMP", "payload_offset"]
