"""The router as JSEP offerer (RFC 8829 §5.2) to a subscriber, and renegotiation.

A subscriber's peer connection receives every track it is subscribed to, one ``sendonly``
m-section per track, all bundled on the router's ICE-lite transport. The offer/answer state is a
:class:`SubscriberPlan` value: :meth:`SubscriberPlan.with_tracks` turns a new track set into
m-section slots, :func:`build_subscriber_offer` writes the offer, and
:func:`apply_subscriber_answer` checks the subscriber's answer and frees slots.

Slot rule (JSEP §5.2.2 recycling): a track keeps its mid for its whole life. A removed track's
section is offered with port 0 under its old mid; once an answer to that offer is applied, the
slot is free and the next new track *of the same kind* takes it over under a fresh mid. With no
free slot, new tracks append. So an SDP stays as long as the peak track count, a stopped mid is
never reused, and browsers never see a section change kind.

Tag rule (RFC 8843 §7.2, JSEP §5.2.1): the first mid of the BUNDLE group, the *tag*, names the
section whose transport the whole group uses. If the tagged section is stopped, the tag moves to
another section, and Chromium (``max-bundle``) then tears down the group's DTLS transport
(close_notify) and starts a new one, which the router sees as the subscriber's transport closing.
So the tag stays stable for the connection's life: the group is written tag first, and the
tagged section is never stopped. When its track goes, it is *parked*: it keeps its live port and
its place in the group and is offered ``a=inactive`` without msid or SSRCs. A parked section
never carries a new track: that would change the SSRCs of a live section, which aiortc (1.x)
does not follow (its receiver keeps the first SSRCs it was given), and the browser would hand the
page the old receiver's track object for a different participant. So a track keeps its mid for
its whole life, and a parked tag costs one idle m-section. The same section also keeps the group
non-empty when no track is left (RFC 8843 §7.3.3; Chromium refuses an offer with no BUNDLE group:
"max-bundle is used but no bundle group found").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from router.sdp.answer import DTLS_SRTP_PROTOS
from router.sdp.attributes import Direction, ExtMap, Group, Msid, Setup, SsrcGroup
from router.sdp.capabilities import DEFAULT_CAPABILITIES, Capabilities
from router.sdp.description import MediaInfo, SessionInfo, describe
from router.sdp.errors import SdpError, SdpUsageError
from router.sdp.model import Attribute, MediaDescription, Origin, SessionDescription, parse_sdp
from router.sdp.negotiated import (
    NegotiatedCodec,
    NegotiatedMedia,
    NegotiatedSession,
    codec_attributes,
    payload_types,
)
from router.sdp.transport import LocalTransportParams, RemoteTransport, remote_transport

__all__ = [
    "MediaSlot",
    "OutgoingTrack",
    "SubscriberPlan",
    "apply_subscriber_answer",
    "build_subscriber_offer",
    "subscriber_codec",
]

PROTO = "UDP/TLS/RTP/SAVPF"


@dataclass(frozen=True, slots=True)
class OutgoingTrack:
    """A track the router sends to one subscriber.

    ``codec`` is in the subscriber's numbering (see :func:`subscriber_codec`); ``ssrc`` and
    ``rtx_ssrc`` are the router's per-subscriber rewritten SSRCs; ``participant`` becomes the
    RTCP CNAME so the browser lip-syncs a participant's audio with their video.
    """

    track_id: str
    kind: str
    stream_id: str
    participant: str
    codec: NegotiatedCodec
    ssrc: int
    rtx_ssrc: int | None = None

    def __post_init__(self) -> None:
        for name in ("track_id", "stream_id", "participant"):
            value = getattr(self, name)
            if not value or any(ch.isspace() or ord(ch) < 33 or ord(ch) > 126 for ch in value):
                raise SdpUsageError(f"{name} must be a non-empty token without spaces: {value!r}")
        if self.kind not in ("audio", "video"):
            raise SdpUsageError(f"track kind must be audio or video, not {self.kind!r}")
        for ssrc in (self.ssrc, self.rtx_ssrc):
            if ssrc is not None and not 1 <= ssrc < 2**32:
                raise SdpUsageError(f"SSRC {ssrc} is out of range")
        if (self.rtx_ssrc is None) != (self.codec.rtx_payload_type is None):
            raise SdpUsageError("rtx_ssrc and codec.rtx_payload_type go together")


@dataclass(frozen=True, slots=True)
class MediaSlot:
    """One m-section position. ``track`` None means port 0 unless ``parked``; ``free`` means an
    answer saw it at port 0 (the slot may be recycled under a fresh mid).

    ``parked``: no track, but a live inactive section kept as the BUNDLE anchor (see the module
    docstring). ``last_codec`` is the codec the slot last carried: a stopped section is still
    written with its rtpmap/fmtp, because some answerers (aiortc) refuse a payload type with no
    rtpmap even in a port-0 section.
    """

    mid: str
    kind: str
    track: OutgoingTrack | None
    free: bool = False
    last_codec: NegotiatedCodec | None = None
    parked: bool = False


@dataclass(frozen=True, slots=True)
class SubscriberPlan:
    """Offer/answer state of one subscriber connection (immutable; each step returns a new one)."""

    slots: tuple[MediaSlot, ...] = ()
    next_mid: int = 0
    version: int = 0
    awaiting_answer: bool = False
    remote: RemoteTransport | None = None
    """The subscriber's transport from the last applied answer (kept when all tracks go)."""
    tag: str | None = None
    """The BUNDLE tag: the mid whose section carries the group's transport (see the tag rule);
    set by the first offer with a live section, kept until the subscriber rejects it."""

    def with_tracks(self, tracks: Iterable[OutgoingTrack]) -> SubscriberPlan:
        """The plan for a new full track set (see the module docstring for the slot rule)."""
        wanted = {t.track_id: t for t in tracks}
        slots: list[MediaSlot] = []
        vacated: list[int] = []
        for slot in self.slots:
            track = wanted.pop(slot.track.track_id, None) if slot.track else None
            if track is not None and track.kind != slot.kind:
                raise SdpUsageError(f"track {track.track_id} changed kind")
            if track is None and slot.track is not None:
                vacated.append(len(slots))
                slot = replace(slot, track=None, free=False)
            if track is not None:
                slot = replace(slot, track=track, last_codec=track.codec)
            slots.append(slot)
        next_mid = self.next_mid
        for track in wanted.values():
            index = next(
                (
                    i
                    for i, s in enumerate(slots)
                    if s.free and s.track is None and s.kind == track.kind
                ),
                None,
            )
            new = MediaSlot(str(next_mid), track.kind, track, last_codec=track.codec)
            next_mid += 1
            if index is None:
                slots.append(new)
            else:
                slots[index] = new
        tag = self.tag if self.tag is not None else next(
            (s.mid for s in slots if s.track is not None), None
        )
        _keep_tag(slots, tag)
        _check_payload_types(slots)
        return replace(self, slots=tuple(slots), next_mid=next_mid, tag=tag)

    def active(self) -> tuple[MediaSlot, ...]:
        """Slots carrying a track."""
        return tuple(s for s in self.slots if s.track is not None)

    def bundled(self) -> tuple[MediaSlot, ...]:
        """Slots in the BUNDLE group, the tag first: those carrying a track, and a parked tag."""
        live = [s for s in self.slots if s.track is not None or s.parked]
        live.sort(key=lambda s: s.mid != self.tag)
        return tuple(live)


def _keep_tag(slots: list[MediaSlot], tag: str | None) -> None:
    """Apply the tag rule in place: the tagged section, if its track went, is parked (never
    stopped); no other section is parked.

    Only a section the subscriber still has live can be parked: a port-0 section cannot come
    back under its mid. A plan with no live section at all (every section stopped or rejected)
    offers nothing new, so the session never sends it (see ``Negotiator.offer``).
    """
    for i, slot in enumerate(slots):
        if slot.mid == tag and slot.track is None and not slot.free:
            slots[i] = replace(slot, parked=True)
        elif slot.parked and slot.mid != tag:
            slots[i] = replace(slot, parked=False)  # stopped: port 0, freed by the answer


def _check_payload_types(slots: list[MediaSlot]) -> None:
    """RFC 8843 §9.1: in one BUNDLE group a payload type must mean one codec everywhere."""
    seen: dict[int, tuple[str, int, object]] = {}
    entries: list[tuple[int, tuple[str, int, object]]]
    for slot in slots:
        codec = slot.track.codec if slot.track is not None else slot.last_codec
        if codec is None or (slot.track is None and not slot.parked):
            continue
        entries = [(codec.payload_type, (codec.name.lower(), codec.clock_rate, codec.parameters))]
        if codec.rtx_payload_type is not None:
            entries.append((codec.rtx_payload_type, ("rtx", codec.clock_rate, codec.payload_type)))
        for pt, key in entries:
            if seen.setdefault(pt, key) != key:
                raise SdpUsageError(f"payload type {pt} would mean two codecs in one BUNDLE group")


def subscriber_codec(
    publisher: NegotiatedCodec, capabilities: Capabilities = DEFAULT_CAPABILITIES
) -> NegotiatedCodec:
    """A publisher's codec renumbered with the router's payload types for subscribers."""
    cap = capabilities.codec_like(publisher.name, publisher.clock_rate, publisher.parameters)
    if cap is None:
        raise SdpUsageError(f"codec {publisher.name}/{publisher.clock_rate} has no capability")
    rtx = cap.rtx_payload_type if capabilities.rtx else None
    # transport-cc goes with the transport-wide-cc extension subscriber offers carry;
    # goog-remb with abs-send-time stays for subscribers that accept only that.
    feedback = cap.feedback
    return NegotiatedCodec(
        cap.payload_type, cap.name, cap.clock_rate, cap.channels, cap.parameters, feedback, rtx
    )


def _offer_extensions(kind: str, capabilities: Capabilities) -> tuple[ExtMap, ...]:
    return tuple(
        ExtMap(e.offer_id, e.uri) for e in capabilities.extensions
        if e.offer_id is not None and kind in e.kinds
    )  # fmt: skip


_PLACEHOLDER_CODECS: Final = {
    "audio": NegotiatedCodec(0, "PCMU", 8000),
    "video": NegotiatedCodec(96, "VP8", 90000),
}
"""For a slot built by hand without ``last_codec`` (``with_tracks`` always sets it)."""


def _stopped_section(slot: MediaSlot, local: LocalTransportParams) -> MediaDescription:
    """A removed track's section: port 0, ``inactive``, but still a complete m-section.

    RFC 8829 §5.2.2 only needs ``m=``/``c=``/``a=mid`` here, and Chromium accepts that; aiortc
    (1.16) parses every section as a full one and refuses an offer whose section lacks
    ice-ufrag/ice-pwd, ``a=rtcp-mux`` or an rtpmap for the listed payload type. Chromium writes
    its own stopped sections with the transport attributes too, so this shape suits both.
    The codec's rtcp-fb and RTX lines are left out: nothing is negotiated for a stopped section.
    """
    codec = slot.last_codec or _PLACEHOLDER_CODECS[slot.kind]
    codec = replace(codec, feedback=(), rtx_payload_type=None)
    attributes = [*local.transport_attributes(Setup.ACTPASS), Attribute("mid", slot.mid)]
    attributes += [Attribute(Direction.INACTIVE.value), Attribute("rtcp-mux")]
    attributes += codec_attributes([codec])
    return MediaDescription(
        slot.kind, 0, PROTO, payload_types([codec]), fields=(("c", "IN IP4 0.0.0.0"),),
        attributes=tuple(attributes),
    )  # fmt: skip


def _parked_section(
    slot: MediaSlot, local: LocalTransportParams, caps: Capabilities
) -> MediaDescription:
    """The BUNDLE anchor with no track: a live, ``inactive`` section with the transport,
    extensions and the codec it last carried, but no msid and no SSRCs (nothing is sent)."""
    codec = slot.last_codec or _PLACEHOLDER_CODECS[slot.kind]
    attributes = [*local.transport_attributes(Setup.ACTPASS), Attribute("mid", slot.mid)]
    attributes += [Attribute("extmap", e.value()) for e in _offer_extensions(slot.kind, caps)]
    attributes += [Attribute(Direction.INACTIVE.value), Attribute("rtcp-mux")]
    attributes += [Attribute("rtcp-rsize"), *codec_attributes([codec])]
    attributes += local.candidate_attributes()
    return MediaDescription(
        slot.kind, local.connection()[1], PROTO, payload_types([codec]),
        fields=(local.connection_field(),), attributes=tuple(attributes),
    )  # fmt: skip


def _section(slot: MediaSlot, local: LocalTransportParams, caps: Capabilities) -> MediaDescription:
    track = slot.track
    if track is None:
        if slot.parked:
            return _parked_section(slot, local, caps)
        return _stopped_section(slot, local)
    attributes = [*local.transport_attributes(Setup.ACTPASS), Attribute("mid", slot.mid)]
    attributes += [Attribute("extmap", e.value()) for e in _offer_extensions(slot.kind, caps)]
    attributes += [
        Attribute(Direction.SENDONLY.value),
        Attribute("msid", Msid(track.stream_id, track.track_id).value()),
        Attribute("rtcp-mux"),
        Attribute("rtcp-rsize"),
        *codec_attributes([track.codec]),
    ]
    if track.rtx_ssrc is not None:
        attributes.append(
            Attribute("ssrc-group", SsrcGroup("FID", (track.ssrc, track.rtx_ssrc)).value())
        )
    for ssrc in (track.ssrc, track.rtx_ssrc):
        if ssrc is not None:
            attributes.append(Attribute("ssrc", f"{ssrc} cname:{track.participant}"))
            attributes.append(Attribute("ssrc", f"{ssrc} msid:{track.stream_id} {track.track_id}"))
    attributes += local.candidate_attributes()
    return MediaDescription(
        slot.kind, local.connection()[1], PROTO, payload_types([track.codec]),
        fields=(local.connection_field(),), attributes=tuple(attributes),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SubscriberOffer:
    """An offer to send and the plan to keep until its answer arrives."""

    sdp: SessionDescription
    plan: SubscriberPlan

    @property
    def text(self) -> str:
        """The offer's wire form."""
        return str(self.sdp)


def build_subscriber_offer(
    plan: SubscriberPlan,
    local: LocalTransportParams,
    capabilities: Capabilities = DEFAULT_CAPABILITIES,
) -> SubscriberOffer:
    """Write the offer for ``plan`` (ICE-lite, actpass, one BUNDLE group of the live mids:
    the active ones, or the parked anchor when no track is left)."""
    if plan.awaiting_answer:
        raise SdpUsageError("an offer is already awaiting its answer (JSEP allows one at a time)")
    plan = replace(plan, version=plan.version + 1, awaiting_answer=True)
    bundle = tuple(s.mid for s in plan.bundled())
    attributes = [Attribute("ice-lite"), Attribute("extmap-allow-mixed")]
    if bundle:
        attributes.append(Attribute("group", Group("BUNDLE", bundle).value()))
    attributes.append(Attribute("msid-semantic", "WMS *"))
    sdp = SessionDescription(
        origin=Origin("-", local.origin_session_id(), plan.version, "IN", "IP4", "127.0.0.1"),
        attributes=tuple(attributes),
        media=tuple(_section(slot, local, capabilities) for slot in plan.slots),
    )
    return SubscriberOffer(sdp, plan)


def _check_section(slot: MediaSlot, media: MediaInfo, caps: Capabilities) -> NegotiatedMedia | None:
    """Validate one answered section against what we offered; None when rejected."""
    where = f"answer m-section for mid {slot.mid!r}"
    if media.kind != slot.kind or (media.mid is not None and media.mid != slot.mid):
        raise SdpError(
            f"{where} is {media.kind} mid {media.mid!r}: the answer reordered sections", media.line
        )
    if slot.track is None:
        if not media.rejected and media.direction is not Direction.INACTIVE:
            raise SdpError(f"{where} accepts a section the offer disabled (port 0)", media.line)
        return None  # port 0, or aiortc's live port + a=inactive (see apply_subscriber_answer)
    if media.rejected:
        return None
    if media.mid is None or media.proto not in DTLS_SRTP_PROTOS or not media.rtcp_mux:
        raise SdpError(f"{where} lacks a=mid, DTLS-SRTP or a=rtcp-mux", media.line)
    if media.direction not in (Direction.RECVONLY, Direction.INACTIVE):
        raise SdpError(
            f"{where} is {media.direction}; an answer to sendonly must be recvonly or inactive",
            media.line,
        )
    offered = slot.track.codec
    ours = {offered.payload_type: offered.name.lower()}
    if offered.rtx_payload_type is not None:
        ours[offered.rtx_payload_type] = "rtx"
    for codec in media.codecs:
        if ours.get(codec.payload_type) != codec.name.lower():
            raise SdpError(
                f"{where} has payload type {codec.payload_type} ({codec.name}), not offered",
                media.line,
            )
    main = media.codec(offered.payload_type)
    if main is None:
        raise SdpError(f"{where} accepts no offered codec", media.line)
    rtx = offered.rtx_payload_type if media.codec(offered.rtx_payload_type or -1) else None
    feedback = tuple(fb for fb in main.feedback if fb in offered.feedback)
    offered_ids = {e.id: e.uri for e in _offer_extensions(slot.kind, caps)}
    for ext in media.extensions:
        if offered_ids.get(ext.id) != ext.uri:
            raise SdpError(
                f"{where} uses extmap id {ext.id} for {ext.uri}, which was not offered", media.line
            )
    negotiated = replace(offered, feedback=feedback, rtx_payload_type=rtx)
    track = slot.track
    rtx_ssrc = track.rtx_ssrc if rtx is not None else None
    ssrcs = (track.ssrc,) if rtx_ssrc is None else (track.ssrc, rtx_ssrc)
    groups = (SsrcGroup("FID", ssrcs),) if rtx_ssrc is not None else ()
    return NegotiatedMedia(
        mid=slot.mid, kind=slot.kind,
        direction=Direction.SENDONLY if media.direction.receives else Direction.INACTIVE,
        codecs=(negotiated,), extensions=media.extensions,
        ssrcs=ssrcs, ssrc_groups=groups, cname=track.participant,
        msid=Msid(track.stream_id, track.track_id), rtcp_rsize=media.rtcp_rsize,
    )  # fmt: skip


def _check_parked(slot: MediaSlot, media: MediaInfo) -> bool:
    """Validate the answer to the parked anchor; True when it stays live (False: rejected)."""
    where = f"answer m-section for mid {slot.mid!r}"
    if media.kind != slot.kind or (media.mid is not None and media.mid != slot.mid):
        raise SdpError(
            f"{where} is {media.kind} mid {media.mid!r}: the answer reordered sections", media.line
        )
    if media.rejected:
        return False
    if media.direction is not Direction.INACTIVE:
        raise SdpError(f"{where} is {media.direction}; the offer made it inactive", media.line)
    return True


def _check_bundle(info: SessionInfo, live_mids: list[str]) -> Group | None:
    if not live_mids:
        return None
    group = info.bundle_group_of(live_mids[0])
    for mid in live_mids:
        if group is None or mid not in group.mids:
            raise SdpError(f"the answer does not BUNDLE mid {mid!r}; the router has one transport")
    return group


def apply_subscriber_answer(
    plan: SubscriberPlan,
    answer: str | bytes | SessionDescription,
    capabilities: Capabilities = DEFAULT_CAPABILITIES,
) -> tuple[SubscriberPlan, NegotiatedSession]:
    """Check a subscriber's answer to the outstanding offer; raises SdpError if it is unusable.

    Returns the plan with port-0 slots freed for recycling (a section the subscriber rejected
    becomes free too: its track is not delivered, see ``rejected_mids``) and what was negotiated.
    A parked anchor answered ``inactive`` stays parked and is the group's transport; it is not
    in ``media`` (nothing flows on it).
    """
    if not plan.awaiting_answer:
        raise SdpUsageError("no offer is awaiting an answer")
    desc = answer if isinstance(answer, SessionDescription) else parse_sdp(answer)
    info = describe(desc)
    if len(info.media) != len(plan.slots):
        raise SdpError(
            f"the answer has {len(info.media)} m-sections, the offer had {len(plan.slots)}"
        )
    accepted: list[NegotiatedMedia] = []
    rejected: list[str] = []
    inactive_stopped: list[str] = []
    live_mids: list[str] = []
    slots: list[MediaSlot] = []
    rejected_tag = False
    for slot, media in zip(plan.slots, info.media, strict=True):
        if slot.parked:
            if _check_parked(slot, media):
                live_mids.append(slot.mid)
                slots.append(slot)
            else:
                slots.append(replace(slot, parked=False, free=True))
                rejected_tag = rejected_tag or slot.mid == plan.tag
            continue
        result = _check_section(slot, media, capabilities)
        if result is not None:
            accepted.append(result)
            live_mids.append(slot.mid)
            slots.append(slot)
            continue
        if slot.track is not None:
            rejected.append(slot.mid)
        elif not media.rejected:
            inactive_stopped.append(slot.mid)
        rejected_tag = rejected_tag or slot.mid == plan.tag
        slots.append(replace(slot, track=None, free=True))
    group = _check_bundle(info, live_mids)
    tag = info.by_mid(group.mids[0]) if group is not None and group.mids else None
    live = (m for m in info.media if not m.rejected and m.mid not in inactive_stopped)
    transport_media = tag or next(live, None)
    if transport_media is not None:
        remote = remote_transport(info, transport_media, our_setup=None, is_offer=False)
    elif plan.remote is not None:
        remote = plan.remote  # every track gone: the connection itself lives on
    else:
        raise SdpError("the answer rejects every m-section of a new connection")
    negotiated = NegotiatedSession(
        remote=remote, media=tuple(accepted), bundle=group.mids if group else (),
        rejected_mids=tuple(rejected), extmap_allow_mixed=info.extmap_allow_mixed,
        inactive_stopped_mids=tuple(inactive_stopped),
    )  # fmt: skip
    # The subscriber refused the tagged section: its transport is gone anyway, so the next
    # live section becomes the tag.
    new_tag = (live_mids[0] if live_mids else None) if rejected_tag else plan.tag
    new_plan = replace(plan, slots=tuple(slots), awaiting_answer=False, remote=remote,
                       tag=new_tag)
    return new_plan, negotiated
