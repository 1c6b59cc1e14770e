"""The direct libsrtp path (router.transport.srtp_direct) against pylibsrtp's public API.

Both paths must interoperate byte for byte, count the same failures, and the batch protect the
forwarder uses must equal per-packet protection.
"""

from __future__ import annotations

import os

import pytest

from router.transport import srtp_direct
from router.transport.srtp import (
    AEAD_AES_128_GCM,
    AES128_CM_SHA1_80,
    SrtpContext,
    SrtpProfile,
    exporter_length,
    split_keying_material,
)
from tests.transport.test_demux_srtp import rtcp_rr, rtp

PROFILES = [AEAD_AES_128_GCM, AES128_CM_SHA1_80]


def pair(
    profile: SrtpProfile, client_direct: bool, server_direct: bool
) -> tuple[SrtpContext, SrtpContext]:
    material = os.urandom(exporter_length(profile))
    client = SrtpContext(
        profile, *split_keying_material(material, profile, is_client=True), direct=client_direct
    )
    server = SrtpContext(
        profile, *split_keying_material(material, profile, is_client=False), direct=server_direct
    )
    return client, server


def test_direct_path_is_used_by_default() -> None:
    assert srtp_direct.available()
    client, _ = pair(AEAD_AES_128_GCM, True, False)
    assert client.direct
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    assert SrtpContext(AEAD_AES_128_GCM, *keys).direct


def test_fallback_when_the_binding_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srtp_direct, "available", lambda: False)
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    assert not SrtpContext(AEAD_AES_128_GCM, *keys).direct


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize(("client_direct", "server_direct"), [(True, False), (False, True)])
def test_paths_interoperate(profile: SrtpProfile, client_direct: bool, server_direct: bool) -> None:
    client, server = pair(profile, client_direct, server_direct)
    for seq in range(1, 40):
        protected = client.protect_rtp(rtp(seq))
        assert protected is not None and server.unprotect_rtp(protected) == rtp(seq)
        back = server.protect_rtp(rtp(seq, ssrc=7))
        assert back is not None and client.unprotect_rtp(back) == rtp(seq, ssrc=7)
    srtcp = client.protect_rtcp(rtcp_rr())
    assert srtcp is not None and server.unprotect_rtcp(srtcp) == rtcp_rr()
    srtcp = server.protect_rtcp(rtcp_rr())
    assert srtcp is not None and client.unprotect_rtcp(srtcp) == rtcp_rr()


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("direct", [True, False])
def test_failures_counted_alike(profile: SrtpProfile, direct: bool) -> None:
    client, server = pair(profile, True, direct)
    first = client.protect_rtp(rtp(1))
    assert first is not None and server.unprotect_rtp(first) is not None
    assert server.unprotect_rtp(first) is None  # replay
    tampered = bytearray(client.protect_rtp(rtp(2)) or b"")
    tampered[-1] ^= 1
    assert server.unprotect_rtp(bytes(tampered)) is None  # authentication
    rr = client.protect_rtcp(rtcp_rr())
    assert rr is not None and server.unprotect_rtcp(rr) is not None
    assert server.unprotect_rtcp(rr) is None  # SRTCP replay
    bad = bytearray(client.protect_rtcp(rtcp_rr()) or b"")
    bad[-1] ^= 1
    assert server.unprotect_rtcp(bytes(bad)) is None
    s = server.stats
    assert (s.replay_failures, s.auth_failures, s.other_failures) == (2, 2, 0)
    assert (s.rtp_in, s.rtcp_in) == (1, 1)


@pytest.mark.parametrize("direct", [True, False])
def test_batch_protect_equals_per_packet(direct: bool) -> None:
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    local, remote = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    one = SrtpContext(AEAD_AES_128_GCM, local, remote, direct=direct)
    batch = SrtpContext(AEAD_AES_128_GCM, local, remote, direct=direct)
    packets = [rtp(seq, ssrc=seq % 3 + 1) for seq in range(1, 30)]
    packets.insert(5, b"\x80\x60")  # too short: counted, skipped
    packets.insert(9, rtp(99, payload=bytes(1400)))  # too long for the buffer
    expected = [p for p in map(one.protect_rtp, packets) if p is not None]
    out: list[tuple[bytes, tuple[str, int]]] = [(b"earlier", ("192.0.2.9", 1))]
    sent = batch.protect_rtp_batch(packets, ("192.0.2.1", 5000), out)
    assert sent == len(expected) == 29
    assert out[0] == (b"earlier", ("192.0.2.9", 1))
    assert [d for d, _ in out[1:]] == expected
    assert {a for _, a in out[1:]} == {("192.0.2.1", 5000)}
    assert (batch.stats.rtp_out, batch.stats.protect_failures) == (29, 2)
    assert one.stats.rtp_out == batch.stats.rtp_out
