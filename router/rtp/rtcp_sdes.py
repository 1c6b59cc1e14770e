"""RTCP source description, goodbye and application-defined packets (RFC 3550 §6.5-6.7).

SDES is the fiddliest RTCP structure: a source count in the header, per chunk a list of
``type | length | value`` items ended by a null byte and padded to 32 bits. Each length is
checked against the bytes left in the packet; item values and BYE reasons stay ``bytes``
(UTF-8 is the norm but not guaranteed, and forwarding must not fail on a bad byte).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from router.rtp.errors import RtcpDecodeError, RtcpEncodeError
from router.rtp.rtcp_common import (
    PT_APP,
    PT_BYE,
    PT_SDES,
    RtcpPacket,
    check_u32,
    rtcp_header,
)

__all__ = ["App", "Bye", "Sdes", "SdesChunk", "SdesItem", "SdesItemType"]

Buffer = bytes | bytearray | memoryview

_U32: Final = struct.Struct("!I")


class SdesItemType(IntEnum):
    """SDES item types (RFC 3550 §6.5); other values are kept as plain ints."""

    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item; ``type`` 1..255 (0 terminates the list on the wire)."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one SSRC/CSRC."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def encode(self) -> bytes:
        """SSRC, items, a null terminator and zero padding to 32 bits."""
        check_u32("SDES chunk SSRC", self.ssrc)
        out = bytearray(_U32.pack(self.ssrc))
        for item in self.items:
            if not 1 <= item.type <= 255:
                raise RtcpEncodeError(f"RTCP SDES item type {item.type} out of range 1..255")
            if len(item.value) > 255:
                raise RtcpEncodeError(
                    f"RTCP SDES item value of {len(item.value)} bytes exceeds 255"
                )
            out.append(item.type)
            out.append(len(item.value))
            out += item.value
        out.append(0)
        out += bytes(-len(out) % 4)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class Sdes(RtcpPacket):
    """SDES: up to 31 chunks."""

    chunks: tuple[SdesChunk, ...] = ()

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME announced for ``ssrc``, if any."""
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                for item in chunk.items:
                    if item.type == SdesItemType.CNAME:
                        return item.value
        return None

    def build(self) -> bytes:
        """Serialize with the common header."""
        if len(self.chunks) > 31:
            raise RtcpEncodeError(f"RTCP SDES has {len(self.chunks)} chunks, max 31")
        body = b"".join(chunk.encode() for chunk in self.chunks)
        return rtcp_header(len(self.chunks), PT_SDES, len(body)) + body

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> Sdes:
        """Decode ``count`` chunks; bytes after the last chunk are ignored."""
        end = len(body)
        pos = 0
        chunks = []
        for index in range(count):
            if pos + 4 > end:
                raise RtcpDecodeError(
                    f"RTCP SDES truncated: chunk {index} of {count} needs {pos + 4} body bytes, "
                    f"body has {end}"
                )
            ssrc = _U32.unpack_from(body, pos)[0]
            pos += 4
            items = []
            while True:
                if pos >= end:
                    raise RtcpDecodeError(f"RTCP SDES chunk {index} item list not terminated")
                item_type = body[pos]
                if item_type == 0:
                    # Null terminator, then null padding to the next 32-bit boundary.
                    pos = min((pos + 4) & ~3, end)
                    break
                if pos + 2 > end:
                    raise RtcpDecodeError(
                        f"RTCP SDES chunk {index} item type {item_type} truncated: no length byte"
                    )
                size = body[pos + 1]
                left = end - pos - 2
                if size > left:
                    raise RtcpDecodeError(
                        f"RTCP SDES chunk {index} item type {item_type} length {size} exceeds "
                        f"{left} bytes left"
                    )
                items.append(SdesItem(item_type, bytes(body[pos + 2 : pos + 2 + size])))
                pos += 2 + size
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))


@dataclass(frozen=True, slots=True)
class Bye(RtcpPacket):
    """BYE: the departing sources and an optional reason (None = no reason field)."""

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None

    def build(self) -> bytes:
        """Serialize with the common header."""
        if len(self.ssrcs) > 31:
            raise RtcpEncodeError(f"RTCP BYE has {len(self.ssrcs)} SSRCs, max 31")
        out = bytearray()
        for ssrc in self.ssrcs:
            check_u32("BYE SSRC", ssrc)
            out += _U32.pack(ssrc)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise RtcpEncodeError(f"RTCP BYE reason of {len(self.reason)} bytes exceeds 255")
            out.append(len(self.reason))
            out += self.reason
            out += bytes(-len(out) % 4)
        return rtcp_header(len(self.ssrcs), PT_BYE, len(out)) + bytes(out)

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> Bye:
        """Decode ``count`` SSRCs and, if bytes remain, the length-prefixed reason."""
        need = 4 * count
        if len(body) < need:
            raise RtcpDecodeError(
                f"RTCP BYE truncated: source count {count} needs {need} body bytes, "
                f"body has {len(body)}"
            )
        ssrcs = struct.unpack_from(f"!{count}I", body, 0)
        reason = None
        if len(body) > need:
            size = body[need]
            left = len(body) - need - 1
            if size > left:
                raise RtcpDecodeError(f"RTCP BYE reason length {size} exceeds {left} bytes left")
            reason = bytes(body[need + 1 : need + 1 + size])
        return cls(tuple(ssrcs), reason)


@dataclass(frozen=True, slots=True)
class App(RtcpPacket):
    """APP: application-defined data, 4-character ``name`` and 5-bit ``subtype``."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    def build(self) -> bytes:
        """Serialize with the common header; ``data`` must be a multiple of 4 bytes."""
        if not 0 <= self.subtype <= 31:
            raise RtcpEncodeError(f"RTCP APP subtype {self.subtype} out of range 0..31")
        check_u32("APP SSRC", self.ssrc)
        if len(self.name) != 4:
            raise RtcpEncodeError(f"RTCP APP name must be 4 bytes, got {len(self.name)}")
        if len(self.data) % 4:
            raise RtcpEncodeError(f"RTCP APP data of {len(self.data)} bytes is not a multiple of 4")
        body = _U32.pack(self.ssrc) + self.name + self.data
        return rtcp_header(self.subtype, PT_APP, len(body)) + body

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> App:
        """Decode SSRC, name and data; ``count`` is the subtype."""
        if len(body) < 8:
            raise RtcpDecodeError(f"RTCP APP truncated: body has {len(body)} bytes, needs 8")
        return cls(count, _U32.unpack_from(body, 0)[0], bytes(body[4:8]), bytes(body[8:]))
