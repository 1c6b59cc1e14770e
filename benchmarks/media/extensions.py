"""The RTP header extensions Chromium puts on every packet, and a per-stream header template.

Chromium negotiates ``ssrc-audio-level`` (audio), ``abs-send-time``, ``transport-wide-cc`` and
``sdes:mid`` on every m-line, plus ``rtp-stream-id`` on simulcast video; the ids below are the
ones its offers use. The header of a stream only changes in a few fields from packet to
packet, so :class:`HeaderTemplate` builds it once with the project's RTP codec
(:class:`~router.rtp.RtpPacket`, one-byte RFC 8285 form) and patches sequence number,
timestamp, marker and the time-varying extension values in place: the load generator then
costs one ``bytearray`` copy per packet instead of a full encode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from router.rtp import HeaderExtension, RtpPacket, find_rtp_extension, make_extension_block
from router.sdp.capabilities import ABS_SEND_TIME, RTP_STREAM_ID, SDES_MID, TRANSPORT_WIDE_CC

AUDIO_LEVEL: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_SEQ_TS: Final = struct.Struct("!HI")
_U16: Final = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class ExtensionIds:
    """Negotiated one-byte extension ids (1..14); ``None`` leaves the extension off."""

    mid: int | None = 4
    abs_send_time: int | None = 2
    transport_cc: int | None = 3
    rid: int | None = None
    audio_level: int | None = None

    def extmaps(self) -> list[str]:
        """SDP ``a=extmap`` values for an offer that negotiates these ids."""
        pairs = ((self.audio_level, AUDIO_LEVEL), (self.abs_send_time, ABS_SEND_TIME),
                 (self.transport_cc, TRANSPORT_WIDE_CC), (self.mid, SDES_MID),
                 (self.rid, RTP_STREAM_ID))
        return [f"{ext_id} {uri}" for ext_id, uri in pairs if ext_id is not None]


#: Chromium's ids on an audio m-line.
CHROMIUM_AUDIO: Final = ExtensionIds(audio_level=1)
#: Chromium's ids on a video m-line (``rid`` only matters with simulcast).
CHROMIUM_VIDEO: Final = ExtensionIds(rid=10)


def abs_send_time(now: float) -> int:
    """abs-send-time of ``now`` (seconds): 6.18 fixed point, wrapping every 64 s."""
    return int(now * (1 << 18)) & 0xFFFFFF


class HeaderTemplate:
    """An RTP header with extensions for one stream, patched per packet."""

    def __init__(self, *, ssrc: int, payload_type: int, ids: ExtensionIds,
                 mid: str | None = None, rid: str | None = None) -> None:
        elements = []
        if ids.audio_level is not None:
            elements.append(HeaderExtension(ids.audio_level, b"\x00"))
        if ids.abs_send_time is not None:
            elements.append(HeaderExtension(ids.abs_send_time, b"\x00\x00\x00"))
        if ids.transport_cc is not None:
            elements.append(HeaderExtension(ids.transport_cc, b"\x00\x00"))
        if ids.mid is not None and mid:
            elements.append(HeaderExtension(ids.mid, mid.encode()))
        if ids.rid is not None and rid:
            elements.append(HeaderExtension(ids.rid, rid.encode()))
        packet = RtpPacket(payload_type=payload_type, sequence_number=0, timestamp=0, ssrc=ssrc,
                           extension=make_extension_block(elements) if elements else None)
        self.header = packet.build()
        self.payload_type = payload_type

        def offset(ext_id: int | None) -> int:
            found = find_rtp_extension(self.header, ext_id) if ext_id is not None else None
            return found[0] if found else -1

        self._level_at = offset(ids.audio_level)
        self._abs_at = offset(ids.abs_send_time)
        self._twcc_at = offset(ids.transport_cc)

    @property
    def has_transport_cc(self) -> bool:
        return self._twcc_at >= 0

    def set_transport_seq(self, packet: bytearray, value: int) -> None:
        """Number a rendered packet on its transport (no-op without the extension)."""
        if self._twcc_at >= 0:
            _U16.pack_into(packet, self._twcc_at, value & 0xFFFF)

    def render(self, payload: bytes | bytearray, *, seq: int, timestamp: int, marker: bool,
               now: float, transport_seq: int = 0, audio_level: int = 127,
               voice: bool = False) -> bytearray:
        """One packet: the template's header with these values, then ``payload``."""
        out = bytearray(self.header)
        out += payload
        out[1] = self.payload_type | (0x80 if marker else 0)
        _SEQ_TS.pack_into(out, 2, seq & 0xFFFF, timestamp & 0xFFFFFFFF)
        if self._abs_at >= 0:
            out[self._abs_at:self._abs_at + 3] = abs_send_time(now).to_bytes(3, "big")
        if self._twcc_at >= 0:
            _U16.pack_into(out, self._twcc_at, transport_seq & 0xFFFF)
        if self._level_at >= 0:
            out[self._level_at] = (0x80 if voice else 0) | (audio_level & 0x7F)
        return out


__all__ = ["AUDIO_LEVEL", "CHROMIUM_AUDIO", "CHROMIUM_VIDEO", "ExtensionIds", "HeaderTemplate",
           "abs_send_time"]
