"""aioquic set up for trunks: TLS 1.3 with certificates from the cluster CA on both sides.

aioquic verifies a server's chain against a CA and a host name, but has no public switch to
ask a client for its certificate, and never checks one. Trunks need the same rule both ways
(the certificate chains to the cluster CA *and* names the expected node), so peer checking is
done once, here, for both roles, right after the handshake and before any control message is
read (:func:`peer_certificate`); the server asks for the client's certificate through the TLS
context's ``_request_client_certificate`` flag (the only private aioquic attribute used).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALPN = "regio-trunk/1"


@dataclass(frozen=True, slots=True)
class TrunkIdentity:
    """This router's trunk credentials and the CA it trusts."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @classmethod
    def load(cls, cert: Path, key: Path, ca: Path) -> TrunkIdentity:
        """Read PEM files; raises ValueError naming the unusable file."""
        try:
            certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"trunk certificate {cert}: {exc}") from None
        try:
            private = serialization.load_pem_private_key(key.read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"trunk key {key}: {exc}") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError(f"trunk key {key} is not an ECDSA key")
        try:
            authority = x509.load_pem_x509_certificate(ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"trunk CA {ca}: {exc}") from None
        return cls(certificate, private, authority)


class _MutualQuicConnection(QuicConnection):
    """A server connection that asks the client for its certificate."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if not self._is_client:
            self.tls._request_client_certificate = True


def quic_configuration(identity: TrunkIdentity, *, is_client: bool, server_name: str,
                       idle_timeout: float) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=is_client, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
        idle_timeout=idle_timeout, server_name=server_name if is_client else None,
    )  # fmt: skip
    config.certificate = identity.certificate
    config.private_key = identity.private_key
    return config


def new_connection(identity: TrunkIdentity, *, is_client: bool, server_name: str,
                   idle_timeout: float, original_cid: bytes | None = None) -> QuicConnection:
    """A client connection (call ``connect``), or a server one for the first Initial."""
    config = quic_configuration(identity, is_client=is_client, server_name=server_name,
                                idle_timeout=idle_timeout)
    if is_client:
        return QuicConnection(configuration=config)
    return _MutualQuicConnection(configuration=config,
                                 original_destination_connection_id=original_cid)


def initial_destination_cid(data: bytes) -> bytes | None:
    """The destination connection id of a client's first (Initial, padded to 1200 bytes)
    datagram, or None for anything that cannot open a connection."""
    if len(data) < 1200:
        return None
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
    except ValueError:
        return None
    if header.packet_type is not QuicPacketType.INITIAL:
        return None
    return header.destination_cid


def peer_certificate(conn: QuicConnection) -> x509.Certificate | None:
    """The certificate the peer presented in the handshake (None: it presented none)."""
    tls = getattr(conn, "tls", None)
    cert = getattr(tls, "_peer_certificate", None)
    return cert if isinstance(cert, x509.Certificate) else None


__all__ = ["ALPN", "TrunkIdentity", "initial_destination_cid", "new_connection", "peer_certificate",
           "quic_configuration"]
