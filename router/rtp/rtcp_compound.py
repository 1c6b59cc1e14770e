"""RTCP compound packets (RFC 3550 §6.1): split, validate headers, dispatch by type and FMT.

The dispatch tables below are the one place that maps ``(PT)`` and ``(PT, FMT)`` to decoders.
Types and feedback formats not listed come back as :class:`RawRtcpPacket` holding the exact
bytes received, so an SFU can relay XR, TMMBR, SLI and future messages without understanding
them. Compound rules such as "must start with SR/RR" are not enforced: WebRTC uses reduced-size
RTCP (RFC 5506) and a relay must not reject what endpoints accept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Final

from router.rtp.errors import RtcpDecodeError
from router.rtp.rtcp_common import (
    PT_APP,
    PT_BYE,
    PT_PSFB,
    PT_RR,
    PT_RTPFB,
    PT_SDES,
    PT_SR,
    RawRtcpPacket,
    RtcpPacket,
)
from router.rtp.rtcp_feedback import (
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    FMT_TWCC,
    Fir,
    GenericNack,
    Pli,
    Remb,
)
from router.rtp.rtcp_reports import ReceiverReport, SenderReport
from router.rtp.rtcp_sdes import App, Bye, Sdes
from router.rtp.twcc import TransportCc

__all__ = ["build_rtcp_compound", "parse_rtcp_compound"]

Buffer = bytes | bytearray | memoryview
Decoder = Callable[[int, memoryview, bytes], RtcpPacket]
"""``decoder(count_or_fmt, body_without_header_or_padding, whole_packet_bytes)``."""

RTPFB_DECODERS: Final[dict[int, Decoder]] = {
    FMT_NACK: GenericNack.decode,
    FMT_TWCC: TransportCc.decode,
}
PSFB_DECODERS: Final[dict[int, Decoder]] = {
    FMT_PLI: Pli.decode,
    FMT_FIR: Fir.decode,
    FMT_AFB: Remb.decode,
}


def _fmt_dispatcher(table: dict[int, Decoder]) -> Decoder:
    def decode(fmt: int, body: memoryview, raw: bytes) -> RtcpPacket:
        decoder = table.get(fmt)
        if decoder is None:
            return RawRtcpPacket(raw)
        return decoder(fmt, body, raw)

    return decode


DECODERS: Final[dict[int, Decoder]] = {
    PT_SR: SenderReport.decode,
    PT_RR: ReceiverReport.decode,
    PT_SDES: Sdes.decode,
    PT_BYE: Bye.decode,
    PT_APP: App.decode,
    PT_RTPFB: _fmt_dispatcher(RTPFB_DECODERS),
    PT_PSFB: _fmt_dispatcher(PSFB_DECODERS),
}

_HEADER: Final = struct.Struct("!BBH")


def parse_rtcp_compound(buf: Buffer) -> list[RtcpPacket]:
    """Split and decode every packet of a compound RTCP datagram (already SRTCP-unprotected).

    Raises :class:`RtcpDecodeError` for an empty datagram, a bad version, a length field that
    runs past the datagram, bad padding, or any malformed packet inside.
    """
    view = memoryview(buf)
    n = len(view)
    if n == 0:
        raise RtcpDecodeError("RTCP packet truncated: 0 bytes, header needs 4")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        left = n - pos
        if left < 4:
            raise RtcpDecodeError(
                f"RTCP packet truncated at offset {pos}: {left} bytes, header needs 4"
            )
        b0, pt, words = _HEADER.unpack_from(view, pos)
        if b0 >> 6 != 2:
            raise RtcpDecodeError(f"RTCP version {b0 >> 6} is not 2 at offset {pos}")
        size = 4 * (words + 1)
        if size > left:
            raise RtcpDecodeError(
                f"RTCP length {words} words ({size} bytes) exceeds {left} bytes left "
                f"at offset {pos}"
            )
        end = pos + size
        body_end = end
        if b0 & 0x20:
            padding = view[end - 1]
            if padding == 0:
                raise RtcpDecodeError(f"RTCP padding count 0 is invalid at offset {pos}")
            if padding > size - 4:
                raise RtcpDecodeError(
                    f"RTCP padding count {padding} exceeds {size - 4} body bytes at offset {pos}"
                )
            body_end -= padding
        raw = bytes(view[pos:end])
        decoder = DECODERS.get(pt)
        if decoder is None:
            packets.append(RawRtcpPacket(raw))
        else:
            packets.append(decoder(b0 & 0x1F, view[pos + 4 : body_end], raw))
        pos = end
    return packets


def build_rtcp_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate the serialized packets into one compound datagram."""
    return b"".join(packet.build() for packet in packets)
