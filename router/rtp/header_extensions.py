"""RTP header extension blocks (RFC 3550 §5.3.1) and their RFC 8285 element forms.

A block is ``profile (16 bits) | length in 32-bit words (16 bits) | data``. RFC 8285 defines two
element encodings inside the data, selected by the profile value:

* one-byte form, profile ``0xBEDE``: ``ID (4 bits) | len-1 (4 bits) | 1..16 data bytes``;
  ID 0 is a padding byte, ID 15 is reserved and stops parsing (elements after it are ignored);
* two-byte form, profiles ``0x1000..0x100F`` (low 4 bits are "appbits"):
  ``ID (8 bits) | len (8 bits) | 0..255 data bytes``; a zero ID byte is padding.

Any other profile is kept as opaque bytes so that packets from odd senders survive forwarding.
Parsing drops padding, so a parsed block compares equal to the one that built it while the bytes
may differ (builders never emit padding between elements).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from router.rtp.errors import RtpDecodeError, RtpEncodeError

__all__ = [
    "ONE_BYTE_PROFILE",
    "TWO_BYTE_PROFILE",
    "ExtensionBlock",
    "HeaderExtension",
    "find_extension_element",
    "iter_extension_elements",
    "make_extension_block",
]

Buffer = bytes | bytearray | memoryview

ONE_BYTE_PROFILE: Final = 0xBEDE
"""Profile value selecting the RFC 8285 one-byte element form."""
TWO_BYTE_PROFILE: Final = 0x1000
"""Profile value (appbits 0) selecting the RFC 8285 two-byte element form."""


def is_one_byte_profile(profile: int) -> bool:
    """True for the RFC 8285 one-byte form."""
    return profile == ONE_BYTE_PROFILE


def is_two_byte_profile(profile: int) -> bool:
    """True for the RFC 8285 two-byte form (any appbits)."""
    return profile & 0xFFF0 == TWO_BYTE_PROFILE


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """One RFC 8285 element: a locally negotiated ``id`` (SDP extmap) and its raw data."""

    id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ExtensionBlock:
    """The header extension block of an RTP packet.

    ``elements`` is used for the RFC 8285 profiles, ``raw`` (a multiple of 4 bytes) for any other
    profile; the other field stays empty. Use :func:`make_extension_block` to pick the
    smallest RFC 8285 form for a set of elements.
    """

    profile: int
    elements: tuple[HeaderExtension, ...] = ()
    raw: bytes = b""

    def get(self, ext_id: int) -> bytes | None:
        """Data of the first element with ``ext_id``, or None."""
        for element in self.elements:
            if element.id == ext_id:
                return element.data
        return None

    def encode(self) -> bytes:
        """Serialize as ``profile | length | data | zero padding to 32 bits``."""
        profile = self.profile
        if not 0 <= profile <= 0xFFFF:
            raise RtpEncodeError(f"RTP header extension profile {profile} out of range 0..65535")
        if is_one_byte_profile(profile):
            data = _encode_one_byte(self.elements)
        elif is_two_byte_profile(profile):
            data = _encode_two_byte(self.elements)
        else:
            if self.elements:
                raise RtpEncodeError(
                    f"RTP header extension profile {profile:#06x} is not RFC 8285; "
                    "elements cannot be encoded"
                )
            if len(self.raw) % 4:
                raise RtpEncodeError(
                    f"RTP header extension raw data length {len(self.raw)} is not a multiple of 4"
                )
            data = bytes(self.raw)
        if self.raw and (is_one_byte_profile(profile) or is_two_byte_profile(profile)):
            raise RtpEncodeError("RTP header extension raw data is only for non-RFC 8285 profiles")
        pad = -len(data) % 4
        words = (len(data) + pad) // 4
        if words > 0xFFFF:
            raise RtpEncodeError(f"RTP header extension too long: {words} words, max 65535")
        return profile.to_bytes(2, "big") + words.to_bytes(2, "big") + data + bytes(pad)

    @classmethod
    def decode(cls, profile: int, buf: Buffer, start: int, end: int) -> ExtensionBlock:
        """Parse the data area ``buf[start:end]`` of a block with ``profile``."""
        if not (is_one_byte_profile(profile) or is_two_byte_profile(profile)):
            return cls(profile, (), bytes(buf[start:end]))
        elements = tuple(
            HeaderExtension(ext_id, bytes(buf[pos : pos + size]))
            for ext_id, pos, size in iter_extension_elements(profile, buf, start, end)
        )
        return cls(profile, elements)


def iter_extension_elements(
    profile: int, buf: Buffer, start: int, end: int
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(id, data_offset, data_length)`` for each element in ``buf[start:end]``.

    Shared by the full parser and the hot-path finder so both accept and reject exactly the
    same bytes. Yields nothing for non-RFC 8285 profiles.
    """
    pos = start
    if is_one_byte_profile(profile):
        while pos < end:
            b = buf[pos]
            ext_id = b >> 4
            if ext_id == 0:
                # Padding byte (RFC 8285 §4.2); libwebrtc also ignores its length nibble.
                pos += 1
                continue
            if ext_id == 15:
                return
            size = (b & 0x0F) + 1
            left = end - pos - 1
            if size > left:
                raise RtpDecodeError(
                    f"RTP one-byte header extension element {ext_id} length {size} exceeds "
                    f"block: {left} bytes left"
                )
            yield ext_id, pos + 1, size
            pos += 1 + size
    elif is_two_byte_profile(profile):
        while pos < end:
            ext_id = buf[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 1 >= end:
                raise RtpDecodeError(
                    f"RTP two-byte header extension element {ext_id} truncated: "
                    "1 byte left, element header needs 2"
                )
            size = buf[pos + 1]
            left = end - pos - 2
            if size > left:
                raise RtpDecodeError(
                    f"RTP two-byte header extension element {ext_id} length {size} exceeds "
                    f"block: {left} bytes left"
                )
            yield ext_id, pos + 2, size
            pos += 2 + size


def find_extension_element(
    profile: int, buf: Buffer, start: int, end: int, ext_id: int
) -> tuple[int, int] | None:
    """``(offset, length)`` of the first element ``ext_id`` in ``buf[start:end]``, or None."""
    for found_id, pos, size in iter_extension_elements(profile, buf, start, end):
        if found_id == ext_id:
            return pos, size
    return None


def _encode_one_byte(elements: Iterable[HeaderExtension]) -> bytes:
    out = bytearray()
    for element in elements:
        if not 1 <= element.id <= 14:
            raise RtpEncodeError(
                f"RTP one-byte header extension id {element.id} out of range 1..14"
            )
        size = len(element.data)
        if not 1 <= size <= 16:
            raise RtpEncodeError(
                f"RTP one-byte header extension element {element.id} length {size} "
                "out of range 1..16"
            )
        out.append((element.id << 4) | (size - 1))
        out += element.data
    return bytes(out)


def _encode_two_byte(elements: Iterable[HeaderExtension]) -> bytes:
    out = bytearray()
    for element in elements:
        if not 1 <= element.id <= 255:
            raise RtpEncodeError(
                f"RTP two-byte header extension id {element.id} out of range 1..255"
            )
        size = len(element.data)
        if size > 255:
            raise RtpEncodeError(
                f"RTP two-byte header extension element {element.id} length {size} "
                "out of range 0..255"
            )
        out.append(element.id)
        out.append(size)
        out += element.data
    return bytes(out)


def make_extension_block(elements: Iterable[HeaderExtension]) -> ExtensionBlock:
    """Wrap elements in the one-byte form when they fit it, else the two-byte form."""
    items = tuple(elements)
    if all(1 <= e.id <= 14 and 1 <= len(e.data) <= 16 for e in items):
        return ExtensionBlock(ONE_BYTE_PROFILE, items)
    return ExtensionBlock(TWO_BYTE_PROFILE, items)
