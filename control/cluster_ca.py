"""The cluster CA that authenticates routers to each other on trunks (mutual TLS 1.3 in QUIC).

Why files and not etcd: whoever reads etcd could otherwise mint a router identity, so the CA's
private key lives only in a key file (mode 0600) on the machine that issues certificates
(``regio secrets ca``, ``regio cluster up``). Routers get their own certificate and key as
files, plus the CA certificate to verify peers with; nothing secret is written to etcd.

A node certificate names its node id twice: as the subject common name and as the URI
``urn:regio:node:<id>`` in subjectAltName; verification requires both to agree. Keys are ECDSA
P-256 (cheap handshakes; TLS 1.3 ``ecdsa_secp256r1_sha256``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from control.schema import SchemaError, check_node_id

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
NODE_URI_PREFIX = "urn:regio:node:"
CA_DAYS = 3650
NODE_DAYS = 365


class CertificateRefused(ValueError):
    """A peer certificate the cluster does not accept; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    """Paths of one node's trunk identity."""

    cert: Path
    key: Path
    ca: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(directory: Path, name: str = "regio cluster CA") -> bool:
    """Create ``ca.pem`` and ``ca.key`` in ``directory`` unless they exist; True if created."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if cert_path.exists() and key_path.exists():
        load_ca(directory)  # refuses a broken pair rather than silently keeping it
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key; raises ValueError with the reason when unusable."""
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cluster CA in {directory} unusable: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"cluster CA key in {directory} is not an ECDSA key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ValueError(f"cluster CA certificate and key in {directory} do not match")
    return cert, key


def issue_node_certificate(ca_dir: Path, node_id: str, out_dir: Path,
                           days: int = NODE_DAYS, addresses: Sequence[str] = ()
                           ) -> NodeCredentials:
    """Issue ``<node>.pem``/``<node>.key`` in ``out_dir`` signed by the CA in ``ca_dir``;
    ``addresses`` (IPs) are added to subjectAltName so the same pair can serve wss."""
    check_node_id(node_id)
    ca_cert, ca_key = load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id),
             *(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    creds = NodeCredentials(out_dir / f"{node_id}.pem", out_dir / f"{node_id}.key",
                            ca_dir / CA_CERT_FILE)
    _write_private(creds.key, _key_pem(key))
    creds.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return creds


def node_id_of_certificate(cert: x509.Certificate) -> str:
    """The node id a certificate names (CN and SAN URI must agree)."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateRefused("no_node_id", "certificate has no subjectAltName") from None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(NODE_URI_PREFIX)]
    if len(cns) != 1 or len(uris) != 1 or uris[0][len(NODE_URI_PREFIX):] != cns[0].value:
        raise CertificateRefused("no_node_id", "certificate does not name exactly one node id")
    node_id = str(cns[0].value)
    try:
        return check_node_id(node_id)
    except SchemaError as exc:
        raise CertificateRefused("no_node_id", str(exc)) from None


def verify_node_certificate(cert: x509.Certificate, ca: x509.Certificate,
                            now: datetime.datetime | None = None) -> str:
    """Check ``cert`` was issued by the cluster CA, is in date and is not a CA; returns the
    node id it names. Raises :class:`CertificateRefused` (reason ``not_cluster_ca``,
    ``expired``, ``no_node_id``)."""
    if cert.issuer != ca.subject:
        raise CertificateRefused("not_cluster_ca", "issuer is not the cluster CA")
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateRefused("not_cluster_ca", f"signature does not verify: {exc}") from None
    when = now or _now()
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise CertificateRefused("expired", "certificate is not valid now")
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CertificateRefused("not_cluster_ca", "a CA certificate cannot name a node")
    except x509.ExtensionNotFound:
        pass
    return node_id_of_certificate(cert)


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"certificate {path} unusable: {exc}") from None


__all__ = ["CA_CERT_FILE", "CA_KEY_FILE", "CertificateRefused", "NodeCredentials", "create_ca",
           "issue_node_certificate", "load_ca", "load_certificate", "node_id_of_certificate",
           "verify_node_certificate"]
