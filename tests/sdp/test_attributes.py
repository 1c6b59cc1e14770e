"""Structured attribute values: parse what browsers write, write it back the same way."""

from __future__ import annotations

from typing import Any

import pytest

from router.sdp import (
    Candidate,
    Direction,
    ExtMap,
    Fingerprint,
    Fmtp,
    RtcpFeedback,
    RtcpFeedbackAttr,
    Rtpmap,
    SdpError,
    SdpUsageError,
    Simulcast,
    SimulcastStream,
    SsrcAttr,
    SsrcGroup,
    host_candidate,
)
from router.sdp.attributes import Group, Msid, Setup
from router.sdp.capabilities import h264_profile
from router.sdp.simulcast import Rid


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (Rtpmap, "111 opus/48000/2"),
        (Rtpmap, "96 VP8/90000"),
        (Fmtp, "111 minptime=10;useinbandfec=1"),
        (Fmtp, "63 111/111"),
        (RtcpFeedbackAttr, "96 nack pli"),
        (RtcpFeedbackAttr, "* transport-cc"),
        (ExtMap, "3 urn:ietf:params:rtp-hdrext:sdes:mid"),
        (ExtMap, "2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level"),
        (ExtMap, "7 urn:x some attributes"),
        (Fingerprint, "sha-256 " + ":".join(["AB"] * 32)),
        (Fingerprint, "sha-1 " + ":".join(["0F"] * 20)),
        (Fingerprint, "sha-512 " + ":".join(["01"] * 64)),
        (SsrcAttr, "1234 cname:abc"),
        (SsrcAttr, "1234 msid:stream track"),
        (SsrcGroup, "FID 1 2"),
        (SsrcGroup, "SIM 1 2 3"),
        (Group, "BUNDLE 0 1 2"),
        (Msid, "- track"),
        (Rid, "h send max-width=1280;pt=96,97"),
        (Simulcast, "send f;h;q"),
        (Simulcast, "send a,b;~c recv d"),
        (Candidate, "1 1 udp 2130706431 127.0.0.1 40000 typ host"),
        (Candidate, "3342408934 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active generation 0"),
        (Candidate, "1 1 udp 1 203.0.113.9 5000 typ srflx raddr 10.0.0.1 rport 5000"),
    ],
)
def test_round_trip(cls: Any, value: str) -> None:
    parsed = cls.parse(value, 1)
    assert parsed.value() == value
    assert cls.parse(parsed.value(), 1) == parsed


def test_fingerprint_is_normalised() -> None:
    fp = Fingerprint.parse("SHA-256 " + ":".join(["ab"] * 32), 3)
    assert fp.algorithm == "sha-256" and fp.digest == b"\xab" * 32
    with pytest.raises(
        SdpError, match="line 3: a=fingerprint sha-256 digest has 2 bytes, expected 32"
    ):
        Fingerprint.parse("sha-256 AB:CD", 3)
    with pytest.raises(SdpUsageError):
        Fingerprint("sha-256", b"short")


def test_simulcast_alternatives_and_paused() -> None:
    sim = Simulcast.parse("send 1,2;~3 recv 4", 1)
    assert sim.send == ((SimulcastStream("1"), SimulcastStream("2")), (SimulcastStream("3", True),))
    assert sim.rids("send") == ("1", "2", "3") and sim.rids("recv") == ("4",)
    assert sim.reversed().value() == "send 4 recv 1,2;~3"


def test_rid_payload_type_restriction() -> None:
    assert Rid.parse("h send pt=96,97;max-fps=30", 1).payload_types() == (96, 97)
    assert Rid.parse("h send", 1).payload_types() is None


def test_direction_helpers() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.of(sends=False, receives=False) is Direction.INACTIVE
    assert Setup.parse("ACTPASS", 1) is Setup.ACTPASS


def test_rtcp_feedback_wildcard() -> None:
    fb = RtcpFeedbackAttr.parse("* ccm fir", 1)
    assert fb.payload_type is None and fb.feedback == RtcpFeedback("ccm", "fir")


def test_host_candidates() -> None:
    assert (
        host_candidate("127.0.0.1", 40000).value() == "1 1 udp 2130706431 127.0.0.1 40000 typ host"
    )
    second = host_candidate("::1", 40000, index=1)
    assert second.foundation == "2" and second.priority < 2130706431
    with pytest.raises(SdpUsageError):
        host_candidate("example.com", 1)
    with pytest.raises(SdpUsageError):
        host_candidate("127.0.0.1", 0)


@pytest.mark.parametrize(
    ("plid", "profile"),
    [
        ("42e01f", "constrained-baseline"),
        ("42001f", "baseline"),
        ("4d001f", "main"),
        ("640c1f", "constrained-high"),
        ("f4001f", None),
        ("zz", None),
        (None, "baseline"),
    ],
)
def test_h264_profiles(plid: str | None, profile: str | None) -> None:
    assert h264_profile(plid) == profile
