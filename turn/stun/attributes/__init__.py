"""Attribute classes and the dispatch table from wire type to decoder.

The table is the one place that says which attributes this codec understands; everything else
decodes as :class:`RawAttribute` and, if its type is below 0x8000, is reported as unknown
comprehension-required so a server can answer 420.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from turn.stun.attributes.address import (
    AddressAttribute,
    AlternateServer,
    IPAddress,
    MappedAddress,
    OtherAddress,
    ResponseOrigin,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from turn.stun.attributes.base import Attribute, RawAttribute
from turn.stun.attributes.error_code import AddressErrorCode, ErrorCode, UnknownAttributes
from turn.stun.attributes.numeric import (
    AdditionalAddressFamily,
    ChannelNumber,
    ConnectionId,
    EvenPort,
    IceControlled,
    IceControlling,
    Icmp,
    Lifetime,
    Priority,
    RequestedAddressFamily,
    RequestedTransport,
)
from turn.stun.attributes.opaque import Data, DontFragment, ReservationToken, UseCandidate, UserHash
from turn.stun.attributes.password import (
    ALGORITHM_MD5,
    ALGORITHM_SHA256,
    PasswordAlgorithm,
    PasswordAlgorithms,
)
from turn.stun.attributes.text import (
    AlternateDomain,
    Nonce,
    Realm,
    Software,
    TextAttribute,
    Username,
)
from turn.stun.constants import AttrType, attr_name
from turn.stun.errors import StunEncodeError

#: Every attribute class the codec decodes, keyed by wire type.
ATTRIBUTE_CLASSES: Final[dict[int, type[Attribute]]] = {
    cls.TYPE: cls
    for cls in (
        MappedAddress,
        XorMappedAddress,
        XorPeerAddress,
        XorRelayedAddress,
        AlternateServer,
        ResponseOrigin,
        OtherAddress,
        Username,
        Realm,
        Nonce,
        Software,
        AlternateDomain,
        ErrorCode,
        AddressErrorCode,
        UnknownAttributes,
        Lifetime,
        Priority,
        ConnectionId,
        ChannelNumber,
        RequestedTransport,
        RequestedAddressFamily,
        AdditionalAddressFamily,
        EvenPort,
        IceControlled,
        IceControlling,
        Icmp,
        Data,
        ReservationToken,
        UserHash,
        DontFragment,
        UseCandidate,
        PasswordAlgorithm,
        PasswordAlgorithms,
    )
}

#: Decoder per wire type: ``(value, transaction_id) -> Attribute``.
DECODERS: Final[dict[int, Callable[[bytes, bytes], Attribute]]] = {
    t: cls.decode_value for t, cls in ATTRIBUTE_CLASSES.items()
}

#: Types the message encoder computes itself; callers never pass them as attributes.
COMPUTED_TYPES: Final = frozenset(
    {AttrType.MESSAGE_INTEGRITY, AttrType.MESSAGE_INTEGRITY_SHA256, AttrType.FINGERPRINT}
)

_TL: Final = struct.Struct(">HH")
_PAD: Final = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


def decode_attribute(attr_type: int, value: bytes, transaction_id: bytes) -> Attribute:
    """Decode one attribute value; unknown types come back as :class:`RawAttribute`."""
    decoder = DECODERS.get(attr_type)
    if decoder is None:
        return RawAttribute(attr_type, value)
    return decoder(value, transaction_id)


def encode_attribute(attr: Attribute, transaction_id: bytes) -> bytes:
    """One attribute as type, length, value and zero padding to a 4-byte boundary."""
    if not isinstance(attr, Attribute):
        raise StunEncodeError(f"not a STUN attribute: {attr!r}")
    attr_type = attr.attr_type
    if not isinstance(attr_type, int) or not 0 <= attr_type <= 0xFFFF:
        raise StunEncodeError(f"STUN attribute type {attr_type!r} is not in 0-65535")
    if attr_type in COMPUTED_TYPES:
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)} is computed by the encoder; pass a key or "
            "fingerprint=True instead of the attribute"
        )
    value = attr.encode_value(transaction_id)
    if len(value) > 0xFFFF:
        raise StunEncodeError(
            f"STUN {attr_name(attr_type)} value is {len(value)} bytes, at most 65535 fit"
        )
    return _TL.pack(attr_type, len(value)) + value + _PAD[len(value) & 3]


__all__ = [
    "ALGORITHM_MD5",
    "ALGORITHM_SHA256",
    "ATTRIBUTE_CLASSES",
    "COMPUTED_TYPES",
    "DECODERS",
    "AdditionalAddressFamily",
    "AddressAttribute",
    "AddressErrorCode",
    "AlternateDomain",
    "AlternateServer",
    "Attribute",
    "ChannelNumber",
    "ConnectionId",
    "Data",
    "DontFragment",
    "ErrorCode",
    "EvenPort",
    "IPAddress",
    "IceControlled",
    "IceControlling",
    "Icmp",
    "Lifetime",
    "MappedAddress",
    "Nonce",
    "OtherAddress",
    "PasswordAlgorithm",
    "PasswordAlgorithms",
    "Priority",
    "RawAttribute",
    "Realm",
    "RequestedAddressFamily",
    "RequestedTransport",
    "ReservationToken",
    "ResponseOrigin",
    "Software",
    "TextAttribute",
    "UnknownAttributes",
    "UseCandidate",
    "UserHash",
    "Username",
    "XorMappedAddress",
    "XorPeerAddress",
    "XorRelayedAddress",
    "decode_attribute",
    "encode_attribute",
]
