"""The router as JSEP answerer (RFC 8829 §5.3) to a publisher's offer.

The router is an ICE-lite SFU on one UDP port, so every accepted m-section must share one
transport: it answers ``a=ice-lite``, bundles every accepted section into the offer's first
BUNDLE group, requires rtcp-mux, and rejects (port 0, RFC 3264 §6) what it cannot receive:
sections outside that group, non-DTLS-SRTP protocols, data channels (not yet), and media with no
supported codec. Per accepted section it receives exactly one codec (see
:mod:`router.sdp.capabilities` for why) plus its RTX, the supported feedback and header
extensions under the offerer's ids, and ``a=simulcast:recv`` mirroring the offered send rids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from router.sdp.attributes import Direction, ExtMap, Group, Msid
from router.sdp.capabilities import (
    DEFAULT_CAPABILITIES,
    RTP_STREAM_ID,
    TRANSPORT_WIDE_CC,
    Capabilities,
    CodecCapability,
)
from router.sdp.description import MediaInfo, RtpCodec, describe
from router.sdp.errors import SdpError
from router.sdp.model import Attribute, MediaDescription, Origin, SessionDescription, parse_sdp
from router.sdp.negotiated import (
    NegotiatedCodec,
    NegotiatedMedia,
    NegotiatedSession,
    codec_attributes,
    payload_types,
)
from router.sdp.simulcast import Rid, Simulcast
from router.sdp.transport import LocalTransportParams, answer_setup, remote_transport

__all__ = ["DTLS_SRTP_PROTOS", "PublisherAnswer", "answer_publisher_offer", "rejected_section"]

DTLS_SRTP_PROTOS: Final = frozenset({"UDP/TLS/RTP/SAVPF", "TCP/DTLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP"})
"""Protos carrying DTLS-keyed SRTP (RFC 5764): the only media the router can decrypt."""
MEDIA_KINDS: Final = frozenset({"audio", "video"})


@dataclass(frozen=True, slots=True)
class PublisherAnswer:
    """The answer to send back and what it negotiated; ``text`` is the SDP for signaling."""

    sdp: SessionDescription
    negotiated: NegotiatedSession
    rejected: tuple[tuple[str, str], ...] = ()
    """(mid or ``#index``, reason) for every section answered with port 0, for logs and clients."""

    @property
    def text(self) -> str:
        """The answer's wire form."""
        return str(self.sdp)


def rejected_section(offered: MediaInfo) -> MediaDescription:
    """Port 0 with the offer's proto and formats, ``c=`` and mid only (JSEP §5.3.1)."""
    attributes = [Attribute("mid", offered.mid)] if offered.mid is not None else []
    return MediaDescription(
        offered.kind, 0, offered.proto, offered.formats[:1] or ("0",),
        fields=(("c", "IN IP4 0.0.0.0"),),
        attributes=(*attributes, Attribute(Direction.INACTIVE.value)),
    )  # fmt: skip


def _choose_codec(media: MediaInfo, caps: Capabilities) -> tuple[CodecCapability, RtpCodec] | None:
    """The first capability (router preference) that some offered codec matches."""
    for cap in caps.codecs:
        if cap.kind != media.kind:
            continue
        for codec in media.codecs:
            if cap.matches(codec):
                return cap, codec
    return None


def _extensions(media: MediaInfo, caps: Capabilities) -> tuple[ExtMap, ...]:
    """Supported offered extensions under the offerer's ids; directions mirrored (RFC 8285 §7)."""
    out: list[ExtMap] = []
    for ext in media.extensions:
        if caps.extension(ext.uri, media.kind) is None or any(e.id == ext.id for e in out):
            continue
        if ext.direction in (Direction.RECVONLY, Direction.INACTIVE):
            continue  # the offerer would not send it and the router sends nothing here
        direction = Direction.RECVONLY if ext.direction is Direction.SENDONLY else None
        out.append(ExtMap(ext.id, ext.uri, direction))
    return tuple(out)


def _negotiate_codec(
    media: MediaInfo, cap: CodecCapability, offered: RtpCodec, caps: Capabilities, twcc: bool
) -> NegotiatedCodec:
    feedback = tuple(
        fb for fb in offered.feedback
        if fb in cap.feedback and (twcc or fb.type != "transport-cc")
    )  # fmt: skip
    rtx = None
    if caps.rtx and cap.rtx_payload_type is not None:
        rtx = next(
            (c.payload_type for c in media.codecs
             if c.name.lower() == "rtx" and c.clock_rate == offered.clock_rate
             and c.apt == offered.payload_type),
            None,
        )  # fmt: skip
    return NegotiatedCodec(
        offered.payload_type, offered.name, offered.clock_rate, offered.channels,
        offered.parameters, feedback, rtx,
    )  # fmt: skip


def _simulcast(media: MediaInfo, extensions: tuple[ExtMap, ...]) -> Simulcast | None:
    """The offered send simulcast, when the router can tell its layers apart by rid."""
    if media.simulcast is None or not media.simulcast.send or not media.direction.sends:
        return None
    if not any(e.uri == RTP_STREAM_ID for e in extensions):
        return None
    return Simulcast(send=media.simulcast.send)


def _answer_media(
    media: MediaInfo,
    chosen: tuple[CodecCapability, RtpCodec],
    local: LocalTransportParams,
    setup_attrs: list[Attribute],
    caps: Capabilities,
) -> tuple[MediaDescription, NegotiatedMedia]:
    assert media.mid is not None
    cap, offered = chosen
    extensions = _extensions(media, caps)
    twcc = any(e.uri == TRANSPORT_WIDE_CC for e in extensions)
    codec = _negotiate_codec(media, cap, offered, caps, twcc)
    answered = NegotiatedCodec(
        codec.payload_type, codec.name, codec.clock_rate, codec.channels,
        cap.answer_parameters(offered), codec.feedback, codec.rtx_payload_type,
    )  # fmt: skip
    direction = Direction.RECVONLY if media.direction.sends else Direction.INACTIVE
    simulcast = _simulcast(media, extensions)
    attributes: list[Attribute] = [*setup_attrs, Attribute("mid", media.mid)]
    attributes += [Attribute("extmap", e.value()) for e in extensions]
    attributes.append(Attribute(direction.value))
    attributes.append(Attribute("rtcp-mux"))
    if media.rtcp_rsize:
        attributes.append(Attribute("rtcp-rsize"))
    attributes += codec_attributes([answered])
    if simulcast is not None:
        rids = simulcast.rids("send")
        attributes += [Attribute("rid", Rid(r, "recv").value()) for r in rids]
        attributes.append(Attribute("simulcast", simulcast.reversed().value()))
    attributes += local.candidate_attributes()
    port = local.connection()[1]
    section = MediaDescription(
        media.kind, port, media.proto, payload_types([answered]),
        fields=(local.connection_field(),), attributes=tuple(attributes),
    )  # fmt: skip
    negotiated = NegotiatedMedia(
        mid=media.mid, kind=media.kind, direction=direction, codecs=(codec,),
        extensions=extensions, rids=simulcast.rids("send") if simulcast else (),
        simulcast=simulcast, ssrcs=media.ssrc_list(), ssrc_groups=media.ssrc_groups,
        cname=next((s.attr_value for s in media.ssrcs if s.attribute == "cname"), None),
        msid=media.msid or _ssrc_msid(media), rtcp_rsize=media.rtcp_rsize,
    )  # fmt: skip
    return section, negotiated


def _ssrc_msid(media: MediaInfo) -> Msid | None:
    """Legacy ``a=ssrc:<n> msid:<stream> <track>`` when no media-level ``a=msid`` exists."""
    for ssrc in media.ssrcs:
        if ssrc.attribute == "msid" and ssrc.attr_value:
            return Msid.parse(ssrc.attr_value, 0)
    return None


def _rejection(
    media: MediaInfo, group: Group | None, caps: Capabilities, taken: bool
) -> str | None:
    """Why the router rejects this section, or None to accept it."""
    if media.rejected:
        return "rejected by the offerer (port 0)"
    if media.kind not in MEDIA_KINDS:
        return f"{media.kind} sections are not supported yet"
    if media.proto not in DTLS_SRTP_PROTOS:
        return f"protocol {media.proto} is not DTLS-SRTP"
    if not media.rtcp_mux:
        return "a=rtcp-mux is required"
    if group is not None and media.mid not in group.mids:
        return "not in the offer's BUNDLE group"
    if group is None and taken:
        return "no BUNDLE group, and the router uses a single transport"
    if _choose_codec(media, caps) is None:
        return "no supported codec"
    return None


def answer_publisher_offer(
    offer: str | bytes | SessionDescription,
    local: LocalTransportParams,
    capabilities: Capabilities = DEFAULT_CAPABILITIES,
    *,
    session_version: int = 1,
) -> PublisherAnswer:
    """Answer a publisher's offer; raises only :class:`SdpError` on bad or unusable offers."""
    desc = offer if isinstance(offer, SessionDescription) else parse_sdp(offer)
    info = describe(desc)
    group = info.bundle_groups[0] if info.bundle_groups else None
    for media in info.media:
        if media.mid is None and not media.rejected and media.kind in MEDIA_KINDS:
            raise SdpError("m-section has no a=mid (WebRTC offers must carry one)", media.line)
    tag = info.by_mid(group.mids[0]) if group and group.mids else None
    decisions = []
    taken = False
    for media in info.media:
        reason = _rejection(media, group, capabilities, taken)
        taken = taken or reason is None
        decisions.append(reason)
    accepted = [m for m, reason in zip(info.media, decisions, strict=True) if reason is None]
    transport_media = tag if tag is not None and not tag.rejected else None
    if transport_media is None:
        transport_media = accepted[0] if accepted else None
    if transport_media is None:
        transport_media = next((m for m in info.media if not m.rejected), None)
    if transport_media is None:
        raise SdpError("the offer has no usable m-section")
    setup = answer_setup(transport_media.transport.setup, local.answer_setup, transport_media.line)
    remote = remote_transport(info, transport_media, our_setup=setup, is_offer=True)
    setup_attrs = local.transport_attributes(setup)

    sections: list[MediaDescription] = []
    negotiated: list[NegotiatedMedia] = []
    rejected: list[tuple[str, str]] = []
    for media, reason in zip(info.media, decisions, strict=True):
        chosen = _choose_codec(media, capabilities) if reason is None else None
        if chosen is None:
            sections.append(rejected_section(media))
            rejected.append((media.mid or f"#{media.index}", reason or "no supported codec"))
            continue
        section, result = _answer_media(media, chosen, local, setup_attrs, capabilities)
        sections.append(section)
        negotiated.append(result)
    bundle = tuple(m.mid for m in negotiated)
    session_attributes = [Attribute("ice-lite")]
    if info.extmap_allow_mixed:
        session_attributes.append(Attribute("extmap-allow-mixed"))
    if group is not None and bundle:
        session_attributes.append(Attribute("group", Group("BUNDLE", bundle).value()))
    session_attributes.append(Attribute("msid-semantic", " WMS"))
    answer = SessionDescription(
        origin=Origin("-", local.origin_session_id(), session_version, "IN", "IP4", "127.0.0.1"),
        attributes=tuple(session_attributes),
        media=tuple(sections),
    )
    session = NegotiatedSession(
        remote=remote,
        media=tuple(negotiated),
        bundle=bundle if group is not None else (),
        rejected_mids=tuple(m for m, _ in rejected if not m.startswith("#")),
        extmap_allow_mixed=info.extmap_allow_mixed,
    )
    return PublisherAnswer(answer, session, tuple(rejected))
