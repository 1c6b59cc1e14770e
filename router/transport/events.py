"""Events of the transport cores, and the address type they carry.

Drivers and the session layer ``match`` on these; every one is a frozen, slotted dataclass with
:class:`TransportEvent` as its base (ARCHITECTURE.md §3). :class:`RtpReceived` and
:class:`RtcpReceived` are the per-packet events: they hold only the decrypted bytes, so the hot
path allocates one small object per packet and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A UDP peer address as the socket reports it: ``(host, port)`` for IPv4 and
#: ``(host, port, flowinfo, scope_id)`` for IPv6. Cores use it only as a dict key.
Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class TransportEvent:
    """Base class of every event a transport core emits."""


@dataclass(frozen=True, slots=True)
class IceConnected(TransportEvent):
    """ICE selected ``address``: the first nomination, or a later one that moved the peer
    (a new network path). Media goes to the newest nominated address."""

    address: Address


@dataclass(frozen=True, slots=True)
class DtlsConnected(TransportEvent):
    """DTLS finished, the peer certificate matched the SDP fingerprint and SRTP keys exist.

    ``profile`` is the negotiated protection profile, e.g. ``"SRTP_AEAD_AES_128_GCM"``.
    """

    profile: str


@dataclass(frozen=True, slots=True)
class RtpReceived(TransportEvent):
    """An authenticated, decrypted RTP packet (plain RTP header and payload)."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class RtcpReceived(TransportEvent):
    """An authenticated, decrypted RTCP compound packet."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class ConsentLost(TransportEvent):
    """No valid consent for ``address`` for the consent timeout (RFC 7675): we stopped sending."""

    address: Address


@dataclass(frozen=True, slots=True)
class TransportClosed(TransportEvent):
    """The transport is finished for good (``reason`` is for logs and metrics; no addresses).

    Always the last event of a core; after it the core sends nothing and has no timer.
    """

    reason: str


__all__ = [
    "Address",
    "ConsentLost",
    "DtlsConnected",
    "IceConnected",
    "RtcpReceived",
    "RtpReceived",
    "TransportClosed",
    "TransportEvent",
]
