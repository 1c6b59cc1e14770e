"""MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT over raw message bytes.

RFC 8489 §14.5-14.7: each value covers the message from the header up to (not including) the
attribute itself, but with the header's length field rewritten to end just after that attribute,
as if nothing followed it. Verification always runs over the bytes as received, never over a
re-encoding, so padding bytes and unknown attributes the sender chose are covered as sent.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from typing import Final

from turn.stun.constants import FINGERPRINT_XOR, HEADER_SIZE

_U16: Final = struct.Struct(">H")


def covered_bytes(raw: bytes, attr_offset: int, attr_value_length: int) -> bytes:
    """Bytes a MAC or CRC covers: ``raw[:attr_offset]`` with the length field adjusted."""
    adjusted = attr_offset + 4 + attr_value_length - HEADER_SIZE
    return raw[:2] + _U16.pack(adjusted) + raw[4:attr_offset]


def hmac_sha1(key: bytes, raw: bytes, attr_offset: int) -> bytes:
    """MESSAGE-INTEGRITY value for an attribute placed at ``attr_offset``."""
    return hmac.digest(key, covered_bytes(raw, attr_offset, 20), "sha1")


def hmac_sha256(key: bytes, raw: bytes, attr_offset: int, length: int) -> bytes:
    """MESSAGE-INTEGRITY-SHA256 value (truncated to ``length`` bytes) at ``attr_offset``."""
    return hmac.digest(key, covered_bytes(raw, attr_offset, length), "sha256")[:length]


def fingerprint(raw: bytes, attr_offset: int) -> int:
    """FINGERPRINT value: CRC-32 of the covered bytes XOR 0x5354554e."""
    return zlib.crc32(covered_bytes(raw, attr_offset, 4)) ^ FINGERPRINT_XOR


def digests_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison, so a forger learns nothing from response timing."""
    return hmac.compare_digest(a, b)
