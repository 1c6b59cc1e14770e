"""A stamp in the last bytes of a payload: which stream, which packet, when it was sent.

Routers rewrite SSRC, sequence number, timestamp and header extensions, and may add or strip
extensions, but never touch the payload; the tail of the payload is the one place a receiver
finds again after any rewrite, without knowing the codec's payload header. Send time is
``CLOCK_MONOTONIC`` nanoseconds, system-wide, so sender and receiver processes on one machine
subtract them meaningfully.
"""

from __future__ import annotations

import struct
from typing import Final

TAIL: Final = struct.Struct("!IIQ")
"""stream id (u32), packet number within the stream (u32), send time in ns (u64)."""
TAIL_SIZE: Final = TAIL.size


def write_tail(packet: bytearray, stream: int, number: int, send_ns: int) -> None:
    """Stamp an unprotected RTP packet in place (its payload must be at least 16 bytes)."""
    TAIL.pack_into(packet, len(packet) - TAIL_SIZE, stream & 0xFFFFFFFF, number & 0xFFFFFFFF,
                   send_ns)


def read_tail(packet: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """``(stream, number, send_ns)`` from a decrypted packet; ``struct.error`` if too short."""
    return TAIL.unpack_from(packet, len(packet) - TAIL_SIZE)


__all__ = ["TAIL", "TAIL_SIZE", "read_tail", "write_tail"]
