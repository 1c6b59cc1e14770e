"""Base class of decoded attributes and the small checks every attribute decoder shares.

Each attribute is a frozen, slotted dataclass that knows its wire type and how to turn its value
into bytes and back. The TLV framing (type, length, padding) lives in the message codec; an
attribute only ever sees its own value bytes plus the transaction id (the XOR-address attributes
need it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from turn.stun.constants import attr_name
from turn.stun.errors import StunDecodeError, StunEncodeError


class Attribute:
    """A decoded STUN attribute. Subclasses are frozen ``slots=True`` dataclasses."""

    __slots__ = ()

    #: Wire type of the attribute (see :class:`~turn.stun.constants.AttrType`).
    TYPE: ClassVar[int]

    @property
    def attr_type(self) -> int:
        """The wire type; :class:`RawAttribute` overrides this with its stored type."""
        return self.TYPE

    def encode_value(self, transaction_id: bytes) -> bytes:
        """The value bytes, without TLV header or padding. Raises :class:`StunEncodeError`."""
        raise NotImplementedError

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        """Build the attribute from its value bytes. Raises :class:`StunDecodeError`."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class RawAttribute(Attribute):
    """An attribute this codec does not interpret, kept byte for byte so it re-encodes intact.

    Types below 0x8000 that land here are comprehension-required and unknown: a server answers
    the request with 420 and lists them in UNKNOWN-ATTRIBUTES.
    """

    type: int
    value: bytes

    @property
    def attr_type(self) -> int:
        return self.type

    def encode_value(self, transaction_id: bytes) -> bytes:
        if not isinstance(self.value, bytes | bytearray | memoryview):
            raise StunEncodeError(f"STUN attribute {attr_name(self.type)}: value must be bytes")
        return bytes(self.value)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        raise NotImplementedError("raw attributes are built by the message decoder")


def expect_length(attr_type: int, value: bytes, expected: int) -> None:
    """Reject a fixed-size value whose length is wrong, naming attribute and both lengths."""
    if len(value) != expected:
        raise StunDecodeError(
            f"STUN {attr_name(attr_type)} has length {len(value)}, expected {expected}"
        )


def check_uint(attr_type: int, field: str, value: object, bits: int) -> int:
    """Validate an unsigned integer field before encoding it into ``bits`` bits."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)}: {field} {value!r} is not an integer "
            f"in 0-{(1 << bits) - 1}"
        )
    return value


def check_bytes(attr_type: int, field: str, value: object, size: int | None = None) -> bytes:
    """Validate a bytes field (optionally of an exact size) before encoding it."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StunEncodeError(f"STUN {attr_name(attr_type)}: {field} must be bytes")
    data = bytes(value)
    if size is not None and len(data) != size:
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)}: {field} must be {size} bytes, got {len(data)}"
        )
    return data


def encode_text(attr_type: int, text: object, max_chars: int | None, max_bytes: int) -> bytes:
    """UTF-8 encode a text value, enforcing the RFC size limits on what we send."""
    if not isinstance(text, str):
        raise StunEncodeError(f"STUN {attr_name(attr_type)}: value must be str")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StunEncodeError(f"STUN {attr_name(attr_type)}: not encodable as UTF-8") from exc
    if max_chars is not None and len(text) > max_chars:
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)}: {len(text)} characters, at most {max_chars} allowed"
        )
    if len(data) > max_bytes:
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)}: {len(data)} bytes of UTF-8, at most {max_bytes} allowed"
        )
    return data


def decode_text(attr_type: int, value: bytes) -> str:
    """Decode UTF-8 strictly; lengths are not policed on receipt (be liberal, but not sloppy)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunDecodeError(
            f"STUN {attr_name(attr_type)} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        ) from None


U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
