"""RTCP sender and receiver reports (RFC 3550 §6.4) and their report blocks.

Report counts come from a 5-bit header field the peer controls, so each decoder checks
``count * 24`` bytes against the body before reading a single block. Bytes after the last
block are the profile-specific extension and are kept verbatim.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from router.rtp.errors import RtcpDecodeError, RtcpEncodeError
from router.rtp.rtcp_common import PT_RR, PT_SR, RtcpPacket, check_u8, check_u32, rtcp_header

__all__ = ["ReceiverReport", "ReportBlock", "SenderReport"]

Buffer = bytes | bytearray | memoryview

_BLOCK: Final = struct.Struct("!IIIIII")
_SR_INFO: Final = struct.Struct("!IQIII")
_BLOCK_SIZE: Final = 24


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source.

    ``cumulative_lost`` is signed 24-bit (duplicates can make it negative, RFC 3550 §6.4.1);
    ``highest_seq`` is the extended highest sequence number (cycles << 16 | seq).
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_seq: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def encode(self) -> bytes:
        """The 24-byte wire form."""
        check_u32("report block SSRC", self.ssrc)
        check_u8("fraction lost", self.fraction_lost)
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtcpEncodeError(
                f"RTCP cumulative lost {self.cumulative_lost} out of range -8388608..8388607"
            )
        check_u32("extended highest sequence number", self.highest_seq)
        check_u32("jitter", self.jitter)
        check_u32("LSR", self.lsr)
        check_u32("DLSR", self.dlsr)
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_seq, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def decode(cls, buf: Buffer, offset: int) -> ReportBlock:
        """Decode the block at ``offset``; the caller has checked 24 bytes are there."""
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(buf, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _decode_blocks(name: str, count: int, body: Buffer, start: int) -> tuple[ReportBlock, ...]:
    need = start + count * _BLOCK_SIZE
    if len(body) < need:
        raise RtcpDecodeError(
            f"RTCP {name} truncated: report count {count} needs {need} body bytes, "
            f"body has {len(body)}"
        )
    return tuple(ReportBlock.decode(body, start + i * _BLOCK_SIZE) for i in range(count))


def _encode_blocks(name: str, reports: tuple[ReportBlock, ...], extension: bytes) -> bytes:
    if len(reports) > 31:
        raise RtcpEncodeError(f"RTCP {name} has {len(reports)} report blocks, max 31")
    if len(extension) % 4:
        raise RtcpEncodeError(
            f"RTCP {name} profile extension of {len(extension)} bytes is not a multiple of 4"
        )
    return b"".join(block.encode() for block in reports) + extension


@dataclass(frozen=True, slots=True)
class SenderReport(RtcpPacket):
    """SR: sender info (NTP/RTP timestamps, counts) plus up to 31 report blocks.

    ``ntp_timestamp`` is the full 64-bit NTP value (seconds << 32 | fraction).
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""

    def build(self) -> bytes:
        """Serialize with the common header."""
        check_u32("SR SSRC", self.ssrc)
        if not 0 <= self.ntp_timestamp <= 0xFFFFFFFFFFFFFFFF:
            raise RtcpEncodeError(
                f"RTCP NTP timestamp {self.ntp_timestamp} out of range 0..2**64-1"
            )
        check_u32("SR RTP timestamp", self.rtp_timestamp)
        check_u32("SR packet count", self.packet_count)
        check_u32("SR octet count", self.octet_count)
        body = _SR_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        ) + _encode_blocks("SR", self.reports, self.profile_extension)
        return rtcp_header(len(self.reports), PT_SR, len(body)) + body

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> SenderReport:
        """Decode an SR body; ``count`` is the RC header field."""
        if len(body) < 24:
            raise RtcpDecodeError(f"RTCP SR truncated: body has {len(body)} bytes, needs 24")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body, 0)
        reports = _decode_blocks("SR", count, body, 24)
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, bytes(body[24 + 24 * count :]))


@dataclass(frozen=True, slots=True)
class ReceiverReport(RtcpPacket):
    """RR: the reporter's SSRC plus up to 31 report blocks."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""

    def build(self) -> bytes:
        """Serialize with the common header."""
        check_u32("RR SSRC", self.ssrc)
        body = self.ssrc.to_bytes(4, "big") + _encode_blocks(
            "RR", self.reports, self.profile_extension
        )
        return rtcp_header(len(self.reports), PT_RR, len(body)) + body

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> ReceiverReport:
        """Decode an RR body; ``count`` is the RC header field."""
        if len(body) < 4:
            raise RtcpDecodeError(f"RTCP RR truncated: body has {len(body)} bytes, needs 4")
        ssrc = int.from_bytes(body[0:4], "big")
        reports = _decode_blocks("RR", count, body, 4)
        return cls(ssrc, reports, bytes(body[4 + 24 * count :]))
