"""The trunk control protocol: messages on one bidirectional QUIC stream, strictly decoded.

Framing: a 4-byte big-endian length, then a UTF-8 JSON object with ``t`` (type) and ``n`` (the
sender's message number, starting at 0 and increasing by exactly one). JSON because the
messages are rare (announcements, subscriptions, keys) and their fields are strings and small
numbers; strict because a peer router that sends anything unexpected is broken or compromised:
an unknown type, a missing or extra field, a wrong field type, a number out of range or a gap in
``n`` is a :class:`TrunkDecodeError`, and the trunk carrying it is closed with that reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Final

from control.schema import SchemaError, check_node_id, check_room

MAX_FRAME: Final = 65536
"""Largest message body in bytes: a track announcement is a few hundred bytes."""
_LEN: Final = struct.Struct("!I")
PROTOCOL_VERSION: Final = 1
NAME_MAX: Final = 64
CHAT_MAX: Final = 4000
"""Longest chat text a trunk carries (routers allow 2,000 characters by default)."""
"""Display names are at most this long (the front door admits no longer ones)."""


class TrunkDecodeError(ValueError):
    """A control message that breaks the protocol; the trunk is closed with this reason."""


def _str(limit: int = 256) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise TrunkDecodeError(f"expected a string of 1..{limit} characters")
        return value
    return check


def _int(lo: int, hi: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise TrunkDecodeError(f"expected an integer in {lo}..{hi}")
        return value
    return check


def _opt_int(lo: int, hi: int) -> Callable[[object], int | None]:
    inner = _int(lo, hi)

    def check(value: object) -> int | None:
        return None if value is None else inner(value)
    return check


def _opt_str(limit: int) -> Callable[[object], str | None]:
    inner = _str(limit)

    def check(value: object) -> str | None:
        return None if value is None else inner(value)
    return check


def _float(lo: float, hi: float) -> Callable[[object], float]:
    def check(value: object) -> float:
        if type(value) not in (int, float) or not lo <= float(value) <= hi:  # type: ignore[arg-type]
            raise TrunkDecodeError(f"expected a number in {lo}..{hi}")
        return float(value)  # type: ignore[arg-type]
    return check


def _node(value: object) -> str:
    try:
        return check_node_id(_str(64)(value))
    except SchemaError as exc:
        raise TrunkDecodeError(str(exc)) from None


def _room(value: object) -> str:
    try:
        return check_room(_str(128)(value))
    except SchemaError as exc:
        raise TrunkDecodeError(str(exc)) from None


def _kind(value: object) -> str:
    if value not in ("audio", "video"):
        raise TrunkDecodeError("kind must be audio or video")
    return str(value)


def _key(value: object) -> bytes:
    text = _str(64)(value)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TrunkDecodeError("key is not base64") from None
    if len(raw) != 28:
        raise TrunkDecodeError("an AEAD_AES_128_GCM master key and salt are 28 bytes")
    return raw


def _pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or len(value) > 32:
        raise TrunkDecodeError("expected a list of at most 32 pairs")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise TrunkDecodeError("expected [name, value] pairs")
        out.append((_str(64)(item[0]), _str(256)(item[1]) if item[1] != "" else ""))
    return tuple(out)


def _extensions(value: object) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, list) or len(value) > 16:
        raise TrunkDecodeError("expected a list of at most 16 extensions")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise TrunkDecodeError("expected [uri, id] pairs")
        out.append((_str(256)(item[0]), _int(1, 14)(item[1])))
    return tuple(out)


def _feedback(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 16:
        raise TrunkDecodeError("expected a list of at most 16 feedback entries")
    return tuple(_str(64)(v) for v in value)


@dataclass(frozen=True, slots=True)
class TrunkMessage:
    """Base of every control message; ``TYPE`` is its wire name."""

    TYPE: ClassVar[str] = ""
    CHECKS: ClassVar[Mapping[str, Callable[[object], Any]]] = {}


@dataclass(frozen=True, slots=True)
class Hello(TrunkMessage):
    """First message each way: who the sender is (must match its certificate)."""

    TYPE: ClassVar[str] = "hello"
    node: str
    region: str
    jurisdiction: str
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class TrackAnnounce(TrunkMessage):
    """A track published on the sender's router in ``room``, offered to the receiver."""

    TYPE: ClassVar[str] = "announce"
    room: str
    track: str
    participant: str
    kind: str
    codec: str
    """Codec name as in SDP (``opus``, ``VP8``)."""
    clock_rate: int
    channels: int | None
    payload_type: int
    """The payload type the media will carry on the trunk."""
    fmtp: tuple[tuple[str, str], ...] = ()
    feedback: tuple[str, ...] = ()
    """``rtcp-fb`` values, e.g. ``nack``, ``nack pli``."""
    extensions: tuple[tuple[str, int], ...] = ()
    """Header extensions (URI, id) the media carries on the trunk."""


@dataclass(frozen=True, slots=True)
class TrackWithdraw(TrunkMessage):
    TYPE: ClassVar[str] = "withdraw"
    room: str
    track: str


@dataclass(frozen=True, slots=True)
class ParticipantAnnounce(TrunkMessage):
    """A participant of ``room`` connected to the sender's router, so the receiver's
    participants see who is in the room (and whose tracks they get) by name. Only the id and
    the display name cross: never an address."""

    TYPE: ClassVar[str] = "present"
    room: str
    participant: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ParticipantWithdraw(TrunkMessage):
    TYPE: ClassVar[str] = "absent"
    room: str
    participant: str


@dataclass(frozen=True, slots=True)
class ChatRelay(TrunkMessage):
    """A chat message of one of the sender's participants, for the receiver's participants of
    the room. Relayed from memory like local chat: never stored or logged."""

    TYPE: ClassVar[str] = "chat"
    room: str
    participant: str
    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Subscribe(TrunkMessage):
    """Send ``track`` over this trunk as SSRC ``ssrc`` (the receiver's choice)."""

    TYPE: ClassVar[str] = "subscribe"
    room: str
    track: str
    ssrc: int


@dataclass(frozen=True, slots=True)
class Unsubscribe(TrunkMessage):
    TYPE: ClassVar[str] = "unsubscribe"
    room: str
    track: str


@dataclass(frozen=True, slots=True)
class KeyframeRequest(TrunkMessage):
    TYPE: ClassVar[str] = "keyframe"
    room: str
    track: str


@dataclass(frozen=True, slots=True)
class SrtpKey(TrunkMessage):
    """The sender's next SRTP master key+salt for its direction; it starts using the key once
    the receiver acknowledges it (:class:`SrtpKeyAck`), so no packet arrives under a key the
    receiver lacks."""

    TYPE: ClassVar[str] = "srtp_key"
    key_id: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SrtpKeyAck(TrunkMessage):
    TYPE: ClassVar[str] = "srtp_key_ack"
    key_id: int


@dataclass(frozen=True, slots=True)
class LinkReport(TrunkMessage):
    """The sender's probe figures for the link from it to the receiver."""

    TYPE: ClassVar[str] = "link"
    loss: float
    rtt_ms: float
    jitter_ms: float


_CHECKS: Final[dict[type[TrunkMessage], dict[str, Callable[[object], Any]]]] = {
    Hello: {"node": _node, "region": _str(64), "jurisdiction": _str(64), "version": _int(1, 1)},
    TrackAnnounce: {
        "room": _room, "track": _str(), "participant": _str(), "kind": _kind,
        "codec": _str(32), "clock_rate": _int(1, 1_000_000), "channels": _opt_int(1, 8),
        "payload_type": _int(0, 127), "fmtp": _pairs, "feedback": _feedback,
        "extensions": _extensions,
    },
    TrackWithdraw: {"room": _room, "track": _str()},
    ParticipantAnnounce: {"room": _room, "participant": _str(64), "name": _opt_str(NAME_MAX)},
    ParticipantWithdraw: {"room": _room, "participant": _str(64)},
    ChatRelay: {"room": _room, "participant": _str(64), "text": _str(CHAT_MAX)},
    Subscribe: {"room": _room, "track": _str(), "ssrc": _int(1, 0xFFFFFFFF)},
    Unsubscribe: {"room": _room, "track": _str()},
    KeyframeRequest: {"room": _room, "track": _str()},
    SrtpKey: {"key_id": _int(0, 2**31), "key": _key},
    SrtpKeyAck: {"key_id": _int(0, 2**31)},
    LinkReport: {"loss": _float(0.0, 1.0), "rtt_ms": _float(0.0, 60_000.0),
                 "jitter_ms": _float(0.0, 60_000.0)},
}  # fmt: skip
_BY_TYPE: Final = {cls.TYPE: cls for cls in _CHECKS}


def _to_json(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def encode_message(message: TrunkMessage, number: int) -> bytes:
    """One framed message with sequence number ``number``."""
    body = {k: _to_json(v) for k, v in asdict(message).items()}
    # asdict turns bytes into bytes and tuples into tuples; _to_json made them JSON-ready.
    validate = _CHECKS[type(message)]
    for name, check in validate.items():  # never send what the peer would refuse
        check(body[name])
    body["t"] = message.TYPE
    body["n"] = number
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise ValueError(f"control message of {len(data)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(data)) + data


def decode_body(data: bytes, expected_number: int) -> TrunkMessage:
    """Decode one message body (without the length prefix)."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TrunkDecodeError("control message is not JSON") from None
    if not isinstance(obj, dict):
        raise TrunkDecodeError("control message is not a JSON object")
    cls = _BY_TYPE.get(obj.pop("t", None))
    if cls is None:
        raise TrunkDecodeError("unknown control message type")
    number = obj.pop("n", None)
    if type(number) is not int:
        raise TrunkDecodeError("control message without a number")
    if number != expected_number:
        raise TrunkDecodeError(f"out-of-order control message: got {number}, "
                               f"expected {expected_number}")
    checks = _CHECKS[cls]
    if set(obj) != set(checks):
        raise TrunkDecodeError(f"{cls.TYPE}: fields {sorted(obj)} are not {sorted(checks)}")
    try:
        return cls(**{name: check(obj[name]) for name, check in checks.items()})
    except TrunkDecodeError as exc:
        raise TrunkDecodeError(f"{cls.TYPE}: {exc}") from None


class FrameReader:
    """Reassembles frames from stream data and decodes them in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.expected = 0

    def feed(self, data: bytes) -> list[TrunkMessage]:
        """Messages completed by ``data``; raises :class:`TrunkDecodeError`."""
        buf = self._buffer
        buf += data
        out: list[TrunkMessage] = []
        while len(buf) >= 4:
            (length,) = _LEN.unpack_from(buf)
            if length == 0 or length > MAX_FRAME:
                raise TrunkDecodeError(f"control frame length {length} outside 1..{MAX_FRAME}")
            if len(buf) < 4 + length:
                break
            body = bytes(buf[4:4 + length])
            del buf[:4 + length]
            out.append(decode_body(body, self.expected))
            self.expected += 1
        if len(buf) > MAX_FRAME + 4:
            raise TrunkDecodeError("control stream buffer overflow")
        return out


def message_fields(message: TrunkMessage) -> dict[str, object]:
    return {f.name: getattr(message, f.name) for f in fields(message)}


__all__ = ["MAX_FRAME", "ChatRelay", "FrameReader", "Hello", "KeyframeRequest", "LinkReport",
           "ParticipantAnnounce", "ParticipantWithdraw", "SrtpKey",
           "SrtpKeyAck", "Subscribe", "TrackAnnounce", "TrackWithdraw", "TrunkDecodeError",
           "TrunkMessage", "Unsubscribe", "decode_body", "encode_message"]
