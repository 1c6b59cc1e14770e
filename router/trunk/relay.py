"""The relay envelope: trunk SRTP that travels ``src -> relay -> dst`` on the media ports.

A relay router never decrypts: the packet inside is protected with the ``src -> dst`` trunk key
end to end, so the relay learns nothing but sizes and the two node ids, and a forged envelope
fails SRTP authentication at ``dst``. The relay forwards only from the media address of its
trunk peer ``src`` to the media address of its trunk peer ``dst``: it is no open reflector.

Layout: ``0xE7 | flags | len(src) | src | len(dst) | dst | SRTP or SRTCP``. The first byte is
outside every RFC 7983 range (STUN 0-3, ZRTP 16-19, DTLS 20-63, TURN 64-79, RTP/RTCP 128-191),
so the media port's demultiplexer tells it apart with one comparison. ``flags`` bit 0: SRTCP.
"""

from __future__ import annotations

from typing import Final

MARKER: Final = 0xE7
_RTCP: Final = 0x01


class EnvelopeError(ValueError):
    """Not a well-formed relay envelope."""


def wrap(src: bytes, dst: bytes, packet: bytes, rtcp: bool) -> bytes:
    """``src``/``dst`` are node ids encoded once by the caller (ASCII, at most 64 bytes)."""
    return b"".join((bytes((MARKER, _RTCP if rtcp else 0, len(src))), src, bytes((len(dst),)),
                     dst, packet))


def header_size(src: bytes, dst: bytes) -> int:
    """Bytes before the SRTP packet in an envelope from ``src`` to ``dst``."""
    return 4 + len(src) + len(dst)


def unwrap(data: bytes) -> tuple[str, str, bool, bytes]:
    """``(src, dst, is_rtcp, packet)``; raises :class:`EnvelopeError`."""
    n = len(data)
    if n < 5 or data[0] != MARKER or data[1] & ~_RTCP:
        raise EnvelopeError("not a relay envelope")
    src_len = data[2]
    if not 0 < src_len <= 64 or n < 4 + src_len:
        raise EnvelopeError("bad source length")
    dst_at = 3 + src_len
    dst_len = data[dst_at]
    end = dst_at + 1 + dst_len
    if not 0 < dst_len <= 64 or n <= end:
        raise EnvelopeError("bad destination length")
    try:
        src = data[3:dst_at].decode("ascii")
        dst = data[dst_at + 1:end].decode("ascii")
    except UnicodeDecodeError:
        raise EnvelopeError("node ids are not ASCII") from None
    return src, dst, bool(data[1] & _RTCP), data[end:]


__all__ = ["MARKER", "EnvelopeError", "header_size", "unwrap", "wrap"]
