"""What the router tells the forwarder about tracks and subscriptions (input to its API).

The forwarder does not read SDP: the session layer turns each negotiated m-section into a
:class:`TrackSpec` (publisher side) or a :class:`SubscriptionSpec` (subscriber side). Codecs are
matched by a *codec key* rather than by payload type, because the publisher and each subscriber
number their payload types independently and a subscription may be retargeted to another track
(republish) whose numbering differs again. Any string works as long as both sides build it the
same way; :func:`codec_key` is the suggested form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from router.errors import LocalProtocolError

__all__ = [
    "ABS_SEND_TIME",
    "KIND_AUDIO",
    "KIND_VIDEO",
    "REPAIRED_RTP_STREAM_ID",
    "RTP_STREAM_ID",
    "SDES_MID",
    "STRIPPED_EXTENSIONS",
    "TRANSPORT_WIDE_CC",
    "ForwardingUsageError",
    "LayerSpec",
    "SubscriptionSpec",
    "TrackSpec",
    "codec_key",
]

SDES_MID: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
RTP_STREAM_ID: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_WIDE_CC: Final = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)

STRIPPED_EXTENSIONS: Final = frozenset({SDES_MID, RTP_STREAM_ID, REPAIRED_RTP_STREAM_ID})
"""Never forwarded: they name the *publisher's* m-section and simulcast layer. libwebrtc's
demuxer drops a packet whose MID it does not know, so passing the publisher's MID through would
black-hole media at the subscriber; the subscriber's SDP signals our SSRCs instead."""

KIND_AUDIO: Final = "audio"
KIND_VIDEO: Final = "video"


class ForwardingUsageError(LocalProtocolError):
    """The router called the forwarder API wrongly (unknown participant, duplicate id, ...)."""


def codec_key(name: str, clock_rate: int, channels: int | None = None) -> str:
    """The suggested codec key, e.g. ``"vp8/90000"`` or ``"opus/48000/2"``."""
    key = f"{name.lower()}/{clock_rate}"
    return key if channels is None else f"{key}/{channels}"


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One encoding of a track (a simulcast layer, or the only one).

    Layers without signalled SSRCs are bound when their first packet arrives, by the MID and
    RID header extensions (browsers using rids signal no SSRCs).
    """

    rid: str | None = None
    """Simulcast rid (RFC 8851); None for a non-simulcast track."""
    ssrc: int | None = None
    """Signalled primary SSRC, if the publisher's SDP named one."""
    rtx_ssrc: int | None = None
    """Signalled RTX SSRC (``ssrc-group:FID``), if any."""


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """A published track: one publisher m-section.

    ``layers`` are in preference order, best first; until the layer-choice logic exists every
    subscriber gets the first layer that is receiving.
    """

    track_id: str
    """Room-wide track id; subscriptions name it."""
    publisher: str
    """Participant id of the publisher (must be added with ``add_participant``)."""
    kind: str
    """``"audio"`` or ``"video"`` (keyframe requests and the packet cache are video-only)."""
    clock_rate: int
    """RTP clock rate of the codec(s), used to continue timestamps across a switch."""
    codecs: Mapping[int, str]
    """Publisher payload type -> codec key."""
    rtx_payload_types: Mapping[int, int] = field(default_factory=dict)
    """Publisher RTX payload type -> the payload type it repairs (``apt``)."""
    extensions: Mapping[str, int] = field(default_factory=dict)
    """Header extension URI -> the publisher's extmap id."""
    mid: str | None = None
    """The publisher's m-section mid, used to bind unsignalled SSRCs."""
    layers: tuple[LayerSpec, ...] = (LayerSpec(),)
    """Encodings, best first."""
    nack: bool = True
    """The publisher negotiated ``nack``: cache misses may be NACKed upstream."""
    keyframe_request: str = "pli"
    """``"pli"``, ``"fir"`` (only ``ccm fir`` negotiated) or ``"none"``."""
    bandwidth_feedback: str = "none"
    """What the publisher's estimator listens to: ``"transport-cc"`` (rtcp-fb transport-cc
    and the transport-wide-cc extension negotiated), ``"remb"`` (goog-remb only) or
    ``"none"``. The router generates that feedback for the publisher's connection."""

    def __post_init__(self) -> None:
        if self.bandwidth_feedback not in ("transport-cc", "remb", "none"):
            raise ForwardingUsageError(f"unknown bandwidth feedback {self.bandwidth_feedback!r}")
        if self.kind not in (KIND_AUDIO, KIND_VIDEO):
            raise ForwardingUsageError(f"track kind must be audio or video, not {self.kind!r}")
        if self.clock_rate <= 0:
            raise ForwardingUsageError(f"clock rate must be positive, not {self.clock_rate}")
        if not self.layers:
            raise ForwardingUsageError("a track needs at least one layer")
        if self.keyframe_request not in ("pli", "fir", "none"):
            raise ForwardingUsageError(f"unknown keyframe request {self.keyframe_request!r}")
        for pt in (*self.codecs, *self.rtx_payload_types):
            if not 0 <= pt <= 127:
                raise ForwardingUsageError(f"payload type {pt} out of range 0..127")


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """One subscriber m-section fed from a track.

    ``ssrc``/``rtx_ssrc`` are chosen by the router and stay fixed for the subscription's life,
    whatever the source does: that is what makes republish and layer switches invisible.
    """

    subscriber: str
    """Participant id of the subscriber (must be added with ``add_participant``)."""
    track_id: str
    """The track to forward (it may be published later; the subscription waits)."""
    ssrc: int
    """Outgoing SSRC."""
    codecs: Mapping[str, int]
    """Codec key -> the subscriber's payload type. Packets of other codecs are not sent."""
    rtx_ssrc: int | None = None
    """Outgoing RTX SSRC: retransmissions go out as RFC 4588 RTX when set."""
    rtx_payload_types: Mapping[int, int] = field(default_factory=dict)
    """Subscriber payload type -> its RTX payload type."""
    extensions: Mapping[str, int] = field(default_factory=dict)
    """Header extension URI -> the subscriber's extmap id."""

    def __post_init__(self) -> None:
        for ssrc in (self.ssrc, self.rtx_ssrc):
            if ssrc is not None and not 0 <= ssrc <= 0xFFFFFFFF:
                raise ForwardingUsageError(f"SSRC {ssrc} out of range")
        for pt in (*self.codecs.values(), *self.rtx_payload_types.values()):
            if not 0 <= pt <= 127:
                raise ForwardingUsageError(f"payload type {pt} out of range 0..127")
