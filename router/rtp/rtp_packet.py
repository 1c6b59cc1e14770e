"""Full RTP packet codec (RFC 3550 §5.1): fixed header, CSRCs, header extension, padding.

This is the slow path: signalling-time probing, tests, RTX (re)packetization and anything
that needs the extension elements as objects. The forwarder uses :mod:`router.rtp.fields` instead.
Every length on the wire (CSRC count, extension length, padding count) is checked against the
real packet size before it is used, so hostile input ends as :class:`RtpDecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from router.rtp.errors import RtpDecodeError, RtpEncodeError
from router.rtp.header_extensions import ExtensionBlock

__all__ = ["RtpPacket", "parse_rtp"]

Buffer = bytes | bytearray | memoryview

_FIXED: Final = struct.Struct("!BBHII")
_EXT_HEADER: Final = struct.Struct("!HH")
_U32_MAX: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """A parsed or to-be-built RTP packet.

    ``padding_size`` is the total number of padding bytes including the trailing count byte
    (0 = no padding); the padding content is zeros on build and ignored on parse.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: ExtensionBlock | None = None
    payload: bytes = b""
    padding_size: int = 0

    @classmethod
    def parse(cls, buf: Buffer) -> RtpPacket:
        """Parse one RTP packet; raise :class:`RtpDecodeError` on any malformation."""
        n = len(buf)
        if n < 12:
            raise RtpDecodeError(f"RTP packet truncated: {n} bytes, fixed header needs 12")
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(buf)
        version = b0 >> 6
        if version != 2:
            raise RtpDecodeError(f"RTP version {version} is not 2")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if n < pos:
            raise RtpDecodeError(
                f"RTP packet truncated: CSRC count {cc} needs {pos} bytes, packet has {n}"
            )
        csrcs = struct.unpack_from(f"!{cc}I", buf, 12) if cc else ()
        extension = None
        if b0 & 0x10:
            if n < pos + 4:
                raise RtpDecodeError(
                    f"RTP header extension truncated: needs {pos + 4} bytes, packet has {n}"
                )
            profile, words = _EXT_HEADER.unpack_from(buf, pos)
            end = pos + 4 + 4 * words
            if end > n:
                raise RtpDecodeError(
                    f"RTP header extension length {words} words exceeds packet: needs {end} "
                    f"bytes, packet has {n}"
                )
            extension = ExtensionBlock.decode(profile, buf, pos + 4, end)
            pos = end
        padding = 0
        if b0 & 0x20:
            if n == pos:
                raise RtpDecodeError("RTP padding flag set but packet has no bytes after header")
            padding = buf[n - 1]
            if padding == 0:
                raise RtpDecodeError("RTP padding count 0 is invalid")
            if padding > n - pos:
                raise RtpDecodeError(
                    f"RTP padding count {padding} exceeds {n - pos} bytes after header"
                )
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            marker=bool(b1 & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            payload=bytes(buf[pos : n - padding]),
            padding_size=padding,
        )

    @property
    def header_size(self) -> int:
        """Bytes before the payload: fixed header, CSRCs and extension block."""
        size = 12 + 4 * len(self.csrcs)
        if self.extension is not None:
            size += len(self.extension.encode())
        return size

    def build(self) -> bytes:
        """Serialize; raise :class:`RtpEncodeError` for values the wire cannot carry."""
        if not 0 <= self.payload_type <= 127:
            raise RtpEncodeError(f"RTP payload type {self.payload_type} out of range 0..127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpEncodeError(
                f"RTP sequence number {self.sequence_number} out of range 0..65535"
            )
        if not 0 <= self.timestamp <= _U32_MAX:
            raise RtpEncodeError(f"RTP timestamp {self.timestamp} out of range 0..2**32-1")
        if not 0 <= self.ssrc <= _U32_MAX:
            raise RtpEncodeError(f"RTP SSRC {self.ssrc} out of range 0..2**32-1")
        if len(self.csrcs) > 15:
            raise RtpEncodeError(f"RTP CSRC count {len(self.csrcs)} exceeds 15")
        for csrc in self.csrcs:
            if not 0 <= csrc <= _U32_MAX:
                raise RtpEncodeError(f"RTP CSRC {csrc} out of range 0..2**32-1")
        if not 0 <= self.padding_size <= 255:
            raise RtpEncodeError(f"RTP padding size {self.padding_size} out of range 0..255")
        b0 = 0x80 | len(self.csrcs)
        if self.padding_size:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        out = bytearray(_FIXED.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc))
        for csrc in self.csrcs:
            out += csrc.to_bytes(4, "big")
        if self.extension is not None:
            out += self.extension.encode()
        out += self.payload
        if self.padding_size:
            out += bytes(self.padding_size - 1)
            out.append(self.padding_size)
        return bytes(out)


def parse_rtp(buf: Buffer) -> RtpPacket:
    """Module-level alias of :meth:`RtpPacket.parse`."""
    return RtpPacket.parse(buf)
