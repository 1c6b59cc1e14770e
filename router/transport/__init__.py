"""The router's media transport: RFC 7983 demux, ICE-lite, DTLS-SRTP and SRTP, as sans-IO cores.

Cores (no trio, socket or time imports; every entry point takes ``now``):

* :class:`PeerTransport` - one participant on the router (ICE-lite, DTLS in the SDP role, SRTP).
* :class:`TransportMux` - all participants of one UDP port, routed by ufrag and address.
* :class:`ClientTransport` - the client side (ICE controlling, DTLS, SRTP) for synthetic clients.
* Building blocks: :func:`classify` (demux), :class:`IceLiteAgent`, :class:`IceControllingAgent`,
  :class:`DtlsCore`, :class:`SrtpContext`, :class:`DtlsCertificate`.

The Trio drivers live in :mod:`router.transport.udp_driver` (not imported here, so importing the
cores never imports Trio).
"""

from __future__ import annotations

from router.transport.base import TransportStats
from router.transport.certificate import (
    DtlsCertificate,
    Fingerprint,
    FingerprintError,
    certificate_fingerprint,
    process_certificate,
)
from router.transport.client import ClientTransport
from router.transport.config import TransportConfig
from router.transport.demux import PacketKind, classify
from router.transport.dtls import DtlsCore, DtlsRole, DtlsState
from router.transport.events import (
    Address,
    ConsentLost,
    DtlsConnected,
    IceConnected,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
    TransportEvent,
)
from router.transport.ice_client import IceClientState, IceControllingAgent
from router.transport.ice_lite import IceLiteAgent, IceStats, generate_password, generate_ufrag
from router.transport.mux import MuxStats, TransportMux
from router.transport.peer import PeerTransport
from router.transport.srtp import (
    AEAD_AES_128_GCM,
    AES128_CM_SHA1_80,
    PROFILES,
    SrtpContext,
    SrtpProfile,
    SrtpStats,
)

__all__ = [
    "AEAD_AES_128_GCM",
    "AES128_CM_SHA1_80",
    "PROFILES",
    "Address",
    "ClientTransport",
    "ConsentLost",
    "DtlsCertificate",
    "DtlsConnected",
    "DtlsCore",
    "DtlsRole",
    "DtlsState",
    "Fingerprint",
    "FingerprintError",
    "IceClientState",
    "IceConnected",
    "IceControllingAgent",
    "IceLiteAgent",
    "IceStats",
    "MuxStats",
    "PacketKind",
    "PeerTransport",
    "RtcpReceived",
    "RtpReceived",
    "SrtpContext",
    "SrtpProfile",
    "SrtpStats",
    "TransportClosed",
    "TransportConfig",
    "TransportEvent",
    "TransportMux",
    "TransportStats",
    "certificate_fingerprint",
    "classify",
    "generate_password",
    "generate_ufrag",
    "process_certificate",
]
