"""Hop-by-hop NACK on trunk legs, sans-IO: the receiving router asks the sending router for a
packet the moment a gap shows on the trunk, instead of waiting for its subscribers to notice.

The sending router serves the request from the forwarder's packet cache of the track (the same
cache that serves clients), so a loss on one trunk leg is repaired on that leg, one trunk RTT
after the gap, whatever happens downstream.
"""

from __future__ import annotations

from typing import Final

MAX_GAP: Final = 64
"""A larger jump is a restart or a long outage: no NACK storm, start again from there."""


class GapDetector:
    """Highest sequence number per SSRC; reports the numbers skipped by each new packet."""

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: dict[int, int] = {}

    def missing(self, ssrc: int, seq: int) -> list[int]:
        highest = self._highest.get(ssrc)
        if highest is None:
            self._highest[ssrc] = seq
            return []
        delta = (seq - highest) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            return []  # a duplicate, a retransmission or reordering: nothing new is missing
        self._highest[ssrc] = seq
        if delta == 1 or delta > MAX_GAP:
            return []
        return [(highest + i) & 0xFFFF for i in range(1, delta)]

    def forget(self, ssrc: int) -> None:
        self._highest.pop(ssrc, None)


__all__ = ["MAX_GAP", "GapDetector"]
