"""Raw RTP manipulations the forwarder needs beyond the fixed-header rewrite.

Everything here works on whole packets as bytes and is off the common path: extension-id
rewriting runs once per incoming packet per distinct subscriber mapping (not per subscriber),
RTX unwrapping once per repair packet, RTX wrapping once per NACK served.

Stripping an extension element without moving the payload: RFC 8285 treats an ID-0 byte as
padding in both forms (and libwebrtc skips it ignoring the length nibble), so overwriting an
element's header and data with zeros removes it in place.
"""

from __future__ import annotations

import struct
from typing import Final

from router.rtp import RtpDecodeError
from router.rtp.header_extensions import iter_extension_elements
from router.transport import fastpath

__all__ = [
    "IDENTITY_EXT_TABLE",
    "abs_send_time",
    "build_rtx",
    "extension_table",
    "outgoing_tail",
    "rewrite_extensions",
    "rtp_layout",
    "unwrap_rtx",
]

Buffer = bytes | bytearray | memoryview

_U16: Final = struct.Struct("!H")
_HDR: Final = struct.Struct("!BBHII")
_ONE_BYTE: Final = 0xBEDE

IDENTITY_EXT_TABLE: Final = bytes(range(256))
"""Extension-id table that changes nothing."""


def rtp_layout(buf: Buffer) -> tuple[int, int]:
    """``(header_length, payload_length)`` of an RTP packet, padding excluded.

    Checks version, CSRC count, extension length and padding count against the real size (the
    fuzzing lesson from Janus/mediasoup), raising :class:`RtpDecodeError`.
    """
    n = len(buf)
    if n < 12:
        raise RtpDecodeError(f"RTP packet truncated: {n} bytes, fixed header needs 12")
    b0 = buf[0]
    if b0 & 0xC0 != 0x80:
        raise RtpDecodeError(f"RTP version {b0 >> 6} is not 2")
    hl = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if n < hl + 4:
            raise RtpDecodeError(f"RTP header extension truncated: {n} bytes")
        hl += 4 + 4 * _U16.unpack_from(buf, hl + 2)[0]
    if hl > n:
        raise RtpDecodeError(f"RTP header of {hl} bytes exceeds packet of {n}")
    plen = n - hl
    if b0 & 0x20:
        pad = buf[n - 1]
        if pad == 0 or pad > plen:
            raise RtpDecodeError(f"RTP padding count {pad} invalid for {plen} payload bytes")
        plen -= pad
    return hl, plen


def extension_table(
    publisher: dict[str, int], subscriber: dict[str, int], stripped: frozenset[str]
) -> bytes | None:
    """Map publisher extension ids to the subscriber's, 0 meaning "strip"; None if identity.

    Identity means every extension the publisher negotiated is forwarded under the same id;
    ids the publisher never negotiated then pass through untouched (it must not send any).
    """
    table = bytearray(256)
    identity = True
    for uri, pub_id in publisher.items():
        if not 1 <= pub_id <= 255:
            continue
        new_id = 0 if uri in stripped else subscriber.get(uri, 0)
        table[pub_id] = new_id
        if new_id != pub_id:
            identity = False
    return None if identity else bytes(table)


def rewrite_extensions(packet: Buffer, table: bytes) -> bytes | None:
    """The packet with extension ids mapped through ``table``; None if nothing changed.

    A one-byte-form element whose new id does not fit (15+) is stripped rather than converted,
    which would change the packet length. Raises :class:`RtpDecodeError` on a malformed block.
    """
    b0 = packet[0]
    if not b0 & 0x10:
        return None
    start = 12 + 4 * (b0 & 0x0F)
    n = len(packet)
    if n < start + 4:
        raise RtpDecodeError(f"RTP header extension truncated: {n} bytes")
    profile, words = struct.unpack_from("!HH", packet, start)
    end = start + 4 + 4 * words
    if end > n:
        raise RtpDecodeError(f"RTP header extension exceeds packet: needs {end} bytes")
    one_byte = profile == _ONE_BYTE
    if one_byte:
        fast = _fast_one_byte
        if fast is None:
            return _rewrite_one_byte(packet, start + 4, end, table)
        result = fast(packet, start + 4, end, table)
        if type(result) is int:
            raise _overrun(packet, result, end)
        return result  # type: ignore[return-value]
    out: bytearray | None = None
    for ext_id, pos, size in iter_extension_elements(profile, packet, start + 4, end):
        new_id = table[ext_id]
        if new_id == ext_id:
            continue
        if out is None:
            out = bytearray(packet)
        if one_byte:
            if 1 <= new_id <= 14:
                out[pos - 1] = (new_id << 4) | (size - 1)
            else:
                out[pos - 1 : pos + size] = bytes(size + 1)
        elif new_id:
            out[pos - 2] = new_id
        else:
            out[pos - 2 : pos + size] = bytes(size + 2)
    return None if out is None else bytes(out)


def _rewrite_one_byte(packet: Buffer, pos: int, end: int, table: bytes) -> bytes | None:
    """:func:`rewrite_extensions` for the one-byte form (Chromium's): the same bytes out, in one
    inline pass instead of the generic element iterator (this runs once per incoming packet and
    subscriber mapping)."""
    out: bytearray | None = None
    while pos < end:
        b = packet[pos]
        ext_id = b >> 4
        if ext_id == 0:
            pos += 1
            continue
        if ext_id == 15:
            break
        size = (b & 0x0F) + 1
        following = pos + 1 + size
        if following > end:
            raise _overrun(packet, pos, end)
        new_id = table[ext_id]
        if new_id != ext_id:
            if out is None:
                out = bytearray(packet)
            if 1 <= new_id <= 14:
                out[pos] = (new_id << 4) | (size - 1)
            else:
                out[pos:following] = bytes(size + 1)
        pos = following
    return None if out is None else bytes(out)


def _overrun(packet: Buffer, pos: int, end: int) -> RtpDecodeError:
    b = packet[pos]
    return RtpDecodeError(
        f"RTP one-byte header extension element {b >> 4} length {(b & 0x0F) + 1} exceeds "
        f"block: {end - pos - 1} bytes left"
    )


_fast_one_byte: fastpath.OneByteRewrite | None = fastpath.one_byte_rewriter()
"""The compiled twin of :func:`_rewrite_one_byte` (router.transport.fastpath) when it is built
and on; tested against it on the same packets."""


def unwrap_rtx(
    packet: bytes, header_length: int, payload_length: int, ssrc: int, payload_type: int
) -> bytes | None:
    """Turn an RFC 4588 RTX packet back into the original packet (seq = OSN).

    Returns None for a padding-only RTX packet (libwebrtc's bandwidth probes), which carries no
    media and must not be forwarded. Raises :class:`RtpDecodeError` if the OSN is missing.
    """
    if payload_length == 0:
        return None
    if payload_length < 2:
        raise RtpDecodeError("RTX packet payload shorter than its 2-byte OSN")
    b0, b1, _seq, ts, _ssrc = _HDR.unpack_from(packet)
    osn = _U16.unpack_from(packet, header_length)[0]
    out = bytearray(packet[:header_length])
    _HDR.pack_into(out, 0, b0, (b1 & 0x80) | payload_type, osn, ts, ssrc)
    out += packet[header_length + 2 :]
    return bytes(out)


def build_rtx(packet: bytes, rtx_ssrc: int, rtx_seq: int, rtx_payload_type: int) -> bytes:
    """Wrap an already rewritten outgoing packet as RTX: OSN = its seq, then its payload."""
    header_length, _ = rtp_layout(packet)
    b0, b1, seq, ts, _ssrc = _HDR.unpack_from(packet)
    out = bytearray(packet[:header_length])
    _HDR.pack_into(out, 0, b0, (b1 & 0x80) | rtx_payload_type, rtx_seq & 0xFFFF, ts, rtx_ssrc)
    out += _U16.pack(seq)
    out += packet[header_length:]
    return bytes(out)


def abs_send_time(now: float) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds, wrapping every 64 s)."""
    return int(now * 262144.0) & 0xFFFFFF


def outgoing_tail(
    packet: bytes, table: bytes | None, ast_id: int, ast_value: int
) -> tuple[int, bytes]:
    """``(first header byte, bytes after the fixed header)`` of a packet going to a subscriber:
    extension ids mapped through ``table`` (0 strips), then, if ``ast_id``, an abs-send-time
    element with that id and ``ast_value`` appended to the extension block (creating one).

    abs-send-time is 3 bytes, so a one-byte-form element is exactly one 32-bit word and a
    two-byte-form one two words with padding: appending never realigns anything else. A
    one-byte block cannot hold an id above 14; such an element is then left out. Raises
    :class:`RtpDecodeError` on a malformed extension block.

    The common case, Chromium's one-byte block with some ids to strip or map, takes one pass
    that copies only the kept elements (:func:`_compact_one_byte`); other forms rewrite in
    place (stripped elements become padding) and append.
    """
    b0 = packet[0]
    if table is not None and b0 & 0x10:
        start = 12 + 4 * (b0 & 0x0F)
        if len(packet) >= start + 4 and packet[start] == 0xBE and packet[start + 1] == 0xDE:
            return _compact_one_byte(packet, b0, start, table, ast_id, ast_value)
    if table is not None:
        packet = rewrite_extensions(packet, table) or packet
    b0 = packet[0]
    start = 12 + 4 * (b0 & 0x0F)
    if not ast_id:
        return b0, packet[12:]
    v = ast_value
    if not b0 & 0x10:
        if ast_id <= 14:
            block = bytes(
                (0xBE, 0xDE, 0, 1, (ast_id << 4) | 2, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF)
            )
        else:
            block = bytes(
                (0x10, 0x00, 0, 2, ast_id, 3, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF, 0, 0, 0)
            )
        return b0 | 0x10, packet[12:start] + block + packet[start:]
    n = len(packet)
    if n < start + 4:
        raise RtpDecodeError(f"RTP header extension truncated: {n} bytes")
    profile, words = struct.unpack_from("!HH", packet, start)
    end = start + 4 + 4 * words
    if end > n:
        raise RtpDecodeError(f"RTP header extension exceeds packet: needs {end} bytes")
    if profile == _ONE_BYTE and ast_id <= 14:
        element = bytes(((ast_id << 4) | 2, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF))
        words += 1
    elif profile & 0xFFF0 == 0x1000:
        element = bytes((ast_id, 3, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF, 0, 0, 0))
        words += 2
    else:
        return b0, packet[12:]
    header = packet[12:start] + _U16.pack(profile) + _U16.pack(words)
    return b0, header + packet[start + 4 : end] + element + packet[end:]


def _compact_one_byte(
    packet: bytes, b0: int, start: int, table: bytes, ast_id: int, v: int
) -> tuple[int, bytes]:
    """:func:`outgoing_tail` for a one-byte-form block: kept elements (ids mapped) copied once,
    stripped ones left out rather than zeroed, the abs-send-time element appended; the block
    disappears (X bit cleared) when nothing is left in it. Receivers parse the same elements
    either way (RFC 8285 padding carries nothing)."""
    n = len(packet)
    end = start + 4 + 4 * ((packet[start + 2] << 8) | packet[start + 3])
    if end > n:
        raise RtpDecodeError(f"RTP header extension exceeds packet: needs {end} bytes")
    parts: list[bytes] = []
    size = 0
    pos = start + 4
    while pos < end:
        b = packet[pos]
        ext_id = b >> 4
        if ext_id == 0:
            pos += 1
            continue
        if ext_id == 15:
            break
        length = (b & 0x0F) + 1
        following = pos + 1 + length
        if following > end:
            raise RtpDecodeError(
                f"RTP one-byte header extension element {ext_id} length {length} exceeds "
                f"block: {end - pos - 1} bytes left"
            )
        new_id = table[ext_id]
        if 1 <= new_id <= 14:
            parts.append(bytes(((new_id << 4) | (b & 0x0F),)) if new_id != ext_id
                         else packet[pos:pos + 1])
            parts.append(packet[pos + 1 : following])
            size += 1 + length
        pos = following
    if 1 <= ast_id <= 14:
        parts.append(bytes(((ast_id << 4) | 2, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF)))
        size += 4
    if not size:
        return b0 & 0xEF, packet[12:start] + packet[end:]
    pad = -size % 4
    return b0, b"".join((packet[12:start], b"\xbe\xde", _U16.pack((size + pad) // 4), *parts,
                         bytes(pad), packet[end:]))
