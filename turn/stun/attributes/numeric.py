"""Fixed-size integer attributes of STUN, TURN and ICE.

LIFETIME, PRIORITY, CHANNEL-NUMBER, REQUESTED-TRANSPORT, REQUESTED-ADDRESS-FAMILY,
ADDITIONAL-ADDRESS-FAMILY, EVEN-PORT, ICE-CONTROLLED, ICE-CONTROLLING, CONNECTION-ID and ICMP.
The codec checks sizes only; whether a value is acceptable (a channel number in range, a known
transport, family 0x02 in ADDITIONAL-ADDRESS-FAMILY) is the TURN core's decision, because the
RFC answers those cases with specific error responses (400, 440, 442), not with a drop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from turn.stun.attributes.base import U32, U64, Attribute, check_uint, expect_length
from turn.stun.constants import AttrType

_U8_PADDED: Final = struct.Struct(">Bxxx")
_U16_PADDED: Final = struct.Struct(">Hxx")
_ICMP: Final = struct.Struct(">xxBBI")


class _IntAttribute(Attribute):
    """An attribute whose value is one unsigned integer in a fixed layout.

    Subclasses name their one field (``_FIELD``), its width in bits and the struct that packs
    it, so encoding, range checks, length checks and decoding are written once.
    """

    __slots__ = ()

    _FIELD: ClassVar[str]
    _BITS: ClassVar[int]
    _STRUCT: ClassVar[struct.Struct]

    def encode_value(self, transaction_id: bytes) -> bytes:
        value = getattr(self, self._FIELD)
        return self._STRUCT.pack(check_uint(self.TYPE, self._FIELD, value, self._BITS))

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, cls._STRUCT.size)
        return cls(cls._STRUCT.unpack(value)[0])  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class Lifetime(_IntAttribute):
    """LIFETIME: seconds until an allocation expires (0 on Refresh deletes it)."""

    seconds: int

    TYPE: ClassVar[int] = AttrType.LIFETIME
    _FIELD: ClassVar[str] = "seconds"
    _BITS: ClassVar[int] = 32
    _STRUCT: ClassVar[struct.Struct] = U32


@dataclass(frozen=True, slots=True)
class Priority(_IntAttribute):
    """PRIORITY (ICE): the priority a peer-reflexive candidate would get."""

    priority: int

    TYPE: ClassVar[int] = AttrType.PRIORITY
    _FIELD: ClassVar[str] = "priority"
    _BITS: ClassVar[int] = 32
    _STRUCT: ClassVar[struct.Struct] = U32


@dataclass(frozen=True, slots=True)
class ConnectionId(_IntAttribute):
    """CONNECTION-ID (RFC 6062): names a TCP peer connection of a TCP allocation."""

    connection_id: int

    TYPE: ClassVar[int] = AttrType.CONNECTION_ID
    _FIELD: ClassVar[str] = "connection_id"
    _BITS: ClassVar[int] = 32
    _STRUCT: ClassVar[struct.Struct] = U32


@dataclass(frozen=True, slots=True)
class ChannelNumber(_IntAttribute):
    """CHANNEL-NUMBER: 16-bit channel plus 16 reserved bits. Range is checked by the TURN core."""

    number: int

    TYPE: ClassVar[int] = AttrType.CHANNEL_NUMBER
    _FIELD: ClassVar[str] = "number"
    _BITS: ClassVar[int] = 16
    _STRUCT: ClassVar[struct.Struct] = _U16_PADDED


@dataclass(frozen=True, slots=True)
class RequestedTransport(_IntAttribute):
    """REQUESTED-TRANSPORT: IANA protocol number (17 UDP, 6 TCP) plus 24 reserved bits."""

    protocol: int

    TYPE: ClassVar[int] = AttrType.REQUESTED_TRANSPORT
    _FIELD: ClassVar[str] = "protocol"
    _BITS: ClassVar[int] = 8
    _STRUCT: ClassVar[struct.Struct] = _U8_PADDED


@dataclass(frozen=True, slots=True)
class RequestedAddressFamily(_IntAttribute):
    """REQUESTED-ADDRESS-FAMILY: which family of relayed address to allocate."""

    family: int

    TYPE: ClassVar[int] = AttrType.REQUESTED_ADDRESS_FAMILY
    _FIELD: ClassVar[str] = "family"
    _BITS: ClassVar[int] = 8
    _STRUCT: ClassVar[struct.Struct] = _U8_PADDED


@dataclass(frozen=True, slots=True)
class AdditionalAddressFamily(_IntAttribute):
    """ADDITIONAL-ADDRESS-FAMILY: ask for an IPv6 relayed address as well (RFC 8656 §18.12)."""

    family: int

    TYPE: ClassVar[int] = AttrType.ADDITIONAL_ADDRESS_FAMILY
    _FIELD: ClassVar[str] = "family"
    _BITS: ClassVar[int] = 8
    _STRUCT: ClassVar[struct.Struct] = _U8_PADDED


@dataclass(frozen=True, slots=True)
class EvenPort(Attribute):
    """EVEN-PORT: one byte whose top bit asks to reserve the next-higher port too."""

    reserve: bool = False

    TYPE: ClassVar[int] = AttrType.EVEN_PORT

    def encode_value(self, transaction_id: bytes) -> bytes:
        return b"\x80" if self.reserve else b"\x00"

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 1)
        return cls(bool(value[0] & 0x80))


@dataclass(frozen=True, slots=True)
class IceControlled(_IntAttribute):
    """ICE-CONTROLLED: the sender's 64-bit tie-breaker; it believes it is controlled."""

    tiebreaker: int

    TYPE: ClassVar[int] = AttrType.ICE_CONTROLLED
    _FIELD: ClassVar[str] = "tiebreaker"
    _BITS: ClassVar[int] = 64
    _STRUCT: ClassVar[struct.Struct] = U64


@dataclass(frozen=True, slots=True)
class IceControlling(_IntAttribute):
    """ICE-CONTROLLING: the sender's 64-bit tie-breaker; it believes it is controlling."""

    tiebreaker: int

    TYPE: ClassVar[int] = AttrType.ICE_CONTROLLING
    _FIELD: ClassVar[str] = "tiebreaker"
    _BITS: ClassVar[int] = 64
    _STRUCT: ClassVar[struct.Struct] = U64


@dataclass(frozen=True, slots=True)
class Icmp(Attribute):
    """ICMP (RFC 8656 §18.14): an ICMP error the relay received, forwarded in a Data indication."""

    icmp_type: int
    icmp_code: int
    error_data: int = 0

    TYPE: ClassVar[int] = AttrType.ICMP

    def encode_value(self, transaction_id: bytes) -> bytes:
        return _ICMP.pack(
            check_uint(self.TYPE, "icmp_type", self.icmp_type, 8),
            check_uint(self.TYPE, "icmp_code", self.icmp_code, 8),
            check_uint(self.TYPE, "error_data", self.error_data, 32),
        )

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 8)
        icmp_type, icmp_code, error_data = _ICMP.unpack(value)
        return cls(icmp_type, icmp_code, error_data)
