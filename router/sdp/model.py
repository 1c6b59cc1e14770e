"""SDP text model (RFC 8866): parse and serialize without losing what we do not understand.

The SFU rewrites little and forwards much, so the model keeps every line: the session and each
media section hold their non-attribute fields (``i=``, ``c=``, ``b=``, ``t=`` ...) and their
attributes in the order they arrived, unknown attributes included. Structured meaning lives in
:mod:`router.sdp.attributes` and :mod:`router.sdp.description`, which read this model; keeping
the two apart means a new attribute never needs a parser change to survive a round trip.

Serialization emits the RFC 8866 field order (``v o s`` + session fields, attributes, then each
``m=`` with its fields before its attributes), so ``parse(serialize(x)) == x`` for every parsed
``x``; an input with fields after attributes comes back in canonical order, which is what
RFC 8866 requires anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from router.sdp.errors import SdpError, SdpUsageError

__all__ = [
    "MAX_SDP_LENGTH",
    "Attribute",
    "MediaDescription",
    "Origin",
    "SessionDescription",
    "parse_sdp",
    "serialize_sdp",
]

MAX_SDP_LENGTH: Final = 256 * 1024
"""Largest SDP accepted: far above a 100-track browser offer, small enough to bound the work."""

SESSION_FIELDS: Final = frozenset("iuepcbtrzk")
"""Non-attribute line types allowed at session level after ``v= o= s=`` (RFC 8866 §5)."""
MEDIA_FIELDS: Final = frozenset("icbk")
"""Non-attribute line types allowed inside a media section (RFC 8866 §5)."""
RTP_PROTO_MARKER: Final = "RTP/"
"""A proto containing this carries RTP, so its formats are payload types (RFC 8866 §5.14)."""


def _clip(text: str, limit: int = 60) -> str:
    """Quote a piece of remote input for an error message without echoing kilobytes of it."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _is_token(text: str) -> bool:
    """RFC 8866 token: visible ASCII without the few separators SDP reserves."""
    return bool(text) and all(33 <= ord(ch) <= 126 and ch not in ":" for ch in text)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One ``a=`` line: ``name`` and ``value`` (None for a property attribute like ``rtcp-mux``).

    ``line`` is the 1-based source line (0 when built locally); it only feeds error messages and
    is left out of equality so parsed and built attributes compare by content.
    """

    name: str
    value: str | None = None
    line: int = field(default=0, compare=False, repr=False)

    def text(self) -> str:
        """The line body after ``a=``."""
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line. ``session_id`` stays a string: it may exceed 63 bits and is only echoed."""

    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def text(self) -> str:
        """The line body after ``o=``."""
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


class _AttributeList:
    """Lookup helpers shared by session and media level (attribute names are case-sensitive)."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def get(self, name: str) -> Attribute | None:
        """First attribute called ``name``, or None."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        return None

    def get_all(self, name: str) -> tuple[Attribute, ...]:
        """Every attribute called ``name``, in order."""
        return tuple(a for a in self.attributes if a.name == name)

    def has(self, name: str) -> bool:
        """True when at least one attribute is called ``name``."""
        return self.get(name) is not None


@dataclass(frozen=True, slots=True)
class MediaDescription(_AttributeList):
    """One media section: the ``m=`` line, its other fields and its attributes, all in order.

    ``formats`` are strings because non-RTP protos (``webrtc-datachannel``) use names; for RTP
    protos the parser has already checked they are payload types 0-127.
    """

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    fields: tuple[tuple[str, str], ...] = ()
    attributes: tuple[Attribute, ...] = ()
    line: int = field(default=0, compare=False, repr=False)

    @property
    def is_rtp(self) -> bool:
        """True when the formats are RTP payload types."""
        return RTP_PROTO_MARKER in self.proto

    def m_line(self) -> str:
        """The line body after ``m=``."""
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((self.kind, str(port), self.proto, *self.formats))

    def with_attributes(self, attributes: Iterable[Attribute]) -> MediaDescription:
        """A copy with ``attributes`` replaced (the model is immutable)."""
        return replace(self, attributes=tuple(attributes))


@dataclass(frozen=True, slots=True)
class SessionDescription(_AttributeList):
    """A whole SDP: session part and media sections; ``str(x)`` is its wire form."""

    origin: Origin = Origin()
    session_name: str = "-"
    fields: tuple[tuple[str, str], ...] = (("t", "0 0"),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def __str__(self) -> str:
        return serialize_sdp(self)


def serialize_sdp(desc: SessionDescription) -> str:
    """Wire form with CRLF line ends (RFC 8866 §5), fields before attributes at each level."""
    lines = ["v=0", f"o={desc.origin.text()}", f"s={desc.session_name}"]
    lines.extend(f"{kind}={value}" for kind, value in desc.fields)
    lines.extend(f"a={a.text()}" for a in desc.attributes)
    for media in desc.media:
        lines.append(f"m={media.m_line()}")
        lines.extend(f"{kind}={value}" for kind, value in media.fields)
        lines.extend(f"a={a.text()}" for a in media.attributes)
    for text in lines:
        if "\n" in text or "\r" in text:
            raise SdpUsageError(f"SDP line would contain a line break: {_clip(text)}")
    return "\r\n".join(lines) + "\r\n"


# --- parsing -------------------------------------------------------------------------------


def _split_lines(sdp: str | bytes) -> list[tuple[int, str, str]]:
    """(line number, type letter, value) for every non-blank line, checking the basic syntax."""
    if isinstance(sdp, bytes | bytearray | memoryview):
        raw = bytes(sdp)
        if len(raw) > MAX_SDP_LENGTH:
            raise SdpError(f"SDP is {len(raw)} bytes, more than the {MAX_SDP_LENGTH} allowed")
        try:
            sdp = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not valid UTF-8 (byte {exc.start})") from None
    if len(sdp) > MAX_SDP_LENGTH:
        raise SdpError(f"SDP is {len(sdp)} characters, more than the {MAX_SDP_LENGTH} allowed")
    out: list[tuple[int, str, str]] = []
    for number, raw_line in enumerate(sdp.split("\n"), start=1):
        text = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if not text.strip():
            continue
        if "\r" in text or "\x00" in text:
            raise SdpError("line contains a stray CR or NUL character", number)
        if len(text) < 2 or text[1] != "=" or not ("a" <= text[0] <= "z"):
            raise SdpError(f"expected '<type>=<value>', got {_clip(text)}", number)
        out.append((number, text[0], text[2:]))
    return out


def _parse_origin(value: str, line: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(
            f"o= line needs 6 fields (username sess-id sess-version nettype addrtype "
            f"address), got {len(parts)}: {_clip(value)}",
            line,
        )
    if not parts[2].isdigit() or not parts[2].isascii():
        raise SdpError(f"o= session version {_clip(parts[2])} is not a number", line)
    return Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])


def _parse_payload_type(text: str, line: int, where: str) -> int:
    """An RTP payload type 0-127 (RFC 3550 §5.1: 7 bits), with a message naming ``where``."""
    if not text.isascii() or not text.isdigit():
        raise SdpError(f"payload type {_clip(text)} in {where} is not a number", line)
    value = int(text)
    if value > 127:
        raise SdpError(f"payload type {value} in {where} is out of range 0-127", line)
    return value


def _parse_port(text: str, line: int) -> tuple[int, int | None]:
    port_text, _, count_text = text.partition("/")
    for part in (port_text, count_text) if count_text else (port_text,):
        if not part.isascii() or not part.isdigit() or len(part) > 5:
            raise SdpError(f"bad m= line: port {_clip(text)} is not a number", line)
    port = int(port_text)
    if port > 65535:
        raise SdpError(f"bad m= line: port {port} is out of range 0-65535", line)
    return port, (int(count_text) if count_text else None)


def _parse_m_line(value: str, line: int) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpError(
            f"bad m= line: expected '<media> <port> <proto> <fmt> ...', got {_clip(value)}", line
        )
    kind, port_text, proto, *formats = parts
    port, count = _parse_port(port_text, line)
    if RTP_PROTO_MARKER in proto:
        seen: set[int] = set()
        for fmt in formats:
            pt = _parse_payload_type(fmt, line, "m= line")
            if pt in seen:
                raise SdpError(f"bad m= line: payload type {pt} listed twice", line)
            seen.add(pt)
    return MediaDescription(kind, port, proto, tuple(formats), count, line=line)


def _parse_attribute(value: str, line: int) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _is_token(name):
        raise SdpError(f"bad attribute name {_clip(name)} in a= line", line)
    return Attribute(name, rest if colon else None, line)


def parse_sdp(sdp: str | bytes) -> SessionDescription:
    """Parse SDP text (CRLF or LF line ends) into the lossless model; raises only SdpError.

    Checks syntax only (line shapes, ``v= o= s=`` order, ``m=`` lines, which types may appear at
    which level). Meaning (rtpmap, mids, BUNDLE ...) is checked by
    :func:`router.sdp.description.describe`.
    """
    lines = _split_lines(sdp)
    if not lines:
        raise SdpError("SDP is empty: it must start with 'v=0'")
    number, kind, value = lines[0]
    if kind != "v":
        raise SdpError(f"SDP must start with a 'v=' line, got '{kind}='", number)
    if value != "0":
        raise SdpError(f"unsupported SDP version {_clip(value)} (only v=0 exists)", number)
    if len(lines) < 3 or lines[1][1] != "o" or lines[2][1] != "s":
        where = lines[1][0] if len(lines) > 1 else number
        raise SdpError("the 'v=' line must be followed by 'o=' and 's=' lines", where)
    origin = _parse_origin(lines[1][2], lines[1][0])
    session_name = lines[2][2]
    session_fields: list[tuple[str, str]] = []
    session_attributes: list[Attribute] = []
    media: list[MediaDescription] = []
    current: MediaDescription | None = None
    media_fields: list[tuple[str, str]] = []
    media_attributes: list[Attribute] = []

    def close_media() -> None:
        if current is not None:
            media.append(
                replace(current, fields=tuple(media_fields), attributes=tuple(media_attributes))
            )

    for number, kind, value in lines[3:]:
        if kind == "m":
            close_media()
            current = _parse_m_line(value, number)
            media_fields, media_attributes = [], []
        elif kind == "a":
            target = session_attributes if current is None else media_attributes
            target.append(_parse_attribute(value, number))
        elif kind in "vos":
            raise SdpError(f"duplicate '{kind}=' line", number)
        elif current is None:
            if kind not in SESSION_FIELDS:
                raise SdpError(f"unknown line type '{kind}='", number)
            session_fields.append((kind, value))
        else:
            if kind not in MEDIA_FIELDS:
                known = kind in SESSION_FIELDS
                reason = "is not allowed inside a media section" if known else "is unknown"
                raise SdpError(f"line type '{kind}=' {reason}", number)
            media_fields.append((kind, value))
    close_media()
    return SessionDescription(
        origin, session_name, tuple(session_fields), tuple(session_attributes), tuple(media)
    )
