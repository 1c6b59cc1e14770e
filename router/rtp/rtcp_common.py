"""Pieces shared by every RTCP packet codec: the common header, the packet base class and the
raw packet that carries unknown types through untouched.

Every RTCP packet starts with ``V=2 | P | count/FMT (5 bits) | PT (8 bits) | length``, where
length is the packet size in 32-bit words minus one (RFC 3550 §6.4.1). The compound parser in
:mod:`router.rtp.rtcp_compound` validates that header; the per-type decoders receive only the
body (after the header, padding removed) and must check their own counts against its length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from router.rtp.errors import RtcpEncodeError

__all__ = [
    "PT_APP",
    "PT_BYE",
    "PT_PSFB",
    "PT_RR",
    "PT_RTPFB",
    "PT_SDES",
    "PT_SR",
    "PT_XR",
    "RawRtcpPacket",
    "RtcpPacket",
    "check_u8",
    "check_u16",
    "check_u32",
    "rtcp_header",
]

Buffer = bytes | bytearray | memoryview

PT_SR: Final = 200
PT_RR: Final = 201
PT_SDES: Final = 202
PT_BYE: Final = 203
PT_APP: Final = 204
PT_RTPFB: Final = 205
PT_PSFB: Final = 206
PT_XR: Final = 207

_HEADER: Final = struct.Struct("!BBH")


class RtcpPacket:
    """Base of every RTCP packet class; drivers ``match`` on the concrete subclasses."""

    __slots__ = ()

    def build(self) -> bytes:
        """Serialize the whole packet, common header included."""
        raise NotImplementedError


def check_u32(name: str, value: int) -> None:
    """Raise :class:`RtcpEncodeError` unless ``value`` fits 32 unsigned bits."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise RtcpEncodeError(f"RTCP {name} {value} out of range 0..4294967295")


def check_u16(name: str, value: int) -> None:
    """Raise :class:`RtcpEncodeError` unless ``value`` fits 16 unsigned bits."""
    if not 0 <= value <= 0xFFFF:
        raise RtcpEncodeError(f"RTCP {name} {value} out of range 0..65535")


def check_u8(name: str, value: int) -> None:
    """Raise :class:`RtcpEncodeError` unless ``value`` fits 8 unsigned bits."""
    if not 0 <= value <= 0xFF:
        raise RtcpEncodeError(f"RTCP {name} {value} out of range 0..255")


def rtcp_header(count: int, packet_type: int, body_size: int) -> bytes:
    """Common header for a body of ``body_size`` bytes (a multiple of 4, no padding)."""
    if not 0 <= count <= 31:
        raise RtcpEncodeError(f"RTCP count/FMT {count} out of range 0..31")
    if body_size % 4:
        raise RtcpEncodeError(f"RTCP packet body of {body_size} bytes is not a multiple of 4")
    words = body_size // 4
    if words > 0xFFFF:
        raise RtcpEncodeError(f"RTCP packet too long: {words + 1} words, max 65536")
    return _HEADER.pack(0x80 | count, packet_type, words)


@dataclass(frozen=True, slots=True)
class RawRtcpPacket(RtcpPacket):
    """An RTCP packet this codec does not model (XR, TMMBR, SLI, an AFB other than REMB, ...).

    ``data`` is the complete packet exactly as received, header and padding included, so an SFU
    that forwards it re-emits the same bytes.
    """

    data: bytes

    @property
    def packet_type(self) -> int:
        """The PT byte."""
        return self.data[1]

    @property
    def count(self) -> int:
        """The 5-bit count / FMT field."""
        return self.data[0] & 0x1F

    def build(self) -> bytes:
        """Return ``data`` after checking it is a self-consistent RTCP packet."""
        data = self.data
        if len(data) < 4 or len(data) % 4:
            raise RtcpEncodeError(
                f"raw RTCP packet of {len(data)} bytes is not a positive multiple of 4"
            )
        if data[0] >> 6 != 2:
            raise RtcpEncodeError(f"raw RTCP packet has version {data[0] >> 6}, not 2")
        words = int.from_bytes(data[2:4], "big")
        if (words + 1) * 4 != len(data):
            raise RtcpEncodeError(
                f"raw RTCP packet length field {words} does not match its {len(data)} bytes"
            )
        return bytes(data)
