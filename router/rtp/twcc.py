"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
§3.1, RTPFB FMT 15).

Wire layout after the feedback SSRCs::

    base sequence number (16) | packet status count (16)
    reference time (24, signed, x64 ms) | feedback packet count (8)
    packet chunks (16 bits each) ... | receive deltas ... | zero padding

A chunk is either a run (``0 | symbol (2) | run length (13)``) or a status vector
(``1 | S | 14 x 1-bit`` or ``7 x 2-bit`` symbols). Symbols: 0 not received, 1 received with a
small delta (1 byte, unsigned), 2 received with a large or negative delta (2 bytes, signed),
3 "received, without timestamp" (no delta bytes; §3.1.1 lists 3 as reserved, but the draft's own
examples use it this way and pion, webrtc-rs and ex_rtcp accept it, so we do too). Deltas are in
250 µs ticks.

The model is what a bandwidth estimator wants, not the chunking: one status byte per packet
(``statuses``) and one delta per received packet (``deltas``). Chunking is recomputed on build,
so round trips are equal by value while the chunk choice may differ from the sender's.
The status count is bounded by 16 bits, so the largest allocation a hostile packet can cause
is a 64 KiB ``bytes``.

The chunk and delta loops (:func:`py_decode_fci`, :func:`py_encode_fci`) have compiled twins in
``router/rtp/_twcc.c``, used unless ``REGIO_FASTPATH=off``: a router decodes every feedback its
subscribers send and builds one for each publisher every 50 ms. The twins hand anything the
reference would refuse back to it, so every error is the reference's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from router.compiled_switch import switched_off
from router.rtp.errors import RtcpDecodeError, RtcpEncodeError
from router.rtp.rtcp_common import PT_RTPFB, RtcpPacket, check_u8, check_u16, check_u32, rtcp_header

__all__ = [
    "DELTA_TICK_US",
    "REFERENCE_TIME_TICK_MS",
    "STATUS_LARGE_DELTA",
    "STATUS_NOT_RECEIVED",
    "STATUS_RECEIVED_NO_DELTA",
    "STATUS_SMALL_DELTA",
    "TransportCc",
    "compiled_twcc",
    "py_decode_fci",
    "py_encode_fci",
    "statuses_for",
]

Buffer = bytes | bytearray | memoryview

STATUS_NOT_RECEIVED: Final = 0
STATUS_SMALL_DELTA: Final = 1
STATUS_LARGE_DELTA: Final = 2
STATUS_RECEIVED_NO_DELTA: Final = 3
DELTA_TICK_US: Final = 250
"""Receive delta unit in microseconds."""
REFERENCE_TIME_TICK_MS: Final = 64
"""Reference time unit in milliseconds."""

_FMT: Final = 15
_HEAD: Final = struct.Struct("!IIHHI")
_U16: Final = struct.Struct("!H")
_I16: Final = struct.Struct("!h")
_MAX_RUN: Final = 0x1FFF

_compiled: ModuleType | None
try:
    import router.rtp._twcc as _built

    _compiled = None if switched_off() else _built
except ImportError:  # pragma: no cover - depends on the machine's build
    _compiled = None


def compiled_twcc() -> ModuleType | None:
    """``router.rtp._twcc`` (decode_fci, encode_fci, arrival_deltas) when it is built and the
    fast path is on, else None."""
    return _compiled


def _decode_chunks(body: Buffer, count: int) -> tuple[bytes, int]:
    """Statuses for ``count`` packets and the offset where receive deltas start."""
    statuses = bytearray()
    pos = 16
    end = len(body)
    while len(statuses) < count:
        if pos + 2 > end:
            raise RtcpDecodeError(
                f"RTCP TWCC packet chunks truncated: {len(statuses)} of {count} statuses "
                f"decoded, body has {end} bytes"
            )
        chunk = (body[pos] << 8) | body[pos + 1]
        left = count - len(statuses)
        if not chunk & 0x8000:
            statuses += bytes((chunk >> 13,)) * min(chunk & _MAX_RUN, left)
        elif not chunk & 0x4000:
            for shift in range(13, 13 - min(14, left), -1):
                statuses.append((chunk >> shift) & 1)
        else:
            for shift in range(12, 12 - 2 * min(7, left), -2):
                statuses.append((chunk >> shift) & 3)
        pos += 2
    return bytes(statuses), pos


def py_decode_fci(body: Buffer, count: int) -> tuple[bytes, tuple[int, ...]]:
    """Statuses and receive deltas of a feedback body (its fixed part is the first 16 bytes);
    RtcpDecodeError if they are truncated or followed by more than 3 bytes of padding."""
    end = len(body)
    statuses, pos = _decode_chunks(body, count)
    need = pos + statuses.count(STATUS_SMALL_DELTA) + 2 * statuses.count(STATUS_LARGE_DELTA)
    if need > end:
        raise RtcpDecodeError(
            f"RTCP TWCC receive deltas truncated: need {need} body bytes, body has {end}"
        )
    deltas = []
    for status in statuses:
        if status == STATUS_SMALL_DELTA:
            deltas.append(body[pos])
            pos += 1
        elif status == STATUS_LARGE_DELTA:
            deltas.append(_I16.unpack_from(body, pos)[0])
            pos += 2
    if end - pos > 3:
        raise RtcpDecodeError(
            f"RTCP TWCC has {end - pos} bytes after receive deltas, at most 3 padding allowed"
        )
    return statuses, tuple(deltas)


def py_encode_fci(statuses: bytes, deltas: Sequence[int]) -> bytes:
    """Packet chunks, receive deltas and zero padding to follow the 16-byte fixed part;
    RtcpEncodeError for a status over 3, deltas not matching the statuses, or a delta that does
    not fit its symbol."""
    for status in statuses:
        if status > STATUS_RECEIVED_NO_DELTA:
            raise RtcpEncodeError(f"RTCP TWCC status {status} is not 0, 1, 2 or 3")
    with_delta = statuses.count(1) + statuses.count(2)
    if with_delta != len(deltas):
        raise RtcpEncodeError(
            f"RTCP TWCC has {with_delta} statuses with a delta but {len(deltas)} deltas"
        )
    out = bytearray(_encode_chunks(statuses))
    it = iter(deltas)
    for status in statuses:
        if status == STATUS_SMALL_DELTA:
            delta = next(it)
            if not 0 <= delta <= 255:
                raise RtcpEncodeError(f"RTCP TWCC small delta {delta} out of range 0..255")
            out.append(delta)
        elif status == STATUS_LARGE_DELTA:
            delta = next(it)
            if not -0x8000 <= delta <= 0x7FFF:
                raise RtcpEncodeError(f"RTCP TWCC large delta {delta} out of range -32768..32767")
            out += _I16.pack(delta)
    out += bytes(-len(out) % 4)
    return bytes(out)


def statuses_for(deltas: Sequence[int | None]) -> tuple[bytes, tuple[int, ...]]:
    """Statuses and received deltas for one entry per packet (None if lost, else its delta in
    250 µs ticks): the small symbol for 0..255, the large one otherwise."""
    statuses = bytearray()
    received = []
    for delta in deltas:
        if delta is None:
            statuses.append(STATUS_NOT_RECEIVED)
        else:
            statuses.append(STATUS_SMALL_DELTA if 0 <= delta <= 255 else STATUS_LARGE_DELTA)
            received.append(delta)
    return bytes(statuses), tuple(received)


def _run_length(statuses: bytes, i: int) -> int:
    first = statuses[i]
    j = i + 1
    end = min(len(statuses), i + _MAX_RUN)
    while j < end and statuses[j] == first:
        j += 1
    return j - i


def _encode_chunks(statuses: bytes) -> bytes:
    """Greedy chunking: long runs as run chunks, mixed stretches as status vectors."""
    out = bytearray()
    n = len(statuses)
    i = 0
    while i < n:
        run = _run_length(statuses, i)
        if run >= 14 or i + run == n:
            out += _U16.pack((statuses[i] << 13) | run)
            i += run
            continue
        window = statuses[i : i + 14]
        if max(window) <= 1:
            chunk = 0x8000
            for k, symbol in enumerate(window):
                chunk |= symbol << (13 - k)
            out += _U16.pack(chunk)
            i += len(window)
        elif run >= 7:
            out += _U16.pack((statuses[i] << 13) | run)
            i += run
        else:
            window = statuses[i : i + 7]
            chunk = 0xC000
            for k, symbol in enumerate(window):
                chunk |= symbol << (12 - 2 * k)
            out += _U16.pack(chunk)
            i += len(window)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class TransportCc(RtcpPacket):
    """Transport-wide CC feedback.

    ``statuses[i]`` is the status of packet ``base_seq + i`` (0 not received, 1 small delta,
    2 large delta, 3 received without delta); ``deltas`` holds one receive delta per packet of
    status 1 or 2, in 250 µs ticks
    (the first relative to ``reference_time`` x 64 ms, each next relative to the previous).
    """

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int
    fb_pkt_count: int
    statuses: bytes = b""
    deltas: tuple[int, ...] = ()

    @classmethod
    def from_deltas(
        cls,
        sender_ssrc: int,
        media_ssrc: int,
        base_seq: int,
        reference_time: int,
        fb_pkt_count: int,
        deltas: Sequence[int | None],
    ) -> TransportCc:
        """Build from one entry per packet: None if lost, else its delta in 250 µs ticks.

        Picks the small symbol for deltas 0..255 and the large one otherwise.
        """
        statuses, received = statuses_for(deltas)
        return cls(sender_ssrc, media_ssrc, base_seq, reference_time, fb_pkt_count, statuses,
                   received)

    def packet_results(self) -> list[tuple[int, int, int | None]]:
        """``(sequence number, status, delta or None)`` per reported packet (seq wrapped)."""
        out: list[tuple[int, int, int | None]] = []
        it = iter(self.deltas)
        base = self.base_seq
        for i, status in enumerate(self.statuses):
            delta = next(it) if status in (1, 2) else None
            out.append(((base + i) & 0xFFFF, status, delta))
        return out

    def build(self) -> bytes:
        """Serialize with the common header and zero padding to 32 bits."""
        check_u32("TWCC sender SSRC", self.sender_ssrc)
        check_u32("TWCC media SSRC", self.media_ssrc)
        check_u16("TWCC base sequence number", self.base_seq)
        check_u16("TWCC packet status count", len(self.statuses))
        check_u8("TWCC feedback packet count", self.fb_pkt_count)
        if not -0x800000 <= self.reference_time <= 0x7FFFFF:
            raise RtcpEncodeError(
                f"RTCP TWCC reference time {self.reference_time} out of range -8388608..8388607"
            )
        tail = None if _compiled is None else _compiled.encode_fci(self.statuses, self.deltas)
        if tail is None:
            tail = py_encode_fci(self.statuses, self.deltas)
        out = _HEAD.pack(
            self.sender_ssrc,
            self.media_ssrc,
            self.base_seq,
            len(self.statuses),
            ((self.reference_time & 0xFFFFFF) << 8) | self.fb_pkt_count,
        ) + tail
        return rtcp_header(_FMT, PT_RTPFB, len(out)) + out

    @classmethod
    def decode(cls, count: int, body: Buffer, raw: bytes) -> TransportCc:
        """Decode chunks into statuses, then read one delta per received packet."""
        end = len(body)
        if end < 16:
            raise RtcpDecodeError(f"RTCP TWCC truncated: body has {end} bytes, needs 16")
        sender, media, base_seq, status_count, ref = _HEAD.unpack_from(body, 0)
        reference_time = ref >> 8
        if reference_time & 0x800000:
            reference_time -= 0x1000000
        fast = None if _compiled is None else _compiled.decode_fci(body, status_count)
        statuses, deltas = py_decode_fci(body, status_count) if fast is None else fast
        return cls(sender, media, base_seq, reference_time, ref & 0xFF, statuses, deltas)
