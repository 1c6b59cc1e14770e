"""What the router reads and rewrites in a VP8 payload (RFC 7741 §4.2, RFC 6386 §9.1).

Simulcast layers are separate encoders: each has its own picture id and TL0PICIDX sequence.
When a subscriber moves from one layer to another, the decoder must keep seeing one
continuous sequence, or libwebrtc's reference finder waits for frames that never come. So the
router reads, once per incoming packet of a simulcast track, where these fields are, and writes
the subscriber's continued values into each copy.

A layer switch must land on a keyframe: :func:`vp8_info` also tells whether the packet starts
one (start of partition 0 and the frame tag's P bit clear) and, if so, its width and height
from the frame header (the router learns each layer's size from its keyframes).
"""

from __future__ import annotations

from typing import Final

__all__ = ["Vp8Info", "rewrite_vp8", "vp8_info"]

_START_CODE: Final = b"\x9d\x01\x2a"


class Vp8Info:
    """Positions (relative to the payload start) and values of the fields the router uses."""

    __slots__ = ("height", "keyframe", "pid", "pid_long", "pid_offset", "tl0", "tl0_offset")

    def __init__(self) -> None:
        self.keyframe = False
        """The packet starts a keyframe."""
        self.height = 0
        """Frame height from a keyframe's header (0 if not a keyframe start)."""
        self.pid = -1
        self.pid_offset = -1
        self.pid_long = True
        self.tl0 = -1
        self.tl0_offset = -1


def vp8_info(payload: bytes | memoryview, start: int, end: int) -> Vp8Info | None:
    """Parse the descriptor at ``payload[start:end]``; None if it is truncated."""
    if end - start < 1:
        return None
    info = Vp8Info()
    b = payload[start]
    pos = start + 1
    begins = bool(b & 0x10) and (b & 0x07) == 0
    if b & 0x80:
        if pos >= end:
            return None
        x = payload[pos]
        pos += 1
        if x & 0x80:
            if pos >= end:
                return None
            info.pid_offset = pos - start
            if payload[pos] & 0x80:
                if pos + 1 >= end:
                    return None
                info.pid = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                pos += 2
            else:
                info.pid = payload[pos]
                info.pid_long = False
                pos += 1
        if x & 0x40:
            if pos >= end:
                return None
            info.tl0_offset = pos - start
            info.tl0 = payload[pos]
            pos += 1
        if x & 0x30:
            pos += 1
    if begins and pos < end and not payload[pos] & 0x01:
        info.keyframe = True
        if pos + 10 <= end and bytes(payload[pos + 3 : pos + 6]) == _START_CODE:
            info.height = ((payload[pos + 9] << 8) | payload[pos + 8]) & 0x3FFF
    return info


def rewrite_vp8(data: bytes, payload_start: int, info: Vp8Info, pid: int, tl0: int) -> bytes:
    """``data`` (an outgoing packet) with the picture id and TL0PICIDX replaced."""
    out = bytearray(data)
    if info.pid_offset >= 0:
        at = payload_start + info.pid_offset
        if info.pid_long:
            out[at] = 0x80 | ((pid >> 8) & 0x7F)
            out[at + 1] = pid & 0xFF
        else:
            out[at] = pid & 0x7F
    if info.tl0_offset >= 0:
        out[payload_start + info.tl0_offset] = tl0 & 0xFF
    return bytes(out)
