"""Tunables of the transport cores, one dataclass shared by server and client side.

Defaults follow the RFCs and what browsers do; tests shorten them through the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Timing and size settings of ICE, DTLS and SRTP for one peer."""

    #: Seconds without a valid consent check before we stop sending (RFC 7675 §5.1: 30 s).
    consent_timeout: float = 30.0
    #: Mean interval between our consent checks as the controlling client (RFC 7675: 5 s),
    #: randomised by a factor 0.8-1.2 so many clients do not synchronise.
    consent_interval: float = 5.0
    #: Seconds from start until ICE and DTLS must both be done, or the transport closes.
    #: Keeps a participant that signalled but never sent media from holding state forever.
    connect_timeout: float = 30.0
    #: First STUN retransmission timeout of the ICE client (RFC 8489 §6.2.1 suggests 500 ms;
    #: ICE checks use a shorter RTO on a known path).
    stun_rto: float = 0.25
    #: STUN requests sent per transaction before it fails (RFC 8489 Rc = 7).
    stun_max_transmissions: int = 7
    #: First DTLS retransmission timeout (RFC 6347 §4.2.4.1: 1 s), doubled on each retry.
    dtls_initial_rto: float = 1.0
    #: Ceiling of the doubling DTLS retransmission timeout.
    dtls_max_rto: float = 8.0
    #: Largest DTLS datagram we emit; below the smallest path MTU browsers assume.
    dtls_mtu: int = 1200
    #: SRTP replay window in packets (RFC 3711 requires at least 64). Large, so a reordering
    #: burst on a high-rate video stream is not mistaken for replay.
    srtp_replay_window: int = 1024
    #: DTLS-SRTP protection profiles we offer or accept, most preferred first. GCM first: it is
    #: cheaper in libsrtp and, as DTLS server, OpenSSL picks by our order.
    srtp_profiles: tuple[str, ...] = ("SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80")
    #: Accept no more than this many ICE-nominated addresses per peer (oldest forgotten).
    max_addresses: int = 4


__all__ = ["TransportConfig"]
