"""UTF-8 text attributes: USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN.

What we send respects the RFC 8489 limits (USERNAME under 509 bytes; the others under 128
characters and 763 bytes). What we receive only has to be valid UTF-8: a SOFTWARE string a
little too long is no reason to drop a request, but undecodable bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from turn.stun.attributes.base import Attribute, decode_text, encode_text
from turn.stun.constants import AttrType


@dataclass(frozen=True, slots=True)
class TextAttribute(Attribute):
    """Base of the text attributes."""

    value: str

    MAX_CHARS: ClassVar[int | None] = 127
    MAX_BYTES: ClassVar[int] = 763

    def encode_value(self, transaction_id: bytes) -> bytes:
        return encode_text(self.TYPE, self.value, self.MAX_CHARS, self.MAX_BYTES)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(decode_text(cls.TYPE, value))


@dataclass(frozen=True, slots=True)
class Username(TextAttribute):
    """USERNAME: ``ufrag:ufrag`` in ICE, the credential name (or REST ``expiry:user``) in TURN."""

    TYPE: ClassVar[int] = AttrType.USERNAME
    MAX_CHARS: ClassVar[int | None] = None
    MAX_BYTES: ClassVar[int] = 508


@dataclass(frozen=True, slots=True)
class Realm(TextAttribute):
    """REALM: the long-term credential realm (part of the key)."""

    TYPE: ClassVar[int] = AttrType.REALM


@dataclass(frozen=True, slots=True)
class Nonce(TextAttribute):
    """NONCE: server-chosen, opaque to the client; stale ones get 438."""

    TYPE: ClassVar[int] = AttrType.NONCE


@dataclass(frozen=True, slots=True)
class Software(TextAttribute):
    """SOFTWARE: a product description, informational only."""

    TYPE: ClassVar[int] = AttrType.SOFTWARE


@dataclass(frozen=True, slots=True)
class AlternateDomain(TextAttribute):
    """ALTERNATE-DOMAIN: TLS name of the ALTERNATE-SERVER (RFC 8489 §14.16)."""

    TYPE: ClassVar[int] = AttrType.ALTERNATE_DOMAIN
    MAX_CHARS: ClassVar[int | None] = None
    MAX_BYTES: ClassVar[int] = 255
