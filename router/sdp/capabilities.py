"""What the router can receive and send: codecs, RTCP feedback and RTP header extensions.

An SFU never transcodes, so every subscriber must accept the codec its publisher sends. The
router therefore negotiates one codec per publisher m-section, chosen by its own preference order
(``Capabilities.codecs``), and offers subscribers the same codec under the router's fixed payload
types (``CodecCapability.payload_type``). Fixed numbers matter because a subscriber's m-sections
share one BUNDLE transport, where RFC 8843 §9.1 forbids one payload type meaning two codecs;
the forwarder rewrites the payload type per packet, as it already rewrites SSRC and sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from router.sdp.attributes import FmtpParams, RtcpFeedback, fmtp_get
from router.sdp.description import RtpCodec

__all__ = [
    "ABS_SEND_TIME",
    "DEFAULT_CAPABILITIES",
    "REPAIRED_RTP_STREAM_ID",
    "RTP_STREAM_ID",
    "SDES_MID",
    "TRANSPORT_WIDE_CC",
    "Capabilities",
    "CodecCapability",
    "ExtensionCapability",
    "h264_profile",
]

SDES_MID: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_WIDE_CC: Final = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)
RTP_STREAM_ID: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

NACK: Final = RtcpFeedback("nack")
NACK_PLI: Final = RtcpFeedback("nack", "pli")
CCM_FIR: Final = RtcpFeedback("ccm", "fir")
GOOG_REMB: Final = RtcpFeedback("goog-remb")
TRANSPORT_CC: Final = RtcpFeedback("transport-cc")

# (profile_idc, mask, value) -> profile, after libwebrtc's h264_profile_level_id table.
_H264_PROFILES: Final = (
    (0x42, 0b01001111, 0b01000000, "constrained-baseline"),
    (0x4D, 0b10001111, 0b10000000, "constrained-baseline"),
    (0x58, 0b11001111, 0b11000000, "constrained-baseline"),
    (0x42, 0b01001111, 0b00000000, "baseline"),
    (0x58, 0b11001111, 0b10000000, "baseline"),
    (0x4D, 0b10101111, 0b00000000, "main"),
    (0x64, 0b11111111, 0b00000000, "high"),
    (0x64, 0b11111111, 0b00001100, "constrained-high"),
)


def h264_profile(profile_level_id: str | None) -> str | None:
    """Profile name of an RFC 6184 ``profile-level-id`` (default ``420010``), None if unknown."""
    text = profile_level_id if profile_level_id is not None else "420010"
    if len(text) != 6 or not text.isascii():
        return None
    try:
        idc, iop = int(text[0:2], 16), int(text[2:4], 16)
    except ValueError:
        return None
    for profile_idc, mask, value, name in _H264_PROFILES:
        if idc == profile_idc and iop & mask == value:
            return name
    return None


@dataclass(frozen=True, slots=True)
class CodecCapability:
    """One codec the router forwards, with the parameters it writes into SDP.

    ``payload_type``/``rtx_payload_type`` are the router's numbers towards subscribers (and in
    offers); publishers keep their own numbers. ``parameters`` is the fmtp the router writes:
    Opus ``minptime=10;useinbandfec=1`` asks publishers for in-band FEC; for H264 it also names
    the one profile this entry matches.
    """

    kind: str
    name: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    parameters: FmtpParams = ()
    feedback: tuple[RtcpFeedback, ...] = ()
    rtx_payload_type: int | None = None

    def matches(self, codec: RtpCodec) -> bool:
        """True when an offered codec is this one (name, clock, channels, H264 mode/profile)."""
        if codec.name.lower() != self.name.lower() or codec.clock_rate != self.clock_rate:
            return False
        if self.channels is not None and (codec.channels or 1) != self.channels:
            return False
        if self.name.lower() == "h264":
            if (codec.param("packetization-mode") or "0") != "1":
                return False
            wanted = h264_profile(fmtp_get(self.parameters, "profile-level-id"))
            return h264_profile(codec.param("profile-level-id")) == wanted
        return True

    def answer_parameters(self, offered: RtpCodec) -> FmtpParams:
        """fmtp for an answer: H264 echoes the offer (its level is the stream's), others ours."""
        if self.name.lower() == "h264":
            return offered.parameters
        return self.parameters


@dataclass(frozen=True, slots=True)
class ExtensionCapability:
    """A header extension the router accepts; ``offer_id`` is its id in offers (None: not offered).

    Subscribers get one stream per m-section, so rid extensions are accepted from publishers but
    never offered to subscribers.
    """

    uri: str
    kinds: frozenset[str]
    offer_id: int | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Codecs in preference order, extensions, and whether RTX is negotiated for video."""

    codecs: tuple[CodecCapability, ...]
    extensions: tuple[ExtensionCapability, ...]
    rtx: bool = True

    def extension(self, uri: str, kind: str) -> ExtensionCapability | None:
        """The capability for ``uri`` in a ``kind`` section, or None."""
        return next((e for e in self.extensions if e.uri == uri and kind in e.kinds), None)

    def codec_like(
        self, name: str, clock_rate: int, parameters: FmtpParams
    ) -> CodecCapability | None:
        """The capability describing a negotiated codec (used to map publisher -> subscriber)."""
        probe = RtpCodec(0, name, clock_rate, None, parameters)
        for cap in self.codecs:
            same = cap.name.lower() == name.lower() and cap.clock_rate == clock_rate
            if same and (cap.name.lower() != "h264" or cap.matches(probe)):
                return cap
        return None


_VIDEO_FEEDBACK: Final = (GOOG_REMB, TRANSPORT_CC, CCM_FIR, NACK, NACK_PLI)
_AV: Final = frozenset({"audio", "video"})
_VIDEO: Final = frozenset({"video"})

DEFAULT_CAPABILITIES: Final = Capabilities(
    codecs=(
        CodecCapability(
            "audio", "opus", 48000, 111, channels=2,
            parameters=(("minptime", "10"), ("useinbandfec", "1")),
            feedback=(TRANSPORT_CC,),
        ),
        CodecCapability("video", "VP8", 90000, 96, feedback=_VIDEO_FEEDBACK, rtx_payload_type=97),
        CodecCapability(
            "video", "H264", 90000, 102,
            parameters=(
                ("level-asymmetry-allowed", "1"), ("packetization-mode", "1"),
                ("profile-level-id", "42e01f"),
            ),
            feedback=_VIDEO_FEEDBACK, rtx_payload_type=103,
        ),
        CodecCapability(
            "video", "H264", 90000, 104,
            parameters=(
                ("level-asymmetry-allowed", "1"), ("packetization-mode", "1"),
                ("profile-level-id", "42001f"),
            ),
            feedback=_VIDEO_FEEDBACK, rtx_payload_type=105,
        ),
    ),
    extensions=(
        ExtensionCapability(SDES_MID, _AV, offer_id=1),
        ExtensionCapability(ABS_SEND_TIME, _AV, offer_id=2),
        # Offered to subscribers too: the router numbers every packet it sends them
        # (router.forwarding.subscriber_links) and estimates their downlink from the feedback.
        # A subscriber that accepts only abs-send-time gets that, and is estimated from REMB.
        ExtensionCapability(TRANSPORT_WIDE_CC, _AV, offer_id=3),
        ExtensionCapability(RTP_STREAM_ID, _VIDEO),
        ExtensionCapability(REPAIRED_RTP_STREAM_ID, _VIDEO),
    ),
)  # fmt: skip
"""Opus, VP8, H264 (constrained baseline and baseline, packetization-mode 1) with RTX."""
