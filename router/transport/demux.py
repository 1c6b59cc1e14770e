"""RFC 7983 demultiplexing of one UDP port: STUN, DTLS, RTP and RTCP by the first byte.

RFC 7983 §7: 0-3 STUN, 16-19 ZRTP, 20-63 DTLS, 64-79 TURN ChannelData, 128-191 RTP/RTCP; every
other value is dropped. A router port carries no ZRTP and no ChannelData, so those are dropped too.
RTP and RTCP share 128-191 (rtcp-mux, RFC 5761 §4): RTCP packet types 192-223 occupy the second
byte where RTP has marker bit plus payload type, and RFC 5761 forbids RTP payload types 64-95 so
the ranges never collide.

A lookup table indexed by the first byte keeps classification to two byte reads and no branches
per range, because it runs on every datagram the router receives.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class PacketKind(IntEnum):
    """What a datagram is, by RFC 7983."""

    OTHER = 0
    STUN = 1
    DTLS = 2
    RTP = 3
    RTCP = 4


def _build_table() -> bytes:
    table = bytearray(256)
    for b in range(0, 4):
        table[b] = PacketKind.STUN
    for b in range(20, 64):
        table[b] = PacketKind.DTLS
    for b in range(128, 192):
        table[b] = PacketKind.RTP
    return bytes(table)


_FIRST_BYTE: Final = _build_table()
_RTP: Final = int(PacketKind.RTP)
_RTCP: Final = int(PacketKind.RTCP)
_OTHER: Final = int(PacketKind.OTHER)


def classify(data: bytes | bytearray | memoryview) -> int:
    """The :class:`PacketKind` value of ``data`` (an ``int`` for speed; compare with the enum).

    RTP needs at least its 12-byte fixed header and RTCP its 8-byte header plus SSRC; shorter
    datagrams in that range are :attr:`PacketKind.OTHER` so SRTP never sees them.
    """
    if not data:
        return _OTHER
    kind = _FIRST_BYTE[data[0]]
    if kind == _RTP:
        n = len(data)
        if n >= 2 and 192 <= data[1] <= 223:
            return _RTCP if n >= 8 else _OTHER
        return _RTP if n >= 12 else _OTHER
    return kind


__all__ = ["PacketKind", "classify"]
