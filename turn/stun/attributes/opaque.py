"""Opaque and flag attributes: DATA, RESERVATION-TOKEN, USERHASH, DONT-FRAGMENT, USE-CANDIDATE.

DATA is the relayed payload of Send/Data indications and is kept as bytes untouched. The flag
attributes carry no value; their presence is the information, so a non-empty value is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from turn.stun.attributes.base import Attribute, check_bytes, expect_length
from turn.stun.constants import AttrType


@dataclass(frozen=True, slots=True)
class Data(Attribute):
    """DATA: application payload relayed between client and peer."""

    data: bytes

    TYPE: ClassVar[int] = AttrType.DATA

    def encode_value(self, transaction_id: bytes) -> bytes:
        return check_bytes(self.TYPE, "data", self.data)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(value)


@dataclass(frozen=True, slots=True)
class ReservationToken(Attribute):
    """RESERVATION-TOKEN: 8 bytes naming a port the server reserved through EVEN-PORT."""

    token: bytes

    TYPE: ClassVar[int] = AttrType.RESERVATION_TOKEN

    def encode_value(self, transaction_id: bytes) -> bytes:
        return check_bytes(self.TYPE, "token", self.token, 8)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 8)
        return cls(value)


@dataclass(frozen=True, slots=True)
class UserHash(Attribute):
    """USERHASH (RFC 8489 §14.4): SHA-256 of ``username:realm`` for username anonymity."""

    userhash: bytes

    TYPE: ClassVar[int] = AttrType.USERHASH

    def encode_value(self, transaction_id: bytes) -> bytes:
        return check_bytes(self.TYPE, "userhash", self.userhash, 32)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 32)
        return cls(value)


@dataclass(frozen=True, slots=True)
class DontFragment(Attribute):
    """DONT-FRAGMENT: ask the relay to set DF on packets to the peer."""

    TYPE: ClassVar[int] = AttrType.DONT_FRAGMENT

    def encode_value(self, transaction_id: bytes) -> bytes:
        return b""

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 0)
        return cls()


@dataclass(frozen=True, slots=True)
class UseCandidate(Attribute):
    """USE-CANDIDATE (ICE): the controlling agent nominates this pair."""

    TYPE: ClassVar[int] = AttrType.USE_CANDIDATE

    def encode_value(self, transaction_id: bytes) -> bytes:
        return b""

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        expect_length(cls.TYPE, value, 0)
        return cls()
