"""The router's answers to publisher offers: real Chromium captures and the Firefox-style one."""

from __future__ import annotations

import dataclasses
import re

import pytest

from router.sdp import (
    DEFAULT_CAPABILITIES,
    Direction,
    DtlsRole,
    LocalTransportParams,
    PublisherAnswer,
    Setup,
    answer_publisher_offer,
    describe,
    parse_sdp,
)
from router.sdp.capabilities import (
    ABS_SEND_TIME,
    REPAIRED_RTP_STREAM_ID,
    RTP_STREAM_ID,
    SDES_MID,
    TRANSPORT_WIDE_CC,
)
from tests.sdp.capture_chromium import router_transport
from tests.sdp.fixtures import OFFER_FIXTURES, load

LOCAL = router_transport()
SUPPORTED = {SDES_MID, ABS_SEND_TIME, TRANSPORT_WIDE_CC, RTP_STREAM_ID, REPAIRED_RTP_STREAM_ID}


def _answer(text: str, local: LocalTransportParams = LOCAL, **kwargs: object) -> PublisherAnswer:
    return answer_publisher_offer(text, local, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", OFFER_FIXTURES)
def test_answer_invariants(name: str) -> None:
    offer = describe(parse_sdp(load(name)))
    result = _answer(load(name))
    answer = describe(parse_sdp(result.text))  # our answer is valid SDP by our own rules
    assert answer.ice_lite
    assert [m.mid for m in answer.media] == [m.mid for m in offer.media]
    accepted = [m for m in answer.media if not m.rejected]
    assert [g.mids for g in answer.bundle_groups] == [tuple(m.mid for m in accepted)]
    assert result.negotiated.bundle == tuple(m.mid for m in accepted)
    for ours, theirs in zip(answer.media, offer.media, strict=True):
        if ours.rejected:
            assert (
                ours.port == 0 and ours.kind == theirs.kind and ours.direction is Direction.INACTIVE
            )
            continue
        t = ours.transport
        assert (t.ice_ufrag, t.ice_pwd, t.setup) == (LOCAL.ice_ufrag, LOCAL.ice_pwd, Setup.PASSIVE)
        assert t.fingerprints == (LOCAL.fingerprint,)
        assert [c.value() for c in t.candidates] == ["1 1 udp 2130706431 127.0.0.1 40000 typ host"]
        assert t.end_of_candidates and ours.rtcp_mux and ours.port == 40000
        assert ours.rtcp_rsize == theirs.rtcp_rsize
        assert ours.direction is (
            Direction.RECVONLY if theirs.direction.sends else Direction.INACTIVE
        )
        offered_ids = {e.id: e.uri for e in theirs.extensions}
        for ext in ours.extensions:
            assert ext.uri in SUPPORTED and offered_ids[ext.id] == ext.uri  # the offerer's ids
        main = ours.codecs[0]
        offered = theirs.codec(main.payload_type)
        assert offered is not None and offered.name == main.name
        if ours.kind == "audio":
            assert (main.name.lower(), main.clock_rate, main.channels) == ("opus", 48000, 2)
            assert main.parameters == (("minptime", "10"), ("useinbandfec", "1"))
            assert len(ours.codecs) == 1
        else:
            assert main.name == "VP8"
            rtx = ours.codecs[1]
            assert rtx.name == "rtx" and rtx.apt == main.payload_type
            assert theirs.codec(rtx.payload_type) is not None
        for fb in main.feedback:
            assert fb in offered.feedback
    assert result.negotiated.remote.dtls_role is DtlsRole.SERVER


def test_chromium_av_sendonly() -> None:
    result = _answer(load("chromium_av_sendonly_offer.sdp"))
    audio, video = result.negotiated.media
    assert (audio.mid, audio.kind, audio.direction) == ("0", "audio", Direction.RECVONLY)
    assert audio.codec.payload_type == 111 and audio.codec.has_feedback("transport-cc")
    assert (video.codec.name, video.codec.payload_type, video.codec.rtx_payload_type) == (
        "VP8",
        96,
        97,
    )
    assert video.rtx_map() == {97: 96}
    assert [str(fb.text()) for fb in video.codec.feedback] == [
        "goog-remb",
        "transport-cc",
        "ccm fir",
        "nack",
        "nack pli",
    ]
    assert len(video.ssrcs) == 2 and video.rtx_ssrc(video.ssrcs[0]) == video.ssrcs[1]
    assert video.cname is not None and video.msid is not None and video.msid.track_id
    assert video.extension_id(SDES_MID) == 4 and video.extension_id(TRANSPORT_WIDE_CC) == 3
    assert video.rids == () and video.simulcast is None
    assert "a=extmap-allow-mixed" in result.text and result.negotiated.extmap_allow_mixed


def test_chromium_simulcast_answer_receives_every_rid() -> None:
    result = _answer(load("chromium_simulcast_offer.sdp"))
    (video,) = result.negotiated.media
    assert video.rids == ("q", "h", "f")
    assert (
        "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n" in result.text
    )
    assert (
        video.extension_id(RTP_STREAM_ID) == 10 and video.extension_id(REPAIRED_RTP_STREAM_ID) == 11
    )


def test_simulcast_alternatives_and_paused_are_mirrored() -> None:
    text = load("chromium_simulcast_offer.sdp").replace(
        "a=simulcast:send q;h;f", "a=simulcast:send q,h;~f"
    )
    result = _answer(text)
    assert "a=simulcast:recv q,h;~f\r\n" in result.text
    assert result.negotiated.media[0].rids == ("q", "h", "f")


def test_simulcast_needs_the_rid_extension() -> None:
    text = load("chromium_simulcast_offer.sdp").replace(
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "a=extmap:10 urn:x-other"
    )
    result = _answer(text)
    assert "a=simulcast" not in result.text and result.negotiated.media[0].rids == ()


def test_chromium_recvonly_is_answered_inactive() -> None:
    result = _answer(load("chromium_recvonly_offer.sdp"))
    assert [m.direction for m in result.negotiated.media] == [Direction.INACTIVE] * 2
    assert "a=simulcast" not in result.text


def test_chromium_data_channel_is_rejected_cleanly() -> None:
    result = _answer(load("chromium_datachannel_offer.sdp"))
    assert result.rejected == (("2", "application sections are not supported yet"),)
    assert result.negotiated.rejected_mids == ("2",)
    rejected = "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    assert rejected + "a=mid:2\r\na=inactive\r\n" in result.text
    assert "a=group:BUNDLE 0 1\r\n" in result.text


def test_rejected_bundle_tag_moves_the_tag() -> None:
    text = load("chromium_datachannel_offer.sdp").replace(
        "a=group:BUNDLE 0 1 2", "a=group:BUNDLE 2 0 1"
    )
    result = _answer(text)
    assert result.negotiated.bundle == ("0", "1")
    assert (
        result.negotiated.remote.ice_ufrag == describe(parse_sdp(text)).media[2].transport.ice_ufrag
    )


def test_firefox_style_offer() -> None:
    result = _answer(load("firefox_simulcast_offer.sdp"))
    audio, video = result.negotiated.media
    assert audio.codec.payload_type == 109 and audio.codec.name == "opus"
    assert [e.id for e in audio.extensions] == [
        3
    ]  # ssrc-audio-level unsupported; 2/recvonly dropped
    assert (video.codec.payload_type, video.codec.rtx_payload_type) == (120, 124)
    assert video.codec.parameters == (("max-fs", "12288"), ("max-fr", "60"))  # what it sends
    assert "a=fmtp:120" not in result.text  # VP8 needs no fmtp from us
    assert {e.uri: e.id for e in video.extensions} == {
        SDES_MID: 3,
        ABS_SEND_TIME: 4,
        TRANSPORT_WIDE_CC: 7,
        RTP_STREAM_ID: 8,
        REPAIRED_RTP_STREAM_ID: 9,
    }
    assert video.rids == ("h", "m", "l") and "a=simulcast:recv h;m;l\r\n" in result.text
    assert len(video.ssrcs) == 6 and len(video.ssrc_groups) == 3
    assert video.msid is not None and video.msid.stream_id.startswith("{")
    remote = result.negotiated.remote
    assert remote.fingerprints[0].digest[:2] == b"\x4a\x71"  # from the session level
    assert remote.ice_options == ("trickle",) and remote.ice_ufrag == "5c9e1a2b"
    assert "a=extmap-allow-mixed" not in result.text


@pytest.mark.parametrize(
    ("offered", "preferred", "ours", "role"),
    [
        ("actpass", Setup.PASSIVE, "passive", DtlsRole.SERVER),
        ("actpass", Setup.ACTIVE, "active", DtlsRole.CLIENT),
        ("active", Setup.PASSIVE, "passive", DtlsRole.SERVER),
        ("passive", Setup.PASSIVE, "active", DtlsRole.CLIENT),
    ],
)
def test_dtls_setup_roles(offered: str, preferred: Setup, ours: str, role: DtlsRole) -> None:
    text = load("chromium_av_sendonly_offer.sdp").replace("a=setup:actpass", f"a=setup:{offered}")
    result = _answer(text, dataclasses.replace(LOCAL, answer_setup=preferred))
    assert f"a=setup:{ours}\r\n" in result.text and f"a=setup:{offered}" not in result.text.replace(
        f"a=setup:{ours}", ""
    )
    assert result.negotiated.remote.dtls_role is role


def test_h264_preferred_picks_packetization_mode_1_with_matching_profile() -> None:
    h264_first = dataclasses.replace(
        DEFAULT_CAPABILITIES,
        codecs=tuple(sorted(DEFAULT_CAPABILITIES.codecs, key=lambda c: c.name != "H264")),
    )
    result = _answer(load("chromium_av_sendonly_offer.sdp"), capabilities=h264_first)
    video = result.negotiated.media[1]
    offered = describe(parse_sdp(load("chromium_av_sendonly_offer.sdp"))).media[1]
    chosen = offered.codec(video.codec.payload_type)
    assert chosen is not None and chosen.name == "H264"
    assert (
        chosen.param("packetization-mode") == "1" and chosen.param("profile-level-id") == "42e01f"
    )
    assert video.codec.rtx_payload_type is not None
    fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    assert f"a=fmtp:{chosen.payload_type} {fmtp}" in result.text


def test_section_without_supported_codec_or_rtcp_mux_is_rejected() -> None:
    text = load("chromium_av_sendonly_offer.sdp")
    no_vp8 = text.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP7/90000")
    result = _answer(
        no_vp8.replace("a=rtpmap:108 H264/90000", "a=rtpmap:108 H265/90000").replace(
            "a=rtpmap:102 H264/90000", "a=rtpmap:102 H265/90000"
        )
    )
    assert result.rejected == (("1", "no supported codec"),)
    assert result.negotiated.bundle == ("0",) and "m=video 0 " in result.text
    head, video = text.split("m=video", 1)
    result = _answer(head + "m=video" + video.replace("a=rtcp-mux\r\n", ""))
    assert result.rejected == (("1", "a=rtcp-mux is required"),)


def test_unbundled_and_non_srtp_sections() -> None:
    text = load("chromium_av_sendonly_offer.sdp")
    result = _answer(text.replace("a=group:BUNDLE 0 1\r\n", ""))
    assert result.rejected == (("1", "no BUNDLE group, and the router uses a single transport"),)
    assert result.negotiated.bundle == () and "a=group" not in result.text
    result = _answer(text.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0"))
    assert result.rejected == (("1", "not in the offer's BUNDLE group"),)
    result = _answer(re.sub(r"(m=video \d+) UDP/TLS/RTP/SAVPF", r"\1 RTP/AVPF", text))
    assert result.rejected == (("1", "protocol RTP/AVPF is not DTLS-SRTP"),)


def test_offerer_rejected_section_stays_rejected() -> None:
    text = load("chromium_av_sendonly_offer.sdp")
    audio_port = describe(parse_sdp(text)).media[0].port
    result = _answer(text.replace(f"m=audio {audio_port} ", "m=audio 0 ", 1))
    assert result.rejected == (("0", "rejected by the offerer (port 0)"),)
    assert result.negotiated.bundle == ("1",)


def test_origin_and_session_version() -> None:
    result = _answer(load("chromium_av_sendonly_offer.sdp"), session_version=7)
    assert result.sdp.origin.session_id == "4242" and result.sdp.origin.session_version == 7
    derived = dataclasses.replace(LOCAL, session_id=None).origin_session_id()
    assert derived.isdigit() and int(derived) < 2**62
