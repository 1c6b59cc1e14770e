"""Structured values of the SDP attributes the SFU acts on (RTP, BUNDLE, DTLS, SSRC).

Each type parses one attribute value with :meth:`parse` (raising :class:`SdpError` that names
the source line) and gives it back with :meth:`value`, so the answer and offer builders write
exactly what they read. Attributes the SFU does not act on are never parsed: they survive in the
text model untouched. Simulcast/rid live in :mod:`router.sdp.simulcast`, candidates in
:mod:`router.sdp.candidate`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from router.sdp.errors import SdpError, SdpUsageError
from router.sdp.model import Attribute, _clip, _is_token, _parse_payload_type

__all__ = [
    "Direction",
    "ExtMap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "Msid",
    "RtcpFeedback",
    "RtcpFeedbackAttr",
    "Rtpmap",
    "Setup",
    "SsrcAttr",
    "SsrcGroup",
]


class Direction(enum.StrEnum):
    """Media direction attribute (RFC 8866 §6.7), seen from the side that wrote the SDP."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """True when the writer of the SDP sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """True when the writer of the SDP receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other side (sendonly <-> recvonly)."""
        return _REVERSED[self]

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        """The direction with the given send/receive flags."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE


_REVERSED: Final = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}
DIRECTION_NAMES: Final = frozenset(d.value for d in Direction)


class Setup(enum.StrEnum):
    """DTLS ``a=setup`` role (RFC 8842): who sends the ClientHello."""

    ACTPASS = "actpass"
    ACTIVE = "active"
    PASSIVE = "passive"
    HOLDCONN = "holdconn"

    @classmethod
    def parse(cls, value: str | None, line: int) -> Setup:
        """Parse the attribute value."""
        try:
            return cls((value or "").strip().lower())
        except ValueError:
            raise SdpError(
                f"bad a=setup value {_clip(value or '')}: expected actpass, active, passive "
                "or holdconn",
                line,
            ) from None


def _require(value: str | None, name: str, line: int) -> str:
    if value is None or not value.strip():
        raise SdpError(f"a={name} needs a value", line)
    return value


def _int_in_range(text: str, low: int, high: int, what: str, line: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise SdpError(f"{what} {_clip(text)} is not a number", line)
    number = int(text)
    if not low <= number <= high:
        raise SdpError(f"{what} {number} is out of range {low}-{high}", line)
    return number


@dataclass(frozen=True, slots=True)
class Rtpmap:
    """``a=rtpmap:<pt> <name>/<clock>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str | None, line: int) -> Rtpmap:
        """Parse the attribute value."""
        text = _require(value, "rtpmap", line)
        pt_text, _, encoding = text.strip().partition(" ")
        parts = encoding.strip().split("/")
        if len(parts) not in (2, 3) or not parts[0] or not _is_token(parts[0]):
            raise SdpError(
                f"bad a=rtpmap value {_clip(text)}: expected '<pt> <name>/<clock>[/<channels>]'",
                line,
            )
        pt = _parse_payload_type(pt_text, line, "a=rtpmap")
        clock = _int_in_range(parts[1], 1, 2**32 - 1, "a=rtpmap clock rate", line)
        channels = (
            _int_in_range(parts[2], 1, 255, "a=rtpmap channels", line) if len(parts) == 3 else None
        )
        return cls(pt, parts[0], clock, channels)

    def value(self) -> str:
        """The attribute value."""
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{tail}"


FmtpParams = tuple[tuple[str, str | None], ...]
"""Format parameters in order; a bare token (RED's ``111/111``) has value None."""


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<pt> <params>``; params are ``;``-separated ``key=value`` pairs (RFC 8866 §6.15)."""

    payload_type: int
    parameters: FmtpParams

    @classmethod
    def parse(cls, value: str | None, line: int) -> Fmtp:
        """Parse the attribute value."""
        text = _require(value, "fmtp", line)
        pt_text, _, rest = text.strip().partition(" ")
        pt = _parse_payload_type(pt_text, line, "a=fmtp")
        return cls(pt, parse_fmtp_parameters(rest))

    def value(self) -> str:
        """The attribute value."""
        return f"{self.payload_type} {format_fmtp_parameters(self.parameters)}"


def parse_fmtp_parameters(text: str) -> FmtpParams:
    """``a=1;b=2`` -> ((a, 1), (b, 2)); keys are kept as written, empty items skipped."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        key, eq, val = item.strip().partition("=")
        if key.strip():
            params.append((key.strip(), val.strip() if eq else None))
    return tuple(params)


def format_fmtp_parameters(params: FmtpParams) -> str:
    """Inverse of :func:`parse_fmtp_parameters`."""
    return ";".join(k if v is None else f"{k}={v}" for k, v in params)


def fmtp_get(params: FmtpParams, key: str) -> str | None:
    """Value of ``key`` (case-insensitive, as RFC 6184/7587 parameter names are), or None."""
    lowered = key.lower()
    for k, v in params:
        if k.lower() == lowered:
            return v
    return None


@dataclass(frozen=True, slots=True)
class RtcpFeedback:
    """One feedback kind (RFC 4585 §4.2): ``nack``, ``nack pli``, ``ccm fir``, ``transport-cc``."""

    type: str
    parameter: str | None = None

    def text(self) -> str:
        """``type[ parameter]``."""
        return self.type if self.parameter is None else f"{self.type} {self.parameter}"


@dataclass(frozen=True, slots=True)
class RtcpFeedbackAttr:
    """``a=rtcp-fb:<pt|*> <type> [<param>]``; ``payload_type`` None means ``*`` (all formats)."""

    payload_type: int | None
    feedback: RtcpFeedback

    @classmethod
    def parse(cls, value: str | None, line: int) -> RtcpFeedbackAttr:
        """Parse the attribute value."""
        parts = _require(value, "rtcp-fb", line).split()
        if len(parts) < 2:
            raise SdpError(
                f"bad a=rtcp-fb value {_clip(value or '')}: expected '<pt> <type>'", line
            )
        pt = None if parts[0] == "*" else _parse_payload_type(parts[0], line, "a=rtcp-fb")
        param = " ".join(parts[2:]) or None
        return cls(pt, RtcpFeedback(parts[1], param))

    def value(self) -> str:
        """The attribute value."""
        pt = "*" if self.payload_type is None else str(self.payload_type)
        return f"{pt} {self.feedback.text()}"


@dataclass(frozen=True, slots=True)
class ExtMap:
    """``a=extmap:<id>[/<direction>] <uri> [<attributes>]`` (RFC 8285 §8)."""

    id: int
    uri: str
    direction: Direction | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, value: str | None, line: int) -> ExtMap:
        """Parse the attribute value; ids 1-255 (the one- and two-byte header forms)."""
        parts = _require(value, "extmap", line).split(maxsplit=2)
        if len(parts) < 2:
            raise SdpError(f"bad a=extmap value {_clip(value or '')}: expected '<id> <uri>'", line)
        id_text, _, dir_text = parts[0].partition("/")
        ext_id = _int_in_range(id_text, 1, 255, "a=extmap id", line)
        direction = None
        if dir_text:
            if dir_text not in DIRECTION_NAMES:
                raise SdpError(f"bad a=extmap direction {_clip(dir_text)}", line)
            direction = Direction(dir_text)
        return cls(ext_id, parts[1], direction, parts[2] if len(parts) > 2 else None)

    def value(self) -> str:
        """The attribute value."""
        head = str(self.id) if self.direction is None else f"{self.id}/{self.direction}"
        tail = f" {self.attributes}" if self.attributes else ""
        return f"{head} {self.uri}{tail}"


HASH_SIZES: Final = {
    "md2": 16,
    "md5": 16,
    "sha-1": 20,
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}
"""Digest sizes of the RFC 8122 hash names; unknown names are parsed with any non-empty size."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash> <hex:hex:...>`` (RFC 8122): the DTLS certificate digest."""

    algorithm: str
    digest: bytes

    def __post_init__(self) -> None:
        size = HASH_SIZES.get(self.algorithm)
        if size is not None and len(self.digest) != size:
            raise SdpUsageError(f"{self.algorithm} digest must be {size} bytes")

    @classmethod
    def parse(cls, value: str | None, line: int) -> Fingerprint:
        """Parse the attribute value; the hash name is lower-cased, the hex may be any case."""
        parts = _require(value, "fingerprint", line).split()
        if len(parts) != 2:
            raise SdpError(f"bad a=fingerprint value {_clip(value or '')}", line)
        algorithm = parts[0].lower()
        pairs = parts[1].split(":")
        try:
            if not all(len(p) == 2 for p in pairs):
                raise ValueError
            digest = bytes.fromhex("".join(pairs))
        except ValueError:
            raise SdpError(
                f"a=fingerprint digest {_clip(parts[1])} is not colon-separated hex", line
            ) from None
        expected = HASH_SIZES.get(algorithm)
        if expected is not None and len(digest) != expected:
            raise SdpError(
                f"a=fingerprint {algorithm} digest has {len(digest)} bytes, expected {expected}",
                line,
            )
        return cls(algorithm, digest)

    def value(self) -> str:
        """The attribute value (upper-case hex, as browsers write it)."""
        return f"{self.algorithm} {self.digest.hex(':').upper()}"


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> <mid> ...`` (RFC 5888); BUNDLE's first mid is the tagged one."""

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, value: str | None, line: int) -> Group:
        """Parse the attribute value."""
        parts = _require(value, "group", line).split()
        return cls(parts[0], tuple(parts[1:]))

    def value(self) -> str:
        """The attribute value."""
        return " ".join((self.semantics, *self.mids))


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream id> [<track id>]`` (RFC 8830); stream ``-`` means no stream."""

    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, value: str | None, line: int) -> Msid:
        """Parse the attribute value."""
        parts = _require(value, "msid", line).split()
        if len(parts) > 2:
            raise SdpError(f"bad a=msid value {_clip(value or '')}: at most 2 ids", line)
        return cls(parts[0], parts[1] if len(parts) > 1 else None)

    def value(self) -> str:
        """The attribute value."""
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


@dataclass(frozen=True, slots=True)
class SsrcAttr:
    """``a=ssrc:<ssrc> <attribute>[:<value>]`` (RFC 5576), e.g. ``cname:xyz`` or ``msid:s t``."""

    ssrc: int
    attribute: str
    attr_value: str | None = None

    @classmethod
    def parse(cls, value: str | None, line: int) -> SsrcAttr:
        """Parse the attribute value."""
        ssrc_text, _, rest = _require(value, "ssrc", line).strip().partition(" ")
        ssrc = _int_in_range(ssrc_text, 0, 2**32 - 1, "a=ssrc id", line)
        name, colon, attr_value = rest.strip().partition(":")
        if not name:
            raise SdpError(f"bad a=ssrc value {_clip(value or '')}: missing attribute", line)
        return cls(ssrc, name, attr_value if colon else None)

    def value(self) -> str:
        """The attribute value."""
        tail = "" if self.attr_value is None else f":{self.attr_value}"
        return f"{self.ssrc} {self.attribute}{tail}"


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> <ssrc> ...``: FID pairs media with RTX, SIM lists layers."""

    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, value: str | None, line: int) -> SsrcGroup:
        """Parse the attribute value."""
        parts = _require(value, "ssrc-group", line).split()
        if len(parts) < 2:
            raise SdpError(f"bad a=ssrc-group value {_clip(value or '')}: no SSRCs", line)
        ssrcs = tuple(_int_in_range(p, 0, 2**32 - 1, "a=ssrc-group SSRC", line) for p in parts[1:])
        return cls(parts[0], ssrcs)

    def value(self) -> str:
        """The attribute value."""
        return " ".join((self.semantics, *map(str, self.ssrcs)))


def attr(name: str, value: object | None = None) -> Attribute:
    """Build an :class:`Attribute`; structured values are written through their ``value()``."""
    if value is None:
        return Attribute(name)
    writer = getattr(value, "value", None)
    return Attribute(name, writer() if callable(writer) else str(value))
