"""Numbers of the STUN wire format: magic cookie, methods, classes and attribute types.

Kept in one module so the codec, the TURN core and the ICE-lite agent share one spelling of every
registry value (RFC 8489 §18, RFC 8656 §17-18, RFC 8445 §16, RFC 6062 §6.2).
"""

from __future__ import annotations

import enum
from typing import Final

MAGIC_COOKIE: Final = 0x2112A442
MAGIC_COOKIE_BYTES: Final = b"\x21\x12\xa4\x42"
HEADER_SIZE: Final = 20
TRANSACTION_ID_SIZE: Final = 12
#: Largest attribute section a 16-bit length field can announce while staying 4-byte aligned.
MAX_BODY_LENGTH: Final = 0xFFFC
#: XOR constant of the FINGERPRINT attribute ("STUN" in ASCII).
FINGERPRINT_XOR: Final = 0x5354554E


class Method(enum.IntEnum):
    """STUN methods (12-bit). Unknown methods decode as plain ``int``."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class MessageClass(enum.IntEnum):
    """The two class bits C1 C0 of the message type."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class AttrType(enum.IntEnum):
    """Attribute types. Values below 0x8000 are comprehension-required (RFC 8489 §14)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    CONNECTION_ID = 0x002A
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B
    OTHER_ADDRESS = 0x802C


_ATTR_NAMES: Final[dict[int, str]] = {t.value: t.name.replace("_", "-") for t in AttrType}


def attr_name(attr_type: int) -> str:
    """Name of an attribute type for error messages: ``XOR-MAPPED-ADDRESS`` or ``0x7f01``."""
    return _ATTR_NAMES.get(attr_type) or f"0x{attr_type:04x}"


def is_comprehension_required(attr_type: int) -> bool:
    """True for types 0x0000-0x7FFF, which a receiver must understand or reject with 420."""
    return attr_type < 0x8000


class AddressFamily(enum.IntEnum):
    """Address family byte of the address attributes and REQUESTED-ADDRESS-FAMILY."""

    IPV4 = 0x01
    IPV6 = 0x02


#: IANA protocol number used in REQUESTED-TRANSPORT.
TRANSPORT_UDP: Final = 17
TRANSPORT_TCP: Final = 6

#: Reason phrases RFC 8489 §14.8 and RFC 8656 §18 recommend, used when none is given.
ERROR_REASONS: Final[dict[int, str]] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    405: "Mobility Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


def encode_message_type(method: int, cls: int) -> int:
    """Interleave a 12-bit method and 2-bit class into the 14-bit type (RFC 8489 §5)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def decode_message_type(msg_type: int) -> tuple[int, int]:
    """Split a 14-bit message type into ``(method, class)``."""
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    cls = ((msg_type & 0x0010) >> 4) | ((msg_type & 0x0100) >> 7)
    return method, cls
