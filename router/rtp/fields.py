"""Hot-path RTP accessors and in-place rewriters that build no objects.

The forwarder touches every packet: it needs the SSRC to find the route, the sequence number and
timestamp to rewrite, and the payload type and marker for keyframe and layer logic. Building an
:class:`~router.rtp.rtp_packet.RtpPacket` for that would allocate a dataclass, tuples and payload
copies per packet, so these functions read and write the fixed header directly with
``struct.unpack_from`` / ``struct.pack_into`` on whatever buffer the socket filled (``bytes``,
``bytearray`` or ``memoryview``). Every reader checks the length once, so short or hostile
buffers raise :class:`RtpDecodeError` rather than ``struct.error``.

Also here: the RFC 7983 / RFC 5761 classifier that tells RTP from RTCP on a muxed port, and
:func:`find_rtp_extension` which locates one header extension element (e.g. the transport-wide
sequence number) inside a raw packet for in-place rewriting.
"""

from __future__ import annotations

import struct
from typing import Final

from router.rtp.errors import RtpDecodeError, RtpEncodeError
from router.rtp.header_extensions import find_extension_element

__all__ = [
    "RTP_HEADER_SIZE",
    "find_rtp_extension",
    "is_rtcp",
    "is_rtp",
    "is_rtp_or_rtcp",
    "read_rtp_header_fields",
    "rtp_marker",
    "rtp_payload_type",
    "rtp_seq",
    "rtp_ssrc",
    "rtp_timestamp",
    "set_rtp_marker",
    "set_rtp_payload_type",
    "set_rtp_seq",
    "set_rtp_ssrc",
    "set_rtp_ssrc_seq_timestamp",
    "set_rtp_timestamp",
]

Buffer = bytes | bytearray | memoryview
WritableBuffer = bytearray | memoryview

RTP_HEADER_SIZE: Final = 12
"""Size of the fixed RTP header (RFC 3550 §5.1) before CSRCs and extensions."""

_FIXED: Final = struct.Struct("!BBHII")
_SEQ: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_SEQ_TS_SSRC: Final = struct.Struct("!HII")
_SHORT_MSG: Final = "RTP packet truncated: {} bytes, fixed header needs 12"


def _check(buf: Buffer) -> None:
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(len(buf)))


def read_rtp_header_fields(buf: Buffer) -> tuple[int, bool, int, int, int]:
    """Return ``(payload_type, marker, seq, timestamp, ssrc)`` from the fixed header.

    One length check and one ``unpack_from``; also rejects RTP versions other than 2 so that a
    misclassified datagram cannot be forwarded as media.
    """
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(len(buf)))
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(buf)
    if b0 >> 6 != 2:
        raise RtpDecodeError(f"RTP version {b0 >> 6} is not 2")
    return b1 & 0x7F, b1 >= 0x80, seq, ts, ssrc


def rtp_ssrc(buf: Buffer) -> int:
    """SSRC of a raw RTP packet."""
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(len(buf)))
    value: int = _U32.unpack_from(buf, 8)[0]
    return value


def rtp_seq(buf: Buffer) -> int:
    """Sequence number of a raw RTP packet."""
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(len(buf)))
    value: int = _SEQ.unpack_from(buf, 2)[0]
    return value


def rtp_timestamp(buf: Buffer) -> int:
    """RTP timestamp of a raw RTP packet."""
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(len(buf)))
    value: int = _U32.unpack_from(buf, 4)[0]
    return value


def rtp_payload_type(buf: Buffer) -> int:
    """Payload type (7 bits) of a raw RTP packet."""
    _check(buf)
    return buf[1] & 0x7F


def rtp_marker(buf: Buffer) -> bool:
    """Marker bit of a raw RTP packet."""
    _check(buf)
    return buf[1] >= 0x80


def _pack(st: struct.Struct, buf: WritableBuffer, offset: int, *values: int) -> None:
    try:
        st.pack_into(buf, offset, *values)
    except (struct.error, TypeError) as exc:
        raise RtpEncodeError(f"cannot rewrite RTP header in place: {exc}") from None


def set_rtp_ssrc(buf: WritableBuffer, ssrc: int) -> None:
    """Overwrite the SSRC in place; ``ssrc`` must be 0..2**32-1."""
    _pack(_U32, buf, 8, ssrc)


def set_rtp_seq(buf: WritableBuffer, seq: int) -> None:
    """Overwrite the sequence number in place; ``seq`` wraps modulo 2**16 (rewrite offsets)."""
    _pack(_SEQ, buf, 2, seq & 0xFFFF)


def set_rtp_timestamp(buf: WritableBuffer, timestamp: int) -> None:
    """Overwrite the timestamp in place; ``timestamp`` wraps modulo 2**32."""
    _pack(_U32, buf, 4, timestamp & 0xFFFFFFFF)


def set_rtp_ssrc_seq_timestamp(buf: WritableBuffer, ssrc: int, seq: int, timestamp: int) -> None:
    """Rewrite SSRC, sequence number and timestamp with a single ``pack_into`` (the SFU case).

    Inlined rather than going through ``_pack``: this runs once per forwarded packet per
    subscriber.
    """
    try:
        _SEQ_TS_SSRC.pack_into(buf, 2, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    except (struct.error, TypeError) as exc:
        raise RtpEncodeError(f"cannot rewrite RTP header in place: {exc}") from None


def set_rtp_payload_type(buf: WritableBuffer, payload_type: int) -> None:
    """Overwrite the payload type in place, keeping the marker bit."""
    if not 0 <= payload_type <= 127:
        raise RtpEncodeError(f"RTP payload type {payload_type} out of range 0..127")
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpEncodeError(f"cannot rewrite RTP header in place: buffer has {len(buf)} bytes")
    buf[1] = (buf[1] & 0x80) | payload_type


def set_rtp_marker(buf: WritableBuffer, marker: bool) -> None:
    """Set or clear the marker bit in place, keeping the payload type."""
    if len(buf) < RTP_HEADER_SIZE:
        raise RtpEncodeError(f"cannot rewrite RTP header in place: buffer has {len(buf)} bytes")
    buf[1] = (buf[1] & 0x7F) | (0x80 if marker else 0)


def is_rtp_or_rtcp(buf: Buffer) -> bool:
    """RFC 7983 demux: first byte 128..191 means RTP or RTCP (and at least a fixed header)."""
    return len(buf) >= 8 and 128 <= buf[0] <= 191


def is_rtcp(buf: Buffer) -> bool:
    """RFC 5761 §4 demux: RTP/RTCP whose second byte is 192..223 (payload type 64..95) is RTCP.

    Under rtcp-mux, RTP payload types 64..95 are forbidden precisely so that this one byte
    (RTCP packet types 200..206 and friends, with the marker bit read as the top bit) decides.
    """
    return len(buf) >= 8 and 128 <= buf[0] <= 191 and 192 <= buf[1] <= 223


def is_rtp(buf: Buffer) -> bool:
    """RFC 7983 + RFC 5761: RTP/RTCP range, not RTCP, and long enough for the fixed header."""
    return len(buf) >= RTP_HEADER_SIZE and 128 <= buf[0] <= 191 and not 192 <= buf[1] <= 223


def find_rtp_extension(buf: Buffer, ext_id: int) -> tuple[int, int] | None:
    """Locate extension element ``ext_id`` in a raw RTP packet without parsing it fully.

    Returns ``(offset, length)`` of the element's data inside ``buf`` (so callers can read or
    rewrite, e.g., the transport-wide sequence number in place), or None if the packet has no
    RFC 8285 extension block or no such element. Malformed packets raise :class:`RtpDecodeError`
    with the same messages as the full parser.
    """
    n = len(buf)
    if n < RTP_HEADER_SIZE:
        raise RtpDecodeError(_SHORT_MSG.format(n))
    b0 = buf[0]
    if b0 >> 6 != 2:
        raise RtpDecodeError(f"RTP version {b0 >> 6} is not 2")
    if not b0 & 0x10:
        return None
    start = RTP_HEADER_SIZE + 4 * (b0 & 0x0F)
    if n < start + 4:
        raise RtpDecodeError(
            f"RTP header extension truncated: needs {start + 4} bytes, packet has {n}"
        )
    profile, words = struct.unpack_from("!HH", buf, start)
    end = start + 4 + 4 * words
    if end > n:
        raise RtpDecodeError(
            f"RTP header extension length {words} words exceeds packet: needs {end} bytes, "
            f"packet has {n}"
        )
    return find_extension_element(profile, buf, start + 4, end, ext_id)
