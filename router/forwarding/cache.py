"""Per-stream packet cache for NACK: a ring buffer keyed by extended sequence number.

The forwarder stores every incoming video packet as received (immutable ``bytes``, so storing is
two list writes and no copy) and rewrites on the way out, so one cache serves every subscriber
whatever their SSRC, sequence offset or payload-type mapping. Slots are checked against the
stored extended sequence number, so a stale packet one lap of the ring behind is never served.
"""

from __future__ import annotations

__all__ = ["PacketCache"]


class PacketCache:
    """Fixed-size ring of the last ``size`` packets of one stream.

    The attributes are public so the forwarding loop can store without a method call.
    """

    __slots__ = ("exts", "mask", "packets")

    def __init__(self, size: int) -> None:
        if size < 1 or size & (size - 1):
            raise ValueError(f"packet cache size {size} is not a positive power of two")
        self.mask = size - 1
        self.packets: list[bytes | None] = [None] * size
        self.exts: list[int] = [-1] * size

    def put(self, ext_seq: int, packet: bytes) -> None:
        """Store ``packet`` under its extended sequence number, evicting the slot's occupant."""
        slot = ext_seq & self.mask
        self.packets[slot] = packet
        self.exts[slot] = ext_seq

    def get(self, ext_seq: int) -> bytes | None:
        """The packet with extended sequence number ``ext_seq``, or None if evicted/missing."""
        slot = ext_seq & self.mask
        if self.exts[slot] != ext_seq:
            return None
        return self.packets[slot]

    def clear(self) -> None:
        """Forget everything (the stream restarted: old numbers mean nothing now)."""
        size = self.mask + 1
        self.packets = [None] * size
        self.exts = [-1] * size

    def __len__(self) -> int:
        return sum(1 for p in self.packets if p is not None)
