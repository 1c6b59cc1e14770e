"""The 20-byte STUN header: cheap peeks for the demultiplexer and the hot path.

A router's single UDP port carries STUN, DTLS, SRTP and (on TURN) ChannelData. Deciding what a
datagram is, or which transaction it answers, must not cost a full attribute parse, so these
helpers read fixed offsets with ``struct.unpack_from`` and allocate nothing unless asked for the
transaction id.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from turn.stun.constants import HEADER_SIZE, MAGIC_COOKIE, decode_message_type
from turn.stun.errors import StunDecodeError

Buffer = bytes | bytearray | memoryview

_HEADER: Final = struct.Struct(">HHI")
_unpack_header = _HEADER.unpack_from
_TL: Final = struct.Struct(">HH")
_MESSAGE_INTEGRITY: Final = 0x0008


class StunHeader(NamedTuple):
    """Fixed part of a STUN message, as read by :func:`peek_header`."""

    msg_type: int
    length: int
    transaction_id: bytes

    @property
    def method(self) -> int:
        """12-bit method number."""
        return decode_message_type(self.msg_type)[0]

    @property
    def cls(self) -> int:
        """2-bit class (see :class:`~turn.stun.constants.MessageClass`)."""
        return decode_message_type(self.msg_type)[1]


def is_stun(data: Buffer) -> bool:
    """True if ``data`` looks like a complete STUN message (RFC 7983 demux plus cookie and length).

    Follows RFC 7983: only first bytes 0-3 count as STUN (every registered method is below
    0x100), so DTLS (20-63), ChannelData (64-79) and RTP (128-191) never pass. Then checks the
    magic cookie and that the length field matches the datagram; attributes are not validated.
    """
    if len(data) < HEADER_SIZE or data[0] > 3:
        return False
    _, length, cookie = _unpack_header(data)
    return cookie == MAGIC_COOKIE and not length & 3 and length + HEADER_SIZE == len(data)


def peek_header(data: Buffer) -> StunHeader:
    """Read type, length and transaction id without looking at attributes.

    Raises :class:`StunDecodeError` if the header itself is malformed; the attribute section is
    not checked (use :func:`turn.stun.message.parse_message` for that).
    """
    n = len(data)
    if n < HEADER_SIZE:
        raise StunDecodeError(f"STUN message truncated: {n} bytes, the header alone needs 20")
    msg_type, length, cookie = _unpack_header(data)
    if msg_type & 0xC000:
        raise StunDecodeError(
            f"not a STUN message: first two bits are 0b{msg_type >> 14:02b}, expected 0b00"
        )
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError(f"STUN magic cookie is 0x{cookie:08x}, expected 0x2112a442")
    return StunHeader(msg_type, length, bytes(data[8:20]))


def peek_message_type(data: Buffer) -> int:
    """The 14-bit message type of a buffer already known to be STUN (see :func:`is_stun`)."""
    if len(data) < 2:
        raise StunDecodeError(
            f"STUN message truncated: {len(data)} bytes, the header alone needs 20"
        )
    return int(data[0] << 8 | data[1]) & 0x3FFF


def peek_transaction_id(data: Buffer) -> bytes:
    """The 12-byte transaction id of a buffer already known to be STUN."""
    if len(data) < HEADER_SIZE:
        raise StunDecodeError(
            f"STUN message truncated: {len(data)} bytes, the header alone needs 20"
        )
    return bytes(data[8:20])


def peek_attribute(data: Buffer, attr_type: int) -> bytes | None:
    """Value of the first attribute of ``attr_type`` without decoding the others.

    Lets ICE-lite fetch USERNAME to pick the key, or a demuxer read one field, before paying for
    a full parse. Stops at MESSAGE-INTEGRITY like the parser does for non-security attributes.
    Returns ``None`` if absent; raises :class:`StunDecodeError` if the framing is broken first.
    """
    header = peek_header(data)
    end = HEADER_SIZE + header.length
    if end > len(data):
        raise StunDecodeError(
            f"STUN message truncated: header says {header.length} bytes of attributes, "
            f"{len(data) - HEADER_SIZE} present"
        )
    pos = HEADER_SIZE
    while pos + 4 <= end:
        atype, alen = _TL.unpack_from(data, pos)
        start = pos + 4
        if start + alen > end:
            raise StunDecodeError(
                f"STUN attribute 0x{atype:04x} at offset {pos} truncated: length {alen}, "
                f"{end - start} bytes left in the message"
            )
        if atype == attr_type:
            return bytes(data[start : start + alen])
        if atype == _MESSAGE_INTEGRITY:
            return None
        pos = start + alen + (-alen & 3)
    return None
