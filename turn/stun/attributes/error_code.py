"""ERROR-CODE, ADDRESS-ERROR-CODE and UNKNOWN-ATTRIBUTES: how a server says no.

The error code is split on the wire into a class digit (3 bits) and a number (0-99); we keep it
as one integer 300-699 and reject anything else on both sides, because a code like 799 or 3120
cannot be represented and a peer sending one is broken.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from turn.stun.attributes.base import (
    Attribute,
    check_uint,
    decode_text,
    encode_text,
)
from turn.stun.constants import ERROR_REASONS, AttrType, attr_name
from turn.stun.errors import StunDecodeError, StunEncodeError

_CODE: Final = struct.Struct(">xxBB")
_FAMILY_CODE: Final = struct.Struct(">BxBB")


def _pack_code(attr_type: int, code: object) -> tuple[int, int]:
    if not isinstance(code, int) or isinstance(code, bool) or not 300 <= code <= 699:
        raise StunEncodeError(f"STUN {attr_name(attr_type)}: code {code!r} is not in 300-699")
    return code // 100, code % 100


def _unpack_code(attr_type: int, value: bytes, offset: int) -> int:
    if len(value) < 4:
        raise StunDecodeError(
            f"STUN {attr_name(attr_type)} truncated: {len(value)} bytes, at least 4 needed"
        )
    cls, number = value[offset + 2] & 0x07, value[offset + 3]
    if not 3 <= cls <= 6:
        raise StunDecodeError(f"STUN {attr_name(attr_type)} class {cls} is not in 3-6")
    if number > 99:
        raise StunDecodeError(f"STUN {attr_name(attr_type)} number {number} is not in 0-99")
    return cls * 100 + number


@dataclass(frozen=True, slots=True)
class ErrorCode(Attribute):
    """ERROR-CODE: code 300-699 and a reason phrase."""

    code: int
    reason: str = ""

    TYPE: ClassVar[int] = AttrType.ERROR_CODE

    @classmethod
    def standard(cls, code: int) -> ErrorCode:
        """The code with the reason phrase the RFCs recommend (empty if none)."""
        return cls(code, ERROR_REASONS.get(code, ""))

    def encode_value(self, transaction_id: bytes) -> bytes:
        cls_digit, number = _pack_code(self.TYPE, self.code)
        return _CODE.pack(cls_digit, number) + encode_text(self.TYPE, self.reason, 127, 763)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        code = _unpack_code(cls.TYPE, value, 0)
        return cls(code, decode_text(cls.TYPE, value[4:]))


@dataclass(frozen=True, slots=True)
class AddressErrorCode(Attribute):
    """ADDRESS-ERROR-CODE (RFC 8656 §18.13): why one family of a dual allocation failed."""

    family: int
    code: int
    reason: str = ""

    TYPE: ClassVar[int] = AttrType.ADDRESS_ERROR_CODE

    def encode_value(self, transaction_id: bytes) -> bytes:
        family = check_uint(self.TYPE, "family", self.family, 8)
        cls_digit, number = _pack_code(self.TYPE, self.code)
        return _FAMILY_CODE.pack(family, cls_digit, number) + encode_text(
            self.TYPE, self.reason, 127, 763
        )

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        code = _unpack_code(cls.TYPE, value, 0)
        return cls(value[0], code, decode_text(cls.TYPE, value[4:]))


@dataclass(frozen=True, slots=True)
class UnknownAttributes(Attribute):
    """UNKNOWN-ATTRIBUTES: the comprehension-required types a 420 response refuses."""

    types: tuple[int, ...]

    TYPE: ClassVar[int] = AttrType.UNKNOWN_ATTRIBUTES

    def encode_value(self, transaction_id: bytes) -> bytes:
        if not isinstance(self.types, tuple | list):
            raise StunEncodeError("STUN UNKNOWN-ATTRIBUTES: types must be a tuple of int")
        for t in self.types:
            check_uint(self.TYPE, "type", t, 16)
        return struct.pack(f">{len(self.types)}H", *self.types)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) & 1:
            raise StunDecodeError(
                f"STUN UNKNOWN-ATTRIBUTES has odd length {len(value)}, expected a multiple of 2"
            )
        return cls(struct.unpack(f">{len(value) // 2}H", value))
