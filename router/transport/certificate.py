"""The DTLS certificate and SDP fingerprints (RFC 8122, RFC 8827 §6.5).

WebRTC authenticates DTLS with self-signed certificates whose digest travels in the signed
signaling channel (``a=fingerprint:sha-256 AB:CD:...``), so nothing here needs a CA. One ECDSA
P-256 certificate per process, made on first use: ECDSA is what browsers generate and keeps the
handshake flight small enough for one datagram; a new certificate per process means a leaked key
is useless after a restart.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.errors import LocalProtocolError

#: SDP hash function names (RFC 8122 §5, IANA "Hash Function Textual Names") we accept.
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}


class FingerprintError(LocalProtocolError):
    """An SDP fingerprint we were given cannot be used (unknown hash or malformed hex)."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A certificate fingerprint as SDP carries it: hash name plus digest bytes."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse an ``a=fingerprint`` value such as ``"sha-256 AB:CD:..."`` (case-insensitive).

        Raises :class:`FingerprintError` for an unknown hash or a digest of the wrong size.
        """
        parts = text.strip().split()
        if len(parts) != 2:
            raise FingerprintError("fingerprint must be '<hash> <hex:hex:...>'")
        algorithm = parts[0].lower()
        hash_cls = _HASHES.get(algorithm)
        if hash_cls is None:
            raise FingerprintError(f"unsupported fingerprint hash {parts[0]!r}")
        try:
            digest = bytes(int(h, 16) for h in parts[1].split(":") if len(h) == 2)
        except ValueError:
            raise FingerprintError("fingerprint digest is not colon-separated hex") from None
        size = hash_cls().digest_size
        if len(digest) != size or len(parts[1]) != 3 * len(digest) - 1:
            raise FingerprintError(f"{algorithm} fingerprint must have {size} hex pairs")
        return cls(algorithm, digest)

    @classmethod
    def of(cls, certificate: x509.Certificate, algorithm: str = "sha-256") -> Fingerprint:
        """The fingerprint of ``certificate`` (its DER encoding) under ``algorithm``."""
        hash_cls = _HASHES.get(algorithm)
        if hash_cls is None:
            raise FingerprintError(f"unsupported fingerprint hash {algorithm!r}")
        return cls(algorithm, certificate.fingerprint(hash_cls()))

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` has this fingerprint (constant-time comparison)."""
        return hmac.compare_digest(Fingerprint.of(certificate, self.algorithm).digest, self.digest)

    def __str__(self) -> str:
        return f"{self.algorithm} {self.digest.hex(':').upper()}"


@dataclass(frozen=True, slots=True)
class DtlsCertificate:
    """A private key and its self-signed certificate, for every DTLS session of a process."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls, *, now: datetime.datetime | None = None, days: int = 30) -> DtlsCertificate:
        """A fresh ECDSA P-256 certificate, valid from a day before ``now`` for ``days`` days.

        ``now`` defaults to the wall clock: this runs once per process at start-up, outside any
        protocol core, and browsers ignore validity dates of WebRTC certificates anyway.
        """
        if now is None:
            now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regio")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def fingerprint(self) -> Fingerprint:
        """The sha-256 fingerprint to put in SDP."""
        return Fingerprint.of(self.certificate)


_process_certificate: DtlsCertificate | None = None


def process_certificate() -> DtlsCertificate:
    """The certificate of this process, generated on first call."""
    global _process_certificate
    if _process_certificate is None:
        _process_certificate = DtlsCertificate.generate()
    return _process_certificate


def certificate_fingerprint(certificate: DtlsCertificate | None = None) -> str:
    """The ``a=fingerprint`` value (``"sha-256 AB:CD:..."``) of ``certificate`` or the process's."""
    return str((certificate or process_certificate()).fingerprint)


__all__ = [
    "DtlsCertificate",
    "Fingerprint",
    "FingerprintError",
    "certificate_fingerprint",
    "process_certificate",
]
