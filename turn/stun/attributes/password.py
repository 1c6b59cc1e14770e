"""PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS (RFC 8489 §14.11-14.12).

They let client and server agree on MD5 or SHA-256 for the long-term key, with a bid-down
protection: the server's list travels in the nonce-protected challenge. Each entry is an
algorithm number, a parameter length and parameters padded to 4 bytes inside the attribute.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from turn.stun.attributes.base import Attribute, check_bytes, check_uint
from turn.stun.constants import AttrType, attr_name
from turn.stun.errors import StunDecodeError, StunEncodeError

_ENTRY: Final = struct.Struct(">HH")

#: Algorithm numbers of the STUN Password Algorithms registry.
ALGORITHM_MD5: Final = 0x0001
ALGORITHM_SHA256: Final = 0x0002


def _encode_entry(attr_type: int, algorithm: int, parameters: bytes) -> bytes:
    check_uint(attr_type, "algorithm", algorithm, 16)
    params = check_bytes(attr_type, "parameters", parameters)
    if len(params) > 0xFFFF:
        raise StunEncodeError(f"STUN {attr_name(attr_type)}: parameters longer than 65535 bytes")
    return _ENTRY.pack(algorithm, len(params)) + params + bytes(-len(params) % 4)


def _decode_entry(attr_type: int, value: bytes, pos: int) -> tuple[int, bytes, int]:
    if len(value) - pos < 4:
        raise StunDecodeError(
            f"STUN {attr_name(attr_type)} truncated at byte {pos}: "
            f"{len(value) - pos} bytes left, 4 needed for an algorithm"
        )
    algorithm, plen = _ENTRY.unpack_from(value, pos)
    start = pos + 4
    end = start + plen
    padded = start + plen + (-plen % 4)
    if padded > len(value):
        raise StunDecodeError(
            f"STUN {attr_name(attr_type)} truncated at byte {pos}: parameters need "
            f"{padded - start} bytes with padding, {len(value) - start} present"
        )
    return algorithm, value[start:end], padded


@dataclass(frozen=True, slots=True)
class PasswordAlgorithm(Attribute):
    """PASSWORD-ALGORITHM: the algorithm the client chose for this request."""

    algorithm: int
    parameters: bytes = b""

    TYPE: ClassVar[int] = AttrType.PASSWORD_ALGORITHM

    def encode_value(self, transaction_id: bytes) -> bytes:
        return _encode_entry(self.TYPE, self.algorithm, self.parameters)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        algorithm, params, end = _decode_entry(cls.TYPE, value, 0)
        if end != len(value):
            raise StunDecodeError(
                f"STUN PASSWORD-ALGORITHM has length {len(value)}, expected {end}"
            )
        return cls(algorithm, params)


@dataclass(frozen=True, slots=True)
class PasswordAlgorithms(Attribute):
    """PASSWORD-ALGORITHMS: the server's supported algorithms, in order of preference."""

    algorithms: tuple[PasswordAlgorithm, ...]

    TYPE: ClassVar[int] = AttrType.PASSWORD_ALGORITHMS

    def encode_value(self, transaction_id: bytes) -> bytes:
        if not isinstance(self.algorithms, tuple | list):
            raise StunEncodeError("STUN PASSWORD-ALGORITHMS: algorithms must be a tuple")
        parts = []
        for entry in self.algorithms:
            if not isinstance(entry, PasswordAlgorithm):
                raise StunEncodeError("STUN PASSWORD-ALGORITHMS: entries must be PasswordAlgorithm")
            parts.append(_encode_entry(self.TYPE, entry.algorithm, entry.parameters))
        return b"".join(parts)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        entries = []
        pos = 0
        while pos < len(value):
            algorithm, params, pos = _decode_entry(cls.TYPE, value, pos)
            entries.append(PasswordAlgorithm(algorithm, params))
        return cls(tuple(entries))
