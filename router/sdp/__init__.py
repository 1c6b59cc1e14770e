"""SDP for the SFU: a lossless parser/serializer and the router's offer/answer logic.

Pure code (no I/O, clocks or randomness), in three layers:

* :mod:`~router.sdp.model` — text <-> :class:`SessionDescription` (RFC 8866), every line kept;
* :mod:`~router.sdp.description` — :func:`describe` validates and structures what the SFU reads
  (codecs, BUNDLE, transport, rids/simulcast, SSRCs, extensions);
* :mod:`~router.sdp.answer` / :mod:`~router.sdp.subscriber` — the publisher answer and the
  subscriber offer/answer (JSEP, RFC 8829), ending in a :class:`NegotiatedSession` for the
  transport core and the forwarder.

Remote input can only raise :class:`SdpError`; misuse of the builders raises
:class:`SdpUsageError`.
"""

from __future__ import annotations

from router.sdp.answer import PublisherAnswer, answer_publisher_offer
from router.sdp.attributes import (
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    Group,
    Msid,
    RtcpFeedback,
    RtcpFeedbackAttr,
    Rtpmap,
    Setup,
    SsrcAttr,
    SsrcGroup,
)
from router.sdp.candidate import Candidate, host_candidate
from router.sdp.capabilities import (
    ABS_SEND_TIME,
    DEFAULT_CAPABILITIES,
    REPAIRED_RTP_STREAM_ID,
    RTP_STREAM_ID,
    SDES_MID,
    TRANSPORT_WIDE_CC,
    Capabilities,
    CodecCapability,
    ExtensionCapability,
)
from router.sdp.description import MediaInfo, RtpCodec, SessionInfo, TransportInfo, describe
from router.sdp.errors import SdpError, SdpUsageError
from router.sdp.model import (
    Attribute,
    MediaDescription,
    Origin,
    SessionDescription,
    parse_sdp,
    serialize_sdp,
)
from router.sdp.negotiated import NegotiatedCodec, NegotiatedMedia, NegotiatedSession
from router.sdp.simulcast import Rid, Simulcast, SimulcastStream
from router.sdp.subscriber import (
    MediaSlot,
    OutgoingTrack,
    SubscriberOffer,
    SubscriberPlan,
    apply_subscriber_answer,
    build_subscriber_offer,
    subscriber_codec,
)
from router.sdp.transport import DtlsRole, LocalTransportParams, RemoteTransport

__all__ = [
    "ABS_SEND_TIME",
    "DEFAULT_CAPABILITIES",
    "REPAIRED_RTP_STREAM_ID",
    "RTP_STREAM_ID",
    "SDES_MID",
    "TRANSPORT_WIDE_CC",
    "Attribute",
    "Candidate",
    "Capabilities",
    "CodecCapability",
    "Direction",
    "DtlsRole",
    "ExtMap",
    "ExtensionCapability",
    "Fingerprint",
    "Fmtp",
    "Group",
    "LocalTransportParams",
    "MediaDescription",
    "MediaInfo",
    "MediaSlot",
    "Msid",
    "NegotiatedCodec",
    "NegotiatedMedia",
    "NegotiatedSession",
    "Origin",
    "OutgoingTrack",
    "PublisherAnswer",
    "RemoteTransport",
    "Rid",
    "RtcpFeedback",
    "RtcpFeedbackAttr",
    "RtpCodec",
    "Rtpmap",
    "SdpError",
    "SdpUsageError",
    "SessionDescription",
    "SessionInfo",
    "Setup",
    "Simulcast",
    "SimulcastStream",
    "SsrcAttr",
    "SsrcGroup",
    "SubscriberOffer",
    "SubscriberPlan",
    "TransportInfo",
    "answer_publisher_offer",
    "apply_subscriber_answer",
    "build_subscriber_offer",
    "describe",
    "host_candidate",
    "parse_sdp",
    "serialize_sdp",
    "subscriber_codec",
]
