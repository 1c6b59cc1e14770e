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
