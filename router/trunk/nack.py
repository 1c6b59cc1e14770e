"""Hop-by-hop NACK on trunk legs, sans-IO: every router that receives a trunk flow asks the
router it got the flow from (the previous hop, not the flow's source) for a packet the moment a
gap shows, instead of waiting for its subscribers to notice.

The previous hop serves the request from its per-trunk packet cache
(:mod:`router.trunk.cache`): the exact bytes it sent on that leg, so a loss on one leg is
repaired on that leg, one leg RTT after the gap, whatever happens before or after it. That holds
for a relay too: it reads the clear RTP header of the SRTP packet inside an envelope (it cannot
decrypt), detects gaps on the leg from the source, NACKs the source, and keeps what it forwards
for the destination's NACKs. Audio and video are repaired alike: both ends are our routers.

A hop NACK is an RTCP APP packet (name ``RGNK``) on the leg's own SRTCP, so it is authenticated
by the leg's key and never reaches a client::

    V=2 subtype=0 | PT=204 | length
    sender SSRC (0)
    "RGNK"
    media SSRC (the flow's SSRC, as the destination subscribed it)
    len(origin) | origin | len(destination) | destination | zero padding to 4 bytes
    (PID, BLP) items as in a generic NACK (RFC 4585 6.2.1)

``origin``/``destination`` name the flow (SSRCs are chosen per destination, so a relay needs
both to find the packet).
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from router.rtp import NackItem, expand_nack, nack_items_from_seqs

MAX_GAP: Final = 64
"""A larger jump is a restart or a long outage: no NACK storm, start again from there."""
NAME: Final = b"RGNK"
_HEAD: Final = struct.Struct("!BBHI4sI")
_ITEM: Final = struct.Struct("!HH")
MAX_NODE_ID: Final = 64
TRIES: Final = 3
"""NACKs per missing packet at most (the first and two retries)."""
MAX_AGE: Final = 1.0
"""Seconds after which a missing packet is no longer asked for (too late to play)."""
MAX_PENDING: Final = 256
"""Missing packets remembered per stream at most."""
Stream = TypeVar("Stream", bound=Hashable)


class HopNackError(ValueError):
    """Not a well-formed hop NACK."""


@dataclass(frozen=True, slots=True)
class HopNack:
    origin: str
    destination: str
    ssrc: int
    seqs: tuple[int, ...]

    def build(self) -> bytes:
        names = b""
        for node in (self.origin, self.destination):
            raw = node.encode("ascii")
            if not 0 < len(raw) <= MAX_NODE_ID:
                raise HopNackError(f"node id of {len(raw)} bytes")
            names += bytes((len(raw),)) + raw
        names += b"\x00" * (-len(names) % 4)
        items = b"".join(_ITEM.pack(i.pid, i.blp) for i in nack_items_from_seqs(self.seqs))
        size = _HEAD.size + len(names) + len(items)
        return _HEAD.pack(0x80, 204, size // 4 - 1, 0, NAME, self.ssrc) + names + items


def is_hop_nack(packet: bytes) -> bool:
    """Cheap test on plain RTCP: an APP packet named ``RGNK``."""
    return len(packet) >= _HEAD.size and packet[1] == 204 and packet[8:12] == NAME


def parse_hop_nack(packet: bytes) -> HopNack:
    """Raises :class:`HopNackError` for anything but one well-formed hop NACK."""
    n = len(packet)
    if n < _HEAD.size + 4 or n % 4 or not is_hop_nack(packet):
        raise HopNackError("not a hop NACK")
    b0, _, length, _, _, ssrc = _HEAD.unpack_from(packet)
    if b0 != 0x80 or (length + 1) * 4 != n:
        raise HopNackError("bad header or length")
    at = _HEAD.size
    names: list[str] = []
    for _ in range(2):
        size = packet[at] if at < n else 0
        if not 0 < size <= MAX_NODE_ID or at + 1 + size > n:
            raise HopNackError("bad node id length")
        try:
            names.append(packet[at + 1:at + 1 + size].decode("ascii"))
        except UnicodeDecodeError:
            raise HopNackError("node ids are not ASCII") from None
        at += 1 + size
    at += -at % 4
    if at >= n:
        raise HopNackError("no sequence numbers")
    items = [NackItem(*_ITEM.unpack_from(packet, i)) for i in range(at, n, 4)]
    seqs = tuple(dict.fromkeys(expand_nack(items)))
    return HopNack(names[0], names[1], ssrc, seqs)


class GapDetector(Generic[Stream]):
    """Gaps per stream (any hashable key: an SSRC, or a relay's ``(origin, destination,
    SSRC)``): :meth:`missing` reports the numbers skipped by each new packet, and again those
    still missing once ``retry_after`` has passed (a repair can be lost on a lossy leg too),
    up to :data:`TRIES` NACKs each and never for more than :data:`MAX_AGE` seconds. Retries are
    driven by the stream's own packets (tens a second), so no timer is needed."""

    __slots__ = ("_highest", "_pending", "given_up")

    def __init__(self) -> None:
        self._highest: dict[Stream, int] = {}
        self._pending: dict[Stream, dict[int, list[float]]] = {}
        """stream -> seq -> [next NACK due, NACKs so far, first NACK]"""
        self.given_up = 0

    def missing(self, stream: Stream, seq: int, now: float = 0.0,
                retry_after: float = 0.05) -> list[int]:
        out: list[int] = []
        pending = self._pending.get(stream)
        if pending:
            pending.pop(seq, None)
            for number, entry in list(pending.items()):
                if entry[0] > now:
                    continue
                if entry[1] >= TRIES or now - entry[2] > MAX_AGE:
                    del pending[number]
                    self.given_up += 1
                else:
                    entry[0] = now + retry_after
                    entry[1] += 1
                    out.append(number)
        highest = self._highest.get(stream)
        if highest is None:
            self._highest[stream] = seq
            return out
        delta = (seq - highest) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            return out  # a duplicate, a retransmission or reordering: nothing new is missing
        self._highest[stream] = seq
        if delta == 1 or delta > MAX_GAP:
            return out
        lost = [(highest + i) & 0xFFFF for i in range(1, delta)]
        if pending is None:
            pending = self._pending[stream] = {}
        while len(pending) + len(lost) > MAX_PENDING:
            del pending[next(iter(pending))]  # the oldest: heavy loss, no unbounded state
            self.given_up += 1
        for number in lost:
            pending[number] = [now + retry_after, 1.0, now]
        return out + lost

    def forget(self, stream: Stream) -> None:
        self._highest.pop(stream, None)
        self._pending.pop(stream, None)

    def streams(self) -> list[Stream]:
        return list(self._highest)


__all__ = ["MAX_GAP", "GapDetector", "HopNack", "HopNackError", "is_hop_nack",
           "parse_hop_nack"]
