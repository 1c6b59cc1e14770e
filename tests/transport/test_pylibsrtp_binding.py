"""The private pylibsrtp binding ``router.transport.srtp_direct`` relies on, checked by name,
type and value, so that a pylibsrtp release that changes it fails here, loudly, instead of the
router silently falling back to the slow path or calling libsrtp wrongly.

pyproject.toml pins pylibsrtp to the range this was checked against; widening the pin means
running this file against the new version first.
"""

from __future__ import annotations

import importlib.metadata
import os

import pylibsrtp
import pytest

from router.transport import srtp_direct

SIGNATURES = {
    name: "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    for name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp")
}
STATUS_TEXT = {
    srtp_direct.AUTH_FAIL: "authentication failure",
    srtp_direct.CIPHER_FAIL: "cipher failure",
    srtp_direct.REPLAY_FAIL: "replay check failed (bad index)",
    srtp_direct.REPLAY_OLD: "replay check failed (index too old)",
    srtp_direct.CANT_CHECK: "unable to perform desired validation",
    srtp_direct.PKT_IDX_OLD: "packet index is too old to consider",
}


def test_installed_version_is_inside_the_pinned_range() -> None:
    version = tuple(int(x) for x in importlib.metadata.version("pylibsrtp").split(".")[:2])
    assert (0, 10) <= version < (1, 1), (
        f"pylibsrtp {version} is outside the range srtp_direct was checked against: re-check "
        "this file's assertions, then move the pin in pyproject.toml")


def test_private_binding_has_the_functions_and_signatures() -> None:
    from pylibsrtp import _binding

    assert srtp_direct.available(), "srtp_direct no longer finds pylibsrtp's binding"
    for name, signature in SIGNATURES.items():
        assert str(_binding.ffi.typeof(getattr(_binding.lib, name))) == f"<ctype '{signature}'>"


def test_status_codes_mean_what_srtp_direct_assumes() -> None:
    for status, text in STATUS_TEXT.items():
        assert pylibsrtp.ERRORS[status] == text, status


def test_session_keeps_its_srtp_handle_where_srtp_direct_reads_it() -> None:
    policy = pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    session = pylibsrtp.Session(policy=policy)
    direct = srtp_direct.DirectSession(session)
    packet = bytes([0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]) + b"\x00" * 100
    status, protected = direct.call(direct.protect, packet)
    assert status == srtp_direct.OK and protected is not None
    # The public API, on the same kind of session, produces the same length.
    other = pylibsrtp.Session(policy=pylibsrtp.Policy(
        key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
    assert len(other.protect(packet)) == len(protected)
    assert len(session._cdata) == srtp_direct.BUFFER  # the size srtp_direct checks against
    with pytest.raises(ValueError, match="too long"):
        other.protect(b"\x80" + b"\x00" * srtp_direct.BUFFER)
