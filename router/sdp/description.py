"""Structured, validated view of a parsed SDP: what the SFU needs from each m-section.

:func:`describe` turns the lossless text model into frozen dataclasses (codecs with their fmtp
and rtcp-fb, extensions, rids/simulcast, SSRCs, transport parameters), checking the semantic
rules whose violation would otherwise surface later as a baffling media failure: duplicate mids,
BUNDLE groups naming unknown mids, rtpmaps that contradict each other, simulcast naming rids that
were never declared. Every failure is an :class:`SdpError` naming the line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from router.sdp.attributes import (
    DIRECTION_NAMES,
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    FmtpParams,
    Group,
    Msid,
    RtcpFeedback,
    RtcpFeedbackAttr,
    Rtpmap,
    Setup,
    SsrcAttr,
    SsrcGroup,
    fmtp_get,
)
from router.sdp.candidate import Candidate
from router.sdp.errors import SdpError
from router.sdp.model import Attribute, MediaDescription, Origin, SessionDescription, _clip
from router.sdp.simulcast import Rid, Simulcast

__all__ = [
    "MediaInfo",
    "RtpCodec",
    "SessionInfo",
    "TransportInfo",
    "describe",
]

STATIC_PAYLOAD_TYPES: Final = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
}
"""RFC 3551 static payload types a WebRTC offer may list without an rtpmap."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RtpCodec:
    """One payload type of an m-section, with its rtpmap, fmtp and rtcp-fb folded in."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    parameters: FmtpParams = ()
    feedback: tuple[RtcpFeedback, ...] = ()

    def param(self, key: str) -> str | None:
        """An fmtp parameter (case-insensitive key), or None."""
        return fmtp_get(self.parameters, key)

    @property
    def apt(self) -> int | None:
        """For RTX (RFC 4588): the payload type this one retransmits, or None."""
        value = self.param("apt")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """ICE and DTLS parameters of an m-section (media level, else session level)."""

    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: Setup | None = None
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """Everything the offer/answer logic reads from one m-section."""

    index: int
    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    mid: str | None
    direction: Direction
    bundle_only: bool
    rtcp_mux: bool
    rtcp_rsize: bool
    codecs: tuple[RtpCodec, ...]
    extensions: tuple[ExtMap, ...]
    rids: tuple[Rid, ...]
    simulcast: Simulcast | None
    msid: Msid | None
    ssrcs: tuple[SsrcAttr, ...]
    ssrc_groups: tuple[SsrcGroup, ...]
    transport: TransportInfo
    line: int

    @property
    def rejected(self) -> bool:
        """Port 0 without ``bundle-only`` (RFC 8843 §6): the section is off."""
        return self.port == 0 and not self.bundle_only

    def codec(self, payload_type: int) -> RtpCodec | None:
        """The codec with ``payload_type``, or None."""
        return next((c for c in self.codecs if c.payload_type == payload_type), None)

    def ssrc_list(self) -> tuple[int, ...]:
        """Distinct signalled SSRCs in order of first mention."""
        return tuple(dict.fromkeys(s.ssrc for s in self.ssrcs))


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Session-level facts plus one :class:`MediaInfo` per m-section, in order."""

    origin: Origin
    ice_lite: bool
    extmap_allow_mixed: bool
    bundle_groups: tuple[Group, ...]
    media: tuple[MediaInfo, ...]

    def by_mid(self, mid: str) -> MediaInfo | None:
        """The m-section with ``mid``, or None."""
        return next((m for m in self.media if m.mid == mid), None)

    def bundle_group_of(self, mid: str) -> Group | None:
        """The BUNDLE group containing ``mid``, or None."""
        return next((g for g in self.bundle_groups if mid in g.mids), None)


def _parse_all(attrs: tuple[Attribute, ...], parser: Callable[[str | None, int], T]) -> list[T]:
    return [parser(a.value, a.line) for a in attrs]


def _codecs(media: MediaDescription) -> tuple[RtpCodec, ...]:
    rtpmaps: dict[int, Rtpmap] = {}
    for attribute in media.get_all("rtpmap"):
        rtpmap = Rtpmap.parse(attribute.value, attribute.line)
        old = rtpmaps.get(rtpmap.payload_type)
        if old is not None and old != rtpmap:
            raise SdpError(
                f"conflicting a=rtpmap lines for payload type {rtpmap.payload_type}", attribute.line
            )
        rtpmaps[rtpmap.payload_type] = rtpmap
    fmtps: dict[int, FmtpParams] = {}
    for fmtp in _parse_all(media.get_all("fmtp"), Fmtp.parse):
        fmtps[fmtp.payload_type] = fmtps.get(fmtp.payload_type, ()) + fmtp.parameters
    feedback: dict[int | None, list[RtcpFeedback]] = {}
    for fb in _parse_all(media.get_all("rtcp-fb"), RtcpFeedbackAttr.parse):
        entries = feedback.setdefault(fb.payload_type, [])
        if fb.feedback not in entries:
            entries.append(fb.feedback)
    codecs = []
    for fmt in media.formats:
        pt = int(fmt)
        mapped = rtpmaps.get(pt)
        if mapped is not None:
            name, clock, channels = mapped.name, mapped.clock_rate, mapped.channels
        elif pt in STATIC_PAYLOAD_TYPES:
            name, clock, channels = STATIC_PAYLOAD_TYPES[pt]
        else:
            continue  # dynamic type without rtpmap: unusable, so never chosen
        fbs = feedback.get(pt, []) + [
            f for f in feedback.get(None, []) if f not in feedback.get(pt, [])
        ]
        codecs.append(RtpCodec(pt, name, clock, channels, fmtps.get(pt, ()), tuple(fbs)))
    return tuple(codecs)


def _direction(media: MediaDescription, session: SessionDescription) -> Direction:
    found = [a for a in media.attributes if a.name in DIRECTION_NAMES]
    if len({a.name for a in found}) > 1:
        raise SdpError(
            f"conflicting direction attributes in m-section (a={found[1].name})", found[1].line
        )
    if found:
        return Direction(found[0].name)
    session_level = [a for a in session.attributes if a.name in DIRECTION_NAMES]
    return Direction(session_level[0].name) if session_level else Direction.SENDRECV


def _value(media: MediaDescription, session: SessionDescription, name: str) -> Attribute | None:
    return media.get(name) or session.get(name)


def _transport(media: MediaDescription, session: SessionDescription) -> TransportInfo:
    ufrag = _value(media, session, "ice-ufrag")
    pwd = _value(media, session, "ice-pwd")
    options = _value(media, session, "ice-options")
    fingerprints = media.get_all("fingerprint") or session.get_all("fingerprint")
    setup = _value(media, session, "setup")
    for attribute in (ufrag, pwd):
        if attribute is not None and not (attribute.value or "").strip():
            raise SdpError(f"a={attribute.name} needs a value", attribute.line)
    return TransportInfo(
        ice_ufrag=ufrag.value.strip() if ufrag and ufrag.value else None,
        ice_pwd=pwd.value.strip() if pwd and pwd.value else None,
        ice_options=tuple((options.value or "").split()) if options else (),
        fingerprints=tuple(_parse_all(fingerprints, Fingerprint.parse)),
        setup=Setup.parse(setup.value, setup.line) if setup else None,
        candidates=tuple(_parse_all(media.get_all("candidate"), Candidate.parse)),
        end_of_candidates=media.has("end-of-candidates") or session.has("end-of-candidates"),
    )


def _one(media: MediaDescription, name: str, parser: Callable[[str | None, int], T]) -> T | None:
    found = media.get_all(name)
    if len(found) > 1:
        raise SdpError(f"more than one a={name} in one m-section", found[1].line)
    return parser(found[0].value, found[0].line) if found else None


def _mid(value: str | None, line: int) -> str:
    mid = (value or "").strip()
    if not mid or any(ch.isspace() for ch in mid) or len(mid) > 255:
        raise SdpError(f"bad a=mid value {_clip(value or '')}", line)
    return mid


def _check_rids(media: MediaDescription, rids: list[Rid], simulcast: Simulcast | None) -> None:
    seen: dict[str, Rid] = {}
    for rid, attribute in zip(rids, media.get_all("rid"), strict=True):
        if rid.id in seen:
            raise SdpError(f"duplicate a=rid:{rid.id}", attribute.line)
        seen[rid.id] = rid
    if simulcast is None:
        return
    line = media.get_all("simulcast")[0].line
    for direction in ("send", "recv"):
        for rid_id in simulcast.rids(direction):
            declared = seen.get(rid_id)
            if declared is None or declared.direction != direction:
                raise SdpError(
                    f"a=simulcast {direction} names rid {rid_id!r} without a matching "
                    f"'a=rid:{rid_id} {direction}' line",
                    line,
                )


def _describe_media(index: int, media: MediaDescription, session: SessionDescription) -> MediaInfo:
    extensions = _parse_all(session.get_all("extmap") + media.get_all("extmap"), ExtMap.parse)
    ids: dict[int, str] = {}
    for ext, attribute in zip(
        extensions, session.get_all("extmap") + media.get_all("extmap"), strict=True
    ):
        if ids.get(ext.id, ext.uri) != ext.uri:
            raise SdpError(f"a=extmap id {ext.id} is used for two extensions", attribute.line)
        ids[ext.id] = ext.uri
    rids = _parse_all(media.get_all("rid"), Rid.parse)
    simulcast = _one(media, "simulcast", Simulcast.parse)
    _check_rids(media, rids, simulcast)
    return MediaInfo(
        index=index,
        kind=media.kind,
        port=media.port,
        proto=media.proto,
        formats=media.formats,
        mid=_one(media, "mid", _mid),
        direction=_direction(media, session),
        bundle_only=media.has("bundle-only"),
        rtcp_mux=media.has("rtcp-mux"),
        rtcp_rsize=media.has("rtcp-rsize"),
        codecs=_codecs(media) if media.is_rtp else (),
        extensions=tuple(extensions),
        rids=tuple(rids),
        simulcast=simulcast,
        msid=_one(media, "msid", Msid.parse),
        ssrcs=tuple(_parse_all(media.get_all("ssrc"), SsrcAttr.parse)),
        ssrc_groups=tuple(_parse_all(media.get_all("ssrc-group"), SsrcGroup.parse)),
        transport=_transport(media, session),
        line=media.line,
    )


def describe(desc: SessionDescription) -> SessionInfo:
    """Validate and structure a parsed SDP; raises only :class:`SdpError`."""
    media = tuple(_describe_media(i, m, desc) for i, m in enumerate(desc.media))
    mid_lines: dict[str, int] = {}
    for info, source in zip(media, desc.media, strict=True):
        mid_attribute = source.get("mid")
        if info.mid is None or mid_attribute is None:
            continue
        if info.mid in mid_lines:
            raise SdpError(
                f"duplicate a=mid:{info.mid} (first at line {mid_lines[info.mid]})",
                mid_attribute.line,
            )
        mid_lines[info.mid] = mid_attribute.line
    groups = []
    grouped: dict[str, int] = {}
    for attribute in desc.get_all("group"):
        group = Group.parse(attribute.value, attribute.line)
        if group.semantics != "BUNDLE":
            continue
        for mid in group.mids:
            if mid not in mid_lines:
                raise SdpError(
                    f"a=group:BUNDLE names mid {mid!r} that no m-section has", attribute.line
                )
            if mid in grouped:
                raise SdpError(f"mid {mid!r} is in two BUNDLE groups", attribute.line)
            grouped[mid] = attribute.line
        groups.append(group)
    return SessionInfo(
        origin=desc.origin,
        ice_lite=desc.has("ice-lite"),
        extmap_allow_mixed=desc.has("extmap-allow-mixed")
        or any(m.has("extmap-allow-mixed") for m in desc.media),
        bundle_groups=tuple(groups),
        media=media,
    )
