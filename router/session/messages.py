"""The signaling message schema: JSON objects over one WebSocket, validated here.

Every client message is a JSON object with a ``type``; :func:`parse_client_message` checks it
against :data:`CLIENT_SCHEMAS` (required fields and their types, nothing unknown) and returns a
:class:`ClientMessage`, or raises :class:`MessageError` whose ``code`` and text go back to the
client as an ``error`` message. Validation is strict and table-driven so that every malformed
message gets a precise answer and no handler ever sees an unexpected shape.
docs/signaling.md is the reference for clients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from control.jsonlimits import JsonRefused, loads_limited

PROTOCOL_VERSION: Final = 1
MAX_DEPTH: Final = 16
"""Deepest JSON nesting a client message may have (a relayed ICE candidate is 3 deep)."""

# Error codes (the ``code`` of an ``error`` message). Stable identifiers for clients.
E_MALFORMED: Final = "malformed"
E_TOO_LARGE: Final = "too_large"
E_UNKNOWN_TYPE: Final = "unknown_type"
E_OUT_OF_ORDER: Final = "out_of_order"
E_RATE_LIMITED: Final = "rate_limited"
E_CHAT_RATE_LIMITED: Final = "chat_rate_limited"
E_CHAT_DISABLED: Final = "chat_disabled"
E_BAD_SDP: Final = "bad_sdp"
E_NOT_ALLOWED: Final = "not_allowed"
E_TOKEN_INVALID: Final = "token_invalid"
E_TOKEN_EXPIRED: Final = "token_expired"
E_WRONG_ROUTER: Final = "wrong_router"
E_ROOM_FULL: Final = "room_full"
E_ROUTER_FULL: Final = "router_full"
E_DRAINING: Final = "draining"
E_MODE_MISMATCH: Final = "mode_mismatch"
E_NO_PEER: Final = "no_peer"
E_TOO_MANY_TRACKS: Final = "too_many_tracks"
E_UNKNOWN_TRACK: Final = "unknown_track"

#: Errors after which the router closes the connection (the client has no session).
FATAL_CODES: Final = frozenset(
    {E_TOKEN_INVALID, E_TOKEN_EXPIRED, E_WRONG_ROUTER, E_ROOM_FULL, E_ROUTER_FULL, E_DRAINING,
     E_MODE_MISMATCH}
)  # fmt: skip

#: WebSocket close codes (4000-4999 are the application's) for the fatal errors.
CLOSE_CODES: Final = {
    E_TOKEN_INVALID: 4001,
    E_TOKEN_EXPIRED: 4002,
    E_WRONG_ROUTER: 4003,
    E_ROOM_FULL: 4004,
    E_ROUTER_FULL: 4005,
    E_DRAINING: 4006,
    E_MODE_MISMATCH: 4007,
}
CLOSE_NORMAL: Final = 1000
CLOSE_JOIN_TIMEOUT: Final = 4008
CLOSE_REPLACED: Final = 4009
CLOSE_TRANSPORT_FAILED: Final = 4010
CLOSE_SHUTDOWN: Final = 1001

_STR = (str,)
_OBJ = (dict,)
_BOOL = (bool,)
_INT = (int,)

#: type -> {field: (allowed python types, required)}; ``type`` itself is implied.
CLIENT_SCHEMAS: Final[dict[str, dict[str, tuple[tuple[type, ...], bool]]]] = {
    "join": {"token": (_STR, True), "room_options": (_OBJ, False)},
    "publish": {"sdp": (_STR, True)},
    "answer": {"sdp": (_STR, True)},
    "chat": {"text": (_STR, True)},
    "relay": {"payload": (_OBJ, True), "to": (_STR, False)},
    "leave": {},
    "ping": {"id": ((str, int), False)},
    "video_size": {"track": (_STR, True), "height": (_INT, True)},
    "link_stats": {},
}

#: Relayed p2p payload kinds: SDP and ICE candidates only (the router reads nothing else).
RELAY_KINDS: Final = frozenset({"offer", "answer", "candidate", "end-of-candidates", "restart"})


class MessageError(Exception):
    """A client message the router refuses; ``code`` is one of the ``E_*`` constants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A validated client message: its ``type`` and the checked fields."""

    type: str
    fields: dict[str, Any]


def parse_client_message(data: str | bytes, max_bytes: int) -> ClientMessage:
    """Decode and validate one message; raises :class:`MessageError` naming the problem."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "replace"))
    if size > max_bytes:
        raise MessageError(E_TOO_LARGE, f"message of {size} bytes exceeds {max_bytes}")
    try:
        obj = loads_limited(data, max_depth=MAX_DEPTH)
    except JsonRefused as exc:
        raise MessageError(E_MALFORMED, exc.message) from None
    if not isinstance(obj, dict):
        raise MessageError(E_MALFORMED, "a message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MessageError(E_MALFORMED, "a message needs a string 'type'")
    schema = CLIENT_SCHEMAS.get(kind)
    if schema is None:
        shown = kind if len(kind) <= 32 else kind[:32] + "..."
        raise MessageError(E_UNKNOWN_TYPE, f"unknown message type {shown!r}")
    fields: dict[str, Any] = {}
    for name, value in obj.items():
        if name == "type":
            continue
        spec = schema.get(name)
        if spec is None:
            raise MessageError(E_MALFORMED, f"{kind}: unknown field {name[:32]!r}")
        types, _ = spec
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise MessageError(E_MALFORMED, f"{kind}: field {name!r} has the wrong type")
        fields[name] = value
    for name, (_, required) in schema.items():
        if required and name not in fields:
            raise MessageError(E_MALFORMED, f"{kind}: field {name!r} is required")
    return ClientMessage(kind, fields)


def check_relay_payload(payload: dict[str, Any]) -> None:
    """A p2p relay payload must name a known ``kind`` (SDP or ICE only)."""
    kind = payload.get("kind")
    if kind not in RELAY_KINDS:
        raise MessageError(
            E_MALFORMED, f"relay: payload.kind must be one of {', '.join(sorted(RELAY_KINDS))}"
        )


def encode(message: dict[str, Any]) -> str:
    """The wire form of a router message (compact JSON, UTF-8 kept as is)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def error(code: str, message: str, in_reply_to: str | None = None) -> dict[str, Any]:
    """An ``error`` message."""
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if in_reply_to is not None:
        out["in_reply_to"] = in_reply_to
    return out


__all__ = [
    "CLIENT_SCHEMAS",
    "CLOSE_CODES",
    "FATAL_CODES",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "MessageError",
    "check_relay_payload",
    "encode",
    "error",
    "parse_client_message",
]
