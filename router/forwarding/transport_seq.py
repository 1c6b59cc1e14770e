"""Reading a publisher's transport-wide sequence number on the per-packet path.

A dedicated scanner rather than :func:`router.rtp.find_rtp_extension`: it runs once per packet
of every publisher that negotiated transport-cc, returns -1 instead of raising (a malformed
block just means "no number": the forwarding path has its own checks), and stops at the first
match. Chromium writes the transport sequence number among the first elements, so the loop
usually runs once or twice. ``router/forwarding/_fanout.c`` has its compiled twin (used unless
``REGIO_FASTPATH=off``; tests/forwarding/test_fanout.py checks both give the same answer on any
bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from router.transport import fastpath

__all__ = ["py_read_transport_seq", "read_transport_seq"]

_ONE_BYTE: Final = 0xBEDE


def py_read_transport_seq(packet: bytes | bytearray | memoryview, ext_id: int) -> int:
    """The 16-bit transport-wide sequence number under ``ext_id``, or -1 if absent/malformed."""
    if not packet:
        return -1
    b0 = packet[0]
    if not b0 & 0x10:
        return -1
    start = 12 + ((b0 & 0x0F) << 2)
    n = len(packet)
    if n < start + 4:
        return -1
    profile = (packet[start] << 8) | packet[start + 1]
    end = start + 4 + (((packet[start + 2] << 8) | packet[start + 3]) << 2)
    if end > n:
        return -1
    pos = start + 4
    if profile == _ONE_BYTE:
        while pos < end:
            b = packet[pos]
            eid = b >> 4
            if eid == 0:
                pos += 1
                continue
            if eid == 15:
                return -1
            size = (b & 0x0F) + 1
            if eid == ext_id:
                if size != 2 or pos + 3 > end:
                    return -1
                return (packet[pos + 1] << 8) | packet[pos + 2]
            pos += 1 + size
        return -1
    if profile & 0xFFF0 != 0x1000:
        return -1
    while pos + 1 < end:
        eid = packet[pos]
        if eid == 0:
            pos += 1
            continue
        size = packet[pos + 1]
        if eid == ext_id:
            if size != 2 or pos + 4 > end:
                return -1
            return (packet[pos + 2] << 8) | packet[pos + 3]
        pos += 2 + size
    return -1


read_transport_seq: Callable[[bytes | bytearray | memoryview, int], int] = (
    fastpath.read_transport_seq() or py_read_transport_seq
)
""":func:`py_read_transport_seq`, compiled when the fast path is on."""
