"""The per-trunk packet cache, sans-IO: what this router last sent on one trunk leg, by flow and
sequence number, so the next hop's NACK (:mod:`router.trunk.nack`) is served with the exact
bytes that leg lost.

Every leg has one, on every router a flow crosses: the source keeps what it sent to the first
hop (plain trunk SRTP, or the relay envelope), a relay keeps the envelopes it passed on. Cached
bytes are already protected, so a repair costs no crypto, and the receiver's SRTP replay window
accepts the copy exactly when the original never arrived (a second copy is dropped as a
replay). Keys rotate with an overlap of seconds while a cache holds well under one.

A flow is ``(origin, destination, SSRC)``; per flow a ring of :data:`SLOTS` entries indexed by
the low bits of the sequence number (at video rates a second or more, longer than any repair is
worth). A flow nothing was sent on since the previous :meth:`HopCache.expire` is dropped, so a
relay that never hears when a flow ends still forgets it.
"""

from __future__ import annotations

from typing import Final

SLOTS: Final = 512
"""Packets kept per flow (a power of two)."""
_MASK: Final = SLOTS - 1

Flow = tuple[str, str, int]
"""``(origin, destination, SSRC)``."""


class _Ring:
    __slots__ = ("entries", "used")

    def __init__(self) -> None:
        self.entries: list[tuple[int, bytes] | None] = [None] * SLOTS
        self.used = True


class HopCache:
    """Protected packets sent on one trunk leg (see the module docstring)."""

    __slots__ = ("_flows",)

    def __init__(self) -> None:
        self._flows: dict[Flow, _Ring] = {}

    def put(self, origin: str, destination: str, wires: list[bytes], offset: int) -> None:
        """Keep ``wires`` (as sent) of the flow ``origin -> destination``; the SRTP header of
        each starts ``offset`` bytes in (0 for plain trunk SRTP, the envelope's header size
        for an envelope). Packets too short to hold an RTP header are not kept."""
        flows = self._flows
        ring: _Ring | None = None
        ring_ssrc = -1
        need = offset + 12
        for wire in wires:
            if len(wire) < need:
                continue
            ssrc = int.from_bytes(wire[offset + 8:offset + 12], "big")
            if ssrc != ring_ssrc:
                key = (origin, destination, ssrc)
                ring = flows.get(key)
                if ring is None:
                    ring = flows[key] = _Ring()
                ring.used = True
                ring_ssrc = ssrc
            assert ring is not None
            seq = wire[offset + 2] << 8 | wire[offset + 3]
            ring.entries[seq & _MASK] = (seq, wire)

    def get(self, origin: str, destination: str, ssrc: int, seq: int) -> bytes | None:
        ring = self._flows.get((origin, destination, ssrc))
        if ring is None:
            return None
        entry = ring.entries[seq & _MASK]
        return entry[1] if entry is not None and entry[0] == seq else None

    def has_flow(self, flow: Flow) -> bool:
        return flow in self._flows

    def expire(self) -> int:
        """Drop flows unused since the previous call; returns how many were dropped."""
        stale = [key for key, ring in self._flows.items() if not ring.used]
        for key in stale:
            del self._flows[key]
        for ring in self._flows.values():
            ring.used = False
        return len(stale)

    def __len__(self) -> int:
        return len(self._flows)


__all__ = ["SLOTS", "Flow", "HopCache"]
