"""RFC 7983 demux and the SRTP context: profiles, replay vs. authentication, lengths."""

from __future__ import annotations

import os
import struct

import pytest

from router.transport import (
    AEAD_AES_128_GCM,
    AES128_CM_SHA1_80,
    PacketKind,
    SrtpContext,
    SrtpProfile,
    classify,
)
from router.transport.srtp import exporter_length, split_keying_material


def rtp(seq: int, ssrc: int = 0x1234, payload: bytes = b"payload") -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 960, ssrc) + payload


def rtcp_rr(ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


@pytest.mark.parametrize(
    ("first", "second", "kind"),
    [
        (0, 1, PacketKind.STUN),
        (3, 0, PacketKind.STUN),
        (4, 0, PacketKind.OTHER),
        (16, 0, PacketKind.OTHER),  # ZRTP
        (19, 0, PacketKind.OTHER),
        (20, 0, PacketKind.DTLS),
        (22, 0, PacketKind.DTLS),
        (63, 0, PacketKind.DTLS),
        (64, 0, PacketKind.OTHER),  # TURN ChannelData: not on a router port
        (127, 0, PacketKind.OTHER),
        (128, 96, PacketKind.RTP),
        (0x80, 0xE0, PacketKind.RTP),  # marker + PT 96
        (0x80, 200, PacketKind.RTCP),
        (0x81, 223, PacketKind.RTCP),
        (0x80, 224, PacketKind.RTP),
        (191, 0, PacketKind.RTP),
        (192, 0, PacketKind.OTHER),
        (255, 0, PacketKind.OTHER),
    ],
)
def test_classify_by_first_byte(first: int, second: int, kind: PacketKind) -> None:
    assert classify(bytes([first, second]) + bytes(30)) == kind


def test_classify_short_and_empty() -> None:
    assert classify(b"") == PacketKind.OTHER
    assert classify(bytes([0x80, 96]) + bytes(9)) == PacketKind.OTHER  # 11 bytes: no RTP header
    assert classify(bytes([0x80, 200]) + bytes(5)) == PacketKind.OTHER
    assert classify(memoryview(rtp(1))) == PacketKind.RTP


def pair(
    profile: SrtpProfile = AEAD_AES_128_GCM, window: int = 1024
) -> tuple[SrtpContext, SrtpContext]:
    material = os.urandom(exporter_length(profile))
    client = SrtpContext(
        profile, *split_keying_material(material, profile, is_client=True), replay_window=window
    )
    server = SrtpContext(
        profile, *split_keying_material(material, profile, is_client=False), replay_window=window
    )
    return client, server


@pytest.mark.parametrize("profile", [AEAD_AES_128_GCM, AES128_CM_SHA1_80], ids=lambda p: p.name)
def test_round_trip_both_directions(profile: SrtpProfile) -> None:
    client, server = pair(profile)
    for seq in range(1, 50):
        protected = client.protect_rtp(rtp(seq))
        assert protected is not None
        assert len(protected) == len(rtp(seq)) + profile.tag_length
        assert server.unprotect_rtp(protected) == rtp(seq)
        back = server.protect_rtp(rtp(seq, ssrc=99))
        assert back is not None and client.unprotect_rtp(back) == rtp(seq, ssrc=99)
    srtcp = client.protect_rtcp(rtcp_rr())
    assert srtcp is not None and server.unprotect_rtcp(srtcp) == rtcp_rr()
    assert server.stats.rtp_in == 49 and server.stats.rtcp_in == 1


@pytest.mark.parametrize("profile", [AEAD_AES_128_GCM, AES128_CM_SHA1_80], ids=lambda p: p.name)
def test_replay_and_tamper_counted_separately(profile: SrtpProfile) -> None:
    client, server = pair(profile)
    first = client.protect_rtp(rtp(1))
    assert first is not None and server.unprotect_rtp(first) is not None
    assert server.unprotect_rtp(first) is None
    assert server.stats.replay_failures == 1 and server.stats.auth_failures == 0

    genuine = client.protect_rtp(rtp(2))
    assert genuine is not None
    tampered = bytearray(genuine)
    tampered[-1] ^= 0x01
    assert server.unprotect_rtp(bytes(tampered)) is None
    assert server.stats.auth_failures == 1 and server.stats.replay_failures == 1
    # A forged packet must not move the replay window: the genuine one still gets in.
    assert server.unprotect_rtp(genuine) == rtp(2)

    rr = client.protect_rtcp(rtcp_rr())
    assert rr is not None and server.unprotect_rtcp(rr) is not None
    assert server.unprotect_rtcp(rr) is None
    assert server.stats.replay_failures == 2


def test_lengths_checked_before_libsrtp() -> None:
    client, server = pair(AES128_CM_SHA1_80)
    assert server.unprotect_rtp(rtp(1)[:12] + bytes(9)) is None  # shorter than header + tag
    assert server.unprotect_rtcp(rtcp_rr() + bytes(13)) is None  # header + index + tag = 22
    assert server.unprotect_rtp(b"\x80" * 1600) is None
    assert server.stats.bad_length == 3
    assert client.protect_rtp(rtp(1, payload=bytes(1400))) is None
    assert client.protect_rtp(b"\x80\x60") is None
    assert client.stats.protect_failures == 2


def test_new_outbound_ssrcs_need_no_setup_and_can_be_removed() -> None:
    client, server = pair()
    for ssrc in (1, 2, 3, 0xFFFFFFFF):
        protected = client.protect_rtp(rtp(7, ssrc=ssrc))
        assert protected is not None and server.unprotect_rtp(protected) == rtp(7, ssrc=ssrc)
    assert client.remove_outbound_ssrc(2)
    assert not client.remove_outbound_ssrc(12345)


def test_replay_window_is_at_least_64() -> None:
    with pytest.raises(ValueError):
        pair(window=32)
    client, server = pair(window=64)
    packets = [client.protect_rtp(rtp(seq)) for seq in range(1, 200)]
    assert server.unprotect_rtp(packets[-1]) is not None  # type: ignore[arg-type]
    assert server.unprotect_rtp(packets[-60]) is not None  # type: ignore[arg-type] # in window
    assert server.unprotect_rtp(packets[0]) is None  # type: ignore[arg-type] # too old
    assert server.stats.replay_failures == 1
