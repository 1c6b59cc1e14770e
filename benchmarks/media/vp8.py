"""The VP8 RTP payload descriptor (RFC 7741 §4.2) and the start of a VP8 frame (RFC 6386 §9.1).

An SFU that switches simulcast layers or drops temporal layers reads the picture id, TL0PICIDX
and temporal layer index of every video packet, and a keyframe test reads the frame header
right after the descriptor; synthetic video has to carry them exactly as Chromium writes them
(15-bit picture id with the M bit, TL0PICIDX, ``T`` when temporal layers are on) or the load
misses that per-packet work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The keyframe start code (RFC 6386 §9.1).
START_CODE: Final = b"\x9d\x01\x2a"


class Vp8Error(ValueError):
    """A descriptor that cannot be encoded, or bytes that are not one."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The fields Chromium sets; ``None`` leaves an optional field out.

    ``picture_id`` is written in the 15-bit form (M bit set) when it exceeds 127 or
    ``long_picture_id`` is true, which is what libwebrtc always does.
    """

    start_of_partition: bool
    partition_index: int = 0
    non_reference: bool = False
    picture_id: int | None = None
    long_picture_id: bool = True
    tl0_pic_idx: int | None = None
    temporal_id: int | None = None
    layer_sync: bool = False
    key_idx: int | None = None

    def encode(self) -> bytes:
        """The wire form (1 to 6 bytes)."""
        if not 0 <= self.partition_index <= 7:
            raise Vp8Error(f"VP8 partition index {self.partition_index} out of range 0..7")
        has_t = self.temporal_id is not None
        has_k = self.key_idx is not None
        extended = self.picture_id is not None or self.tl0_pic_idx is not None or has_t or has_k
        first = (0x80 if extended else 0) | (0x20 if self.non_reference else 0)
        first |= (0x10 if self.start_of_partition else 0) | self.partition_index
        out = bytearray([first])
        if not extended:
            return bytes(out)
        flags = ((0x80 if self.picture_id is not None else 0)
                 | (0x40 if self.tl0_pic_idx is not None else 0)
                 | (0x20 if has_t else 0) | (0x10 if has_k else 0))
        out.append(flags)
        if self.picture_id is not None:
            pid = self.picture_id
            if not 0 <= pid <= 0x7FFF:
                raise Vp8Error(f"VP8 picture id {pid} out of range 0..32767")
            if self.long_picture_id or pid > 0x7F:
                out += bytes([0x80 | pid >> 8, pid & 0xFF])
            else:
                out.append(pid)
        if self.tl0_pic_idx is not None:
            if not 0 <= self.tl0_pic_idx <= 0xFF:
                raise Vp8Error(f"VP8 TL0PICIDX {self.tl0_pic_idx} out of range 0..255")
            out.append(self.tl0_pic_idx)
        if has_t or has_k:
            tid = self.temporal_id or 0
            key = self.key_idx or 0
            if not 0 <= tid <= 3 or not 0 <= key <= 31:
                raise Vp8Error(f"VP8 TID {tid} (0..3) or KEYIDX {key} (0..31) out of range")
            out.append(tid << 6 | (0x20 if self.layer_sync else 0) | key)
        return bytes(out)

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> tuple[Vp8Descriptor, int]:
        """The descriptor at the start of an RTP payload and its length in bytes."""
        n = len(payload)
        if n < 1:
            raise Vp8Error("VP8 payload is empty")
        first = payload[0]
        pos = 1
        picture_id = tl0 = tid = key = None
        long_pid = sync = False
        if first & 0x80:
            if n < 2:
                raise Vp8Error("VP8 descriptor truncated after its first byte")
            flags = payload[1]
            pos = 2
            need = pos + (1 if flags & 0x80 else 0) + (1 if flags & 0x40 else 0) \
                + (1 if flags & 0x30 else 0)
            if flags & 0x80 and n > pos and payload[pos] & 0x80:
                need += 1
            if n < need:
                raise Vp8Error(f"VP8 descriptor truncated: needs {need} bytes, has {n}")
            if flags & 0x80:
                if payload[pos] & 0x80:
                    picture_id = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
                    long_pid = True
                    pos += 2
                else:
                    picture_id = payload[pos]
                    pos += 1
            if flags & 0x40:
                tl0 = payload[pos]
                pos += 1
            if flags & 0x30:
                byte = payload[pos]
                pos += 1
                if flags & 0x20:
                    tid, sync = byte >> 6, bool(byte & 0x20)
                if flags & 0x10:
                    key = byte & 0x1F
        return cls(start_of_partition=bool(first & 0x10), partition_index=first & 0x07,
                   non_reference=bool(first & 0x20), picture_id=picture_id,
                   long_picture_id=long_pid, tl0_pic_idx=tl0, temporal_id=tid,
                   layer_sync=sync, key_idx=key), pos


def frame_header(keyframe: bool, first_partition_size: int, width: int = 1280,
                 height: int = 720) -> bytes:
    """The first bytes of a VP8 frame: the 3-byte frame tag, plus start code and dimensions
    on a keyframe (RFC 6386 §9.1)."""
    if not 0 <= first_partition_size < 1 << 19:
        raise Vp8Error(f"VP8 first partition size {first_partition_size} out of range")
    tag = (first_partition_size << 5) | 0x10 | (0 if keyframe else 1)  # show_frame, version 0
    out = tag.to_bytes(3, "little")
    if keyframe:
        out += START_CODE + (width & 0x3FFF).to_bytes(2, "little") \
            + (height & 0x3FFF).to_bytes(2, "little")
    return out


def is_keyframe_start(payload: bytes | bytearray | memoryview) -> bool:
    """Whether an RTP payload starts a VP8 keyframe (descriptor S=1, PID=0, P bit clear)."""
    try:
        descriptor, size = Vp8Descriptor.parse(payload)
    except Vp8Error:
        return False
    return (descriptor.start_of_partition and descriptor.partition_index == 0
            and len(payload) > size and not payload[size] & 0x01)


__all__ = ["START_CODE", "Vp8Descriptor", "Vp8Error", "frame_header", "is_keyframe_start"]
