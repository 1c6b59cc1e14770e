"""RTCP feedback messages (RFC 4585 §6): generic NACK, PLI, FIR (RFC 5104) and REMB.

All share ``sender SSRC | media SSRC | FCI``; the FCI length is implied by the packet length,
so item counts are derived from the body size (whole items only, like libwebrtc) and never
from a peer-supplied counter without a check. REMB (draft-alvestrand-rmcat-remb) is an
application-layer feedback (PSFB FMT 15) recognised by its ``"REMB"`` identifier; any other
AFB payload is returned as :class:`RawRtcpPacket` so it is forwarded unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from router.rtp.errors import RtcpDecodeError, RtcpEncodeError
from router.rtp.rtcp_common import (
    PT_PSFB,
    PT_RTPFB,
    RawRtcpPacket,
    RtcpPacket,
    check_u16,
    check_u32,
    rtcp_header,
)
from router.rtp.seqnum import seq_diff

__all__ = [
    "FMT_AFB",
    "FMT_FIR",
    "FMT_NACK",
    "FMT_PLI",
    "FMT_TWCC",
    "Fir",
    "FirEntry",
    "GenericNack",
    "NackItem",
    "Pli",
    "Remb",
    "expand_nack",
    "nack_items_from_seqs",
]

Buffer = bytes | bytearray | memoryview

FMT_NACK: Final = 1
"""RTPFB FMT of the generic NACK."""
FMT_TWCC: Final = 15
"""RTPFB FMT of transport-wide congestion control feedback."""
FMT_PLI: Final = 1
"""PSFB FMT of the picture loss indication."""
FMT_FIR: Final = 4
"""PSFB FMT of the full intra request."""
FMT_AFB: Final = 15
"""PSFB FMT of application-layer feedback (REMB)."""

_FB: Final = struct.Struct("!II")
_NACK: Final = struct.Struct("!HH")
_FIR: Final = struct.Struct("!IB3x")
_REMB_ID: Final = b"REMB"
_REMB_MANTISSA_MAX: Final = (1 << 18) - 1


def _decode_fb_ssrcs(name: str, body: Buffer, need: int = 8) -> tuple[int, int]:
    if len(body) < need:
        raise RtcpDecodeError(f"RTCP {name} truncated: body has {len(body)} bytes, needs {need}")
    sender, media = _FB.unpack_from(body, 0)
    return int(sender), int(media)


def _encode_fb(fmt: int, pt: int, sender: int, media: int, fci: bytes) -> bytes:
    check_u32("sender SSRC", sender)
    check_u32("media SSRC", media)
    return rtcp_header(fmt, pt, 8 + len(fci)) + _FB.pack(sender, media) + fci


@dataclass(frozen=True, slots=True)
class NackItem:
    """One NACK FCI entry: lost packet ``pid`` plus bitmask ``blp`` of the 16 following it."""

    pid: int
    blp: int = 0

    def seqs(self) -> list[int]:
        """The lost sequence numbers this item names, in order (wrapping past 65535)."""
        out = [self.pid]
        blp = self.blp
        bit = 0
        while blp:
            if blp & 1:
                out.append((self.pid + bit + 1) & 0xFFFF)
            blp >>= 1
            bit += 1
        return out


def expand_nack(items: Iterable[NackItem]) -> list[int]:
    """All sequence numbers named by ``items`` (duplicates possible if items overlap)."""
    out: list[int] = []
    for item in items:
        out.extend(item.seqs())
    return out


def nack_items_from_seqs(seqs: Iterable[int]) -> tuple[NackItem, ...]:
    """Compress lost sequence numbers into as few PID/BLP items as a greedy pass allows.

    Numbers are deduplicated and ordered with wraparound arithmetic relative to the first one,
    so ``[65534, 65535, 0, 1]`` becomes a single item with PID 65534. They must all lie within
    half the sequence space of each other (always true for a real NACK list).
    """
    unique = list(dict.fromkeys(s & 0xFFFF for s in seqs))
    if not unique:
        return ()
    first = unique[0]
    unique.sort(key=lambda s: seq_diff(s, first))
    items: list[NackItem] = []
    pid = unique[0]
    blp = 0
    for seq in unique[1:]:
        offset = (seq - pid) & 0xFFFF
        if offset <= 16:
            blp |= 1 << (offset - 1)
        else:
            items.append(NackItem(pid, blp))
            pid, blp = seq, 0
    items.append(NackItem(pid, blp))
    return tuple(items)


@dataclass(frozen=True, slots=True)
class GenericNack(RtcpPacket):
    """Generic NACK (RTPFB FMT 1): retransmission request for the listed packets."""

    sender_ssrc: int
    media_ssrc: int
    items: tuple[NackItem, ...] = ()

    @classmethod
    def from_seqs(cls, sender_ssrc: int, media_ssrc: int, seqs: Iterable[int]) -> GenericNack:
        """Build a NACK for the given lost sequence numbers."""
        return cls(sender_ssrc, media_ssrc, nack_items_from_seqs(seqs))

    def lost_seqs(self) -> list[int]:
        """The requested sequence numbers."""
        return expand_nack(self.items)

    def build(self) -> bytes:
        """Serialize with the common header."""
        fci = bytearray()
        for item in self.items:
            check_u16("NACK PID", item.pid)
            check_u16("NACK BLP", item.blp)
            fci += _NACK.pack(item.pid, item.blp)
        return _encode_fb(FMT_NACK, PT_RTPFB, self.sender_ssrc, self.media_ssrc, bytes(fci))

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> GenericNack:
        """Decode; a trailing partial item (under 4 bytes) is ignored."""
        sender, media = _decode_fb_ssrcs("NACK", body)
        n = (len(body) - 8) // 4
        items = tuple(NackItem(*_NACK.unpack_from(body, 8 + 4 * i)) for i in range(n))
        return cls(sender, media, items)


@dataclass(frozen=True, slots=True)
class Pli(RtcpPacket):
    """Picture loss indication (PSFB FMT 1): the receiver wants a keyframe."""

    sender_ssrc: int
    media_ssrc: int

    def build(self) -> bytes:
        """Serialize with the common header."""
        return _encode_fb(FMT_PLI, PT_PSFB, self.sender_ssrc, self.media_ssrc, b"")

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> Pli:
        """Decode; PLI has no FCI and any extra bytes are ignored."""
        return cls(*_decode_fb_ssrcs("PLI", body))


@dataclass(frozen=True, slots=True)
class FirEntry:
    """One FIR FCI entry: the SSRC asked for a keyframe and the request sequence number."""

    ssrc: int
    seq_nr: int


@dataclass(frozen=True, slots=True)
class Fir(RtcpPacket):
    """Full intra request (RFC 5104 §4.3.1, PSFB FMT 4); ``media_ssrc`` is 0 on the wire."""

    sender_ssrc: int
    entries: tuple[FirEntry, ...] = ()
    media_ssrc: int = 0

    def build(self) -> bytes:
        """Serialize with the common header."""
        fci = bytearray()
        for entry in self.entries:
            check_u32("FIR SSRC", entry.ssrc)
            if not 0 <= entry.seq_nr <= 255:
                raise RtcpEncodeError(
                    f"RTCP FIR sequence number {entry.seq_nr} out of range 0..255"
                )
            fci += _FIR.pack(entry.ssrc, entry.seq_nr)
        return _encode_fb(FMT_FIR, PT_PSFB, self.sender_ssrc, self.media_ssrc, bytes(fci))

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> Fir:
        """Decode; a trailing partial entry (under 8 bytes) is ignored."""
        sender, media = _decode_fb_ssrcs("FIR", body)
        n = (len(body) - 8) // 8
        entries = tuple(FirEntry(*_FIR.unpack_from(body, 8 + 8 * i)) for i in range(n))
        return cls(sender, entries, media)


@dataclass(frozen=True, slots=True)
class Remb(RtcpPacket):
    """Receiver estimated maximum bitrate (PSFB FMT 15, ``"REMB"`` identifier).

    ``bitrate`` is in bits per second. On the wire it is ``mantissa (18 bits) << exponent
    (6 bits)``; building rounds down to the nearest representable value (never overstating
    what the receiver can take), so only such values survive a round trip exactly.
    """

    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...] = ()
    media_ssrc: int = 0

    def build(self) -> bytes:
        """Serialize with the common header."""
        if self.bitrate < 0:
            raise RtcpEncodeError(f"RTCP REMB bitrate {self.bitrate} is negative")
        if len(self.ssrcs) > 255:
            raise RtcpEncodeError(f"RTCP REMB has {len(self.ssrcs)} SSRCs, max 255")
        mantissa = self.bitrate
        exponent = 0
        while mantissa > _REMB_MANTISSA_MAX:
            mantissa >>= 1
            exponent += 1
        if exponent > 63:
            raise RtcpEncodeError(f"RTCP REMB bitrate {self.bitrate} too large to encode")
        fci = bytearray(_REMB_ID)
        fci.append(len(self.ssrcs))
        fci += ((exponent << 18) | mantissa).to_bytes(3, "big")
        for ssrc in self.ssrcs:
            check_u32("REMB SSRC", ssrc)
            fci += ssrc.to_bytes(4, "big")
        return _encode_fb(FMT_AFB, PT_PSFB, self.sender_ssrc, self.media_ssrc, bytes(fci))

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> RtcpPacket:
        """Decode a REMB, or return the packet raw if the AFB is not a REMB."""
        sender, media = _decode_fb_ssrcs("AFB", body)
        if bytes(body[8:12]) != _REMB_ID:
            return RawRtcpPacket(raw)
        if len(body) < 16:
            raise RtcpDecodeError(f"RTCP REMB truncated: body has {len(body)} bytes, needs 16")
        num = body[12]
        br = int.from_bytes(body[13:16], "big")
        need = 16 + 4 * num
        if len(body) < need:
            raise RtcpDecodeError(
                f"RTCP REMB SSRC count {num} needs {need} body bytes, body has {len(body)}"
            )
        ssrcs = struct.unpack_from(f"!{num}I", body, 16)
        return cls(sender, (br & _REMB_MANTISSA_MAX) << (br >> 18), tuple(ssrcs), media)
