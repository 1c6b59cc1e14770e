"""Address attributes: MAPPED-ADDRESS, the XOR-*-ADDRESS family, ALTERNATE-SERVER and friends.

All share one layout (RFC 8489 §14.1-14.2): a reserved byte, a family byte (0x01 IPv4, 0x02
IPv6), a port and 4 or 16 address bytes. The XOR variants obfuscate port and address with the
magic cookie (and, for IPv6, the transaction id) so NATs that rewrite addresses in payloads
cannot corrupt them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar, Final, Self

from turn.stun.attributes.base import Attribute, check_uint
from turn.stun.constants import MAGIC_COOKIE, MAGIC_COOKIE_BYTES, AttrType, attr_name
from turn.stun.errors import StunDecodeError, StunEncodeError

IPAddress = IPv4Address | IPv6Address

_PREFIX: Final = struct.Struct(">xBH")
_V4: Final = struct.Struct(">xBHI")
_MAGIC_PORT: Final = MAGIC_COOKIE >> 16
_FAMILY_LENGTH: Final = {1: 8, 2: 20}


@dataclass(frozen=True, slots=True)
class AddressAttribute(Attribute):
    """Base of the address attributes; ``XOR`` selects the obfuscated encoding."""

    address: IPAddress
    port: int

    XOR: ClassVar[bool] = False

    def encode_value(self, transaction_id: bytes) -> bytes:
        port = check_uint(self.TYPE, "port", self.port, 16)
        address = self.address
        if isinstance(address, IPv4Address):
            raw4 = int(address)
            if self.XOR:
                port ^= _MAGIC_PORT
                raw4 ^= MAGIC_COOKIE
            return _V4.pack(1, port, raw4)
        if isinstance(address, IPv6Address):
            raw6 = int(address)
            if self.XOR:
                port ^= _MAGIC_PORT
                raw6 ^= int.from_bytes(MAGIC_COOKIE_BYTES + transaction_id, "big")
            return _PREFIX.pack(2, port) + raw6.to_bytes(16, "big")
        raise StunEncodeError(
            f"STUN {attr_name(self.TYPE)}: address must be IPv4Address or IPv6Address, "
            f"got {type(address).__name__}"
        )

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        n = len(value)
        if n < 4:
            raise StunDecodeError(
                f"STUN {attr_name(cls.TYPE)} truncated: {n} bytes, at least 8 needed"
            )
        family, port = _PREFIX.unpack_from(value)
        expected = _FAMILY_LENGTH.get(family)
        if expected is None:
            raise StunDecodeError(
                f"STUN {attr_name(cls.TYPE)} has unknown address family 0x{family:02x}"
            )
        if n != expected:
            raise StunDecodeError(
                f"STUN {attr_name(cls.TYPE)} with {'IPv4' if family == 1 else 'IPv6'} family "
                f"has length {n}, expected {expected}"
            )
        raw = int.from_bytes(value[4:], "big")
        if cls.XOR:
            port ^= _MAGIC_PORT
            if family == 1:
                raw ^= MAGIC_COOKIE
            else:
                raw ^= int.from_bytes(MAGIC_COOKIE_BYTES + transaction_id, "big")
        address: IPAddress = IPv4Address(raw) if family == 1 else IPv6Address(raw)
        return cls(address, port)


@dataclass(frozen=True, slots=True)
class MappedAddress(AddressAttribute):
    """MAPPED-ADDRESS: the reflexive address, plain (RFC 3489 compatibility)."""

    TYPE: ClassVar[int] = AttrType.MAPPED_ADDRESS


@dataclass(frozen=True, slots=True)
class XorMappedAddress(AddressAttribute):
    """XOR-MAPPED-ADDRESS: the client's reflexive transport address."""

    TYPE: ClassVar[int] = AttrType.XOR_MAPPED_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class XorPeerAddress(AddressAttribute):
    """XOR-PEER-ADDRESS: a peer's address as seen from the TURN server (RFC 8656 §18.3)."""

    TYPE: ClassVar[int] = AttrType.XOR_PEER_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class XorRelayedAddress(AddressAttribute):
    """XOR-RELAYED-ADDRESS: the relayed transport address of an allocation (RFC 8656 §18.5)."""

    TYPE: ClassVar[int] = AttrType.XOR_RELAYED_ADDRESS
    XOR: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class AlternateServer(AddressAttribute):
    """ALTERNATE-SERVER: where a 300 Try Alternate sends the client (plain encoding)."""

    TYPE: ClassVar[int] = AttrType.ALTERNATE_SERVER


@dataclass(frozen=True, slots=True)
class ResponseOrigin(AddressAttribute):
    """RESPONSE-ORIGIN (RFC 5780): the address a response was sent from."""

    TYPE: ClassVar[int] = AttrType.RESPONSE_ORIGIN


@dataclass(frozen=True, slots=True)
class OtherAddress(AddressAttribute):
    """OTHER-ADDRESS (RFC 5780): the server's alternate address for NAT behaviour discovery."""

    TYPE: ClassVar[int] = AttrType.OTHER_ADDRESS
