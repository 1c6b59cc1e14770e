"""SDP fingerprints: formatting, parsing, matching."""

from __future__ import annotations

import re

import pytest

from router.transport import (
    DtlsCertificate,
    Fingerprint,
    FingerprintError,
    certificate_fingerprint,
    process_certificate,
)


def test_process_certificate_fingerprint_is_sdp_ready_and_stable() -> None:
    text = certificate_fingerprint()
    assert re.fullmatch(r"sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}", text)
    assert certificate_fingerprint() == text
    assert Fingerprint.parse(text).matches(process_certificate().certificate)


def test_parse_is_case_insensitive_and_checks_sizes() -> None:
    cert = DtlsCertificate.generate()
    text = str(cert.fingerprint)
    assert Fingerprint.parse(text.lower().replace("sha-256", "SHA-256")) == cert.fingerprint
    assert Fingerprint.of(cert.certificate, "sha-1").matches(cert.certificate)
    assert not Fingerprint.parse(text).matches(DtlsCertificate.generate().certificate)
    for bad in ("sha-256", "md5 AB:CD", "sha-256 AB:CD", "sha-256 " + "ZZ:" * 31 + "ZZ", ""):
        with pytest.raises(FingerprintError):
            Fingerprint.parse(bad)


def test_each_certificate_gets_a_context_presenting_itself() -> None:
    """Regression: contexts were cached by ``id(certificate)``; a certificate created after
    another was collected often got its id, then its context, and presented the old
    certificate (the peer refused the fingerprint). Short-lived certificates, one at a time."""
    from OpenSSL import SSL

    from router.transport.dtls import _context
    from router.transport.srtp import PROFILES

    for _ in range(20):
        cert = DtlsCertificate.generate()
        conn = SSL.Connection(_context(cert, PROFILES), None)
        presented = conn.get_certificate(as_cryptography=True)  # type: ignore[call-arg]
        assert presented == cert.certificate
        del cert, conn, presented
