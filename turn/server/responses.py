"""Encoding responses: full ones for authenticated clients, lean ones where bytes are scarce.

A response to an authenticated request carries SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT.
A response to an unauthenticated request (the 401/438 challenge, 400s before authentication,
Binding) is a reflection vector over UDP, where source addresses are spoofable: it must fit the
source's byte budget (:mod:`turn.server.amplification`: never more bytes sent than received).
:func:`encode_unauthenticated` returns the richest form within a limit, dropping optional parts
only as far as needed: SOFTWARE, then FINGERPRINT, then the reason phrase. So the full, proper
answer goes out whenever the budget allows it, and a trimmed one only when that is what lets
the answer fit now (a 52-byte first Allocate gets a 52-byte 401 at once instead of waiting for
a retransmission). Over TCP/TLS the handshake has proven the source address: no limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from turn.stun import Attribute, ErrorCode, MessageClass, Software, StunMessage


def _variants(
    message: StunMessage, software: str
) -> list[tuple[tuple[Attribute, ...], bool]]:
    attrs = message.attributes
    soft: tuple[Attribute, ...] = (Software(software),) if software else ()
    out: list[tuple[tuple[Attribute, ...], bool]] = [
        ((*attrs, *soft), True),
        (attrs, True),
        (attrs, False),
    ]
    if attrs and isinstance(attrs[0], ErrorCode) and attrs[0].reason:
        out.append(((ErrorCode(attrs[0].code, ""), *attrs[1:]), False))
    return out


def encode_unauthenticated(message: StunMessage, software: str, limit: int | None) -> bytes | None:
    """The richest encoding of ``message`` not larger than ``limit`` bytes (None: no limit)."""
    for attrs, fingerprint in _variants(message, software):
        data = StunMessage(message.method, message.cls, message.transaction_id, attrs).encode(
            fingerprint=fingerprint
        )
        if limit is None or len(data) <= limit:
            return data
    return None


def encode_authenticated(message: StunMessage, software: str, key: bytes) -> bytes:
    """A response to an authenticated request: SOFTWARE, MESSAGE-INTEGRITY, FINGERPRINT."""
    attrs: Sequence[Attribute] = message.attributes
    if software:
        attrs = (*attrs, Software(software))
    return StunMessage(message.method, message.cls, message.transaction_id, tuple(attrs)).encode(
        integrity_key=key, fingerprint=True
    )


def error(request: StunMessage, code: int, *attrs: Attribute, reason: str | None = None
          ) -> StunMessage:
    """An error response to ``request`` with the standard reason unless given."""
    return request.error_response(code, *attrs, reason=reason)


def success(request: StunMessage, *attrs: Attribute) -> StunMessage:
    return StunMessage(request.method, MessageClass.SUCCESS, request.transaction_id, attrs)


__all__ = ["encode_authenticated", "encode_unauthenticated", "error", "success"]
