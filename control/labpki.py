"""A throwaway certificate authority for lab clusters and tests: a CA and leaf certificates
for IP addresses.

Node listeners refuse plain HTTP/WebSocket anywhere but loopback, so a cluster whose nodes sit
on namespace-host addresses (``regio cluster up --hosts``) needs real TLS. Its clients trust
the CA file this module writes; nothing here is meant for production certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA's key and certificate, kept in memory to sign leaves."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity(days: float, from_days: float = 0.0
              ) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return (now + datetime.timedelta(days=from_days, minutes=-5),
            now + datetime.timedelta(days=days))


def make_ca(cn: str = "regio lab CA", days: float = 1.0) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def issue(ca: Authority, cn: str, *, ips: Sequence[str] = ("127.0.0.1",),
          dns: Sequence[str] = ("localhost",), usage: x509.ObjectIdentifier = SERVER_AUTH,
          days: float = 1.0, from_days: float = 0.0,
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf for ``ips``/``dns`` signed by ``ca``, valid from ``from_days`` (negative: in
    the past) until ``days`` from now (negative: already expired, for tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(days, from_days)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.DNSName(d) for d in dns]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return str(path)


def write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def write_leaf(directory: Path, name: str, ca: Authority, ips: Sequence[str],
               usage: x509.ObjectIdentifier = SERVER_AUTH) -> tuple[str, str]:
    """``<name>.pem`` and ``<name>-key.pem`` for ``ips`` in ``directory``: (cert, key) paths."""
    key, cert = issue(ca, name, ips=ips, usage=usage)
    return write_cert(directory / f"{name}.pem", cert), write_key(directory / f"{name}-key.pem",
                                                                  key)
