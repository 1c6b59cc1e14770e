"""The outcome of an offer/answer exchange, in the form the media plane consumes.

Both directions (publisher answer, subscriber offer + answer) end in a :class:`NegotiatedSession`:
the transport core takes ``remote`` (ICE credentials, fingerprints, DTLS role); the forwarder
takes each :class:`NegotiatedMedia` (payload types, RTX mapping, header extension ids, rids,
SSRCs) to classify and rewrite packets. The writer helpers here put codecs back into SDP the same
way for answers and offers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.sdp.attributes import (
    Direction,
    ExtMap,
    Fmtp,
    FmtpParams,
    Msid,
    RtcpFeedback,
    RtcpFeedbackAttr,
    Rtpmap,
    SsrcGroup,
)
from router.sdp.model import Attribute
from router.sdp.simulcast import Simulcast
from router.sdp.transport import RemoteTransport

__all__ = ["NegotiatedCodec", "NegotiatedMedia", "NegotiatedSession", "codec_attributes"]


@dataclass(frozen=True, slots=True)
class NegotiatedCodec:
    """A codec in use on one m-section, with the payload types of the side that sends it.

    ``rtx_payload_type`` is the RFC 4588 retransmission type whose ``apt`` is ``payload_type``.
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    parameters: FmtpParams = ()
    feedback: tuple[RtcpFeedback, ...] = ()
    rtx_payload_type: int | None = None

    def has_feedback(self, type_: str, parameter: str | None = None) -> bool:
        """True when ``a=rtcp-fb`` negotiated this feedback (e.g. ``("nack", "pli")``)."""
        return RtcpFeedback(type_, parameter) in self.feedback


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """One accepted m-section.

    ``direction`` is ours (a publisher section is ``recvonly``, a subscriber one ``sendonly``).
    ``rids`` are the simulcast layers the publisher sends (empty without simulcast); ``ssrcs``
    and ``ssrc_groups`` are the signalled ones (publishers using rids usually signal none).
    """

    mid: str
    kind: str
    direction: Direction
    codecs: tuple[NegotiatedCodec, ...]
    extensions: tuple[ExtMap, ...] = ()
    rids: tuple[str, ...] = ()
    simulcast: Simulcast | None = None
    ssrcs: tuple[int, ...] = ()
    ssrc_groups: tuple[SsrcGroup, ...] = ()
    cname: str | None = None
    msid: Msid | None = None
    rtcp_rsize: bool = False

    @property
    def codec(self) -> NegotiatedCodec:
        """The primary codec (the router negotiates exactly one per section)."""
        return self.codecs[0]

    def extension_id(self, uri: str) -> int | None:
        """The negotiated id of a header extension, or None."""
        return next((e.id for e in self.extensions if e.uri == uri), None)

    def rtx_map(self) -> dict[int, int]:
        """RTX payload type -> the payload type it repairs (apt)."""
        return {
            c.rtx_payload_type: c.payload_type
            for c in self.codecs
            if c.rtx_payload_type is not None
        }

    def rtx_ssrc(self, ssrc: int) -> int | None:
        """The RTX SSRC paired with ``ssrc`` by ``a=ssrc-group:FID``, or None."""
        for group in self.ssrc_groups:
            if group.semantics == "FID" and len(group.ssrcs) == 2 and group.ssrcs[0] == ssrc:
                return group.ssrcs[1]
        return None


@dataclass(frozen=True, slots=True)
class NegotiatedSession:
    """Everything negotiated with one peer connection."""

    remote: RemoteTransport
    media: tuple[NegotiatedMedia, ...]
    bundle: tuple[str, ...]
    rejected_mids: tuple[str, ...] = ()
    extmap_allow_mixed: bool = False
    inactive_stopped_mids: tuple[str, ...] = ()
    """Stopped (port-0) sections the answer kept on a live port with ``a=inactive``. RFC 3264
    §6 wants port 0 back; aiortc answers this way, and it means the same, so it is accepted
    and reported here for counting rather than refused."""

    def by_mid(self, mid: str) -> NegotiatedMedia | None:
        """The accepted section with ``mid``, or None."""
        return next((m for m in self.media if m.mid == mid), None)


def codec_attributes(codecs: Iterable[NegotiatedCodec]) -> list[Attribute]:
    """rtpmap, rtcp-fb and fmtp per codec, then its RTX (``apt``) — the order browsers write."""
    out: list[Attribute] = []
    for codec in codecs:
        pt = codec.payload_type
        out.append(
            Attribute("rtpmap", Rtpmap(pt, codec.name, codec.clock_rate, codec.channels).value())
        )
        out.extend(Attribute("rtcp-fb", RtcpFeedbackAttr(pt, fb).value()) for fb in codec.feedback)
        if codec.parameters:
            out.append(Attribute("fmtp", Fmtp(pt, codec.parameters).value()))
        if codec.rtx_payload_type is not None:
            rtx = codec.rtx_payload_type
            out.append(Attribute("rtpmap", Rtpmap(rtx, "rtx", codec.clock_rate).value()))
            out.append(Attribute("fmtp", Fmtp(rtx, (("apt", str(pt)),)).value()))
    return out


def payload_types(codecs: Iterable[NegotiatedCodec]) -> tuple[str, ...]:
    """The ``m=`` line formats for ``codecs`` (each followed by its RTX type)."""
    out: list[str] = []
    for codec in codecs:
        out.append(str(codec.payload_type))
        if codec.rtx_payload_type is not None:
            out.append(str(codec.rtx_payload_type))
    return tuple(out)
