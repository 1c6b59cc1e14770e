"""The router as offerer to subscribers: offers, Chromium's answers, renegotiation slots."""

from __future__ import annotations

import re

import pytest

from router.sdp import (
    DEFAULT_CAPABILITIES,
    Direction,
    DtlsRole,
    NegotiatedCodec,
    OutgoingTrack,
    SdpError,
    SdpUsageError,
    SubscriberOffer,
    SubscriberPlan,
    apply_subscriber_answer,
    build_subscriber_offer,
    describe,
    parse_sdp,
    subscriber_codec,
)
from router.sdp.capabilities import ABS_SEND_TIME, SDES_MID, TRANSPORT_WIDE_CC
from tests.sdp.capture_chromium import SUBSCRIBER_STEPS, router_transport, subscriber_track
from tests.sdp.fixtures import load

LOCAL = router_transport()


def run_steps(upto: int) -> list[tuple[SubscriberOffer, SubscriberPlan]]:
    """Replay the captured renegotiation: (offer, plan after Chromium's answer) per step."""
    plan = SubscriberPlan()
    out = []
    for index, (_label, tracks) in enumerate(SUBSCRIBER_STEPS[:upto], start=1):
        plan = plan.with_tracks(subscriber_track(n, kind) for n, kind in tracks)
        offer = build_subscriber_offer(plan, LOCAL)
        plan, _ = apply_subscriber_answer(
            offer.plan, load(f"chromium_subscriber_answer_{index}.sdp")
        )
        out.append((offer, plan))
    return out


def offer_for_step(step: int) -> SubscriberOffer:
    """The router's offer of ``step`` (1-based) in the captured sequence."""
    if step == 1:
        plan = SubscriberPlan().with_tracks(
            subscriber_track(n, k) for n, k in SUBSCRIBER_STEPS[0][1]
        )
        return build_subscriber_offer(plan, LOCAL)
    return run_steps(step)[step - 1][0]


def _mids(offer: SubscriberOffer) -> list[tuple[str, str, int]]:
    return [(m.kind, m.get("mid").value or "", m.port) for m in offer.sdp.media]  # type: ignore[union-attr]


def test_offer_shape() -> None:
    offer = offer_for_step(1)
    info = describe(parse_sdp(offer.text))
    assert offer.sdp.has("ice-lite")
    assert [g.mids for g in info.bundle_groups] == [("0", "1")]
    audio, video = info.media
    for media in info.media:
        assert media.direction is Direction.SENDONLY
        assert media.transport.setup is not None and media.transport.setup.value == "actpass"
        assert media.rtcp_mux and media.rtcp_rsize and media.transport.end_of_candidates
        assert [c.value() for c in media.transport.candidates] == [
            "1 1 udp 2130706431 127.0.0.1 40000 typ host"
        ]
        # transport-wide-cc with its transport-cc feedback (the router numbers packets to
        # subscribers); abs-send-time + goog-remb for those that accept only that.
        assert {e.uri: e.id for e in media.extensions} == {
            SDES_MID: 1, ABS_SEND_TIME: 2, TRANSPORT_WIDE_CC: 3
        }  # fmt: skip
        assert all(any(fb.type == "transport-cc" for fb in c.feedback) for c in media.codecs
                   if c.name != "rtx")  # fmt: skip
        assert media.msid is not None and media.msid.stream_id == "alice-stream"
    assert [(c.payload_type, c.name) for c in audio.codecs] == [(111, "opus")]
    assert audio.codecs[0].parameters == (("minptime", "10"), ("useinbandfec", "1"))
    assert [(c.payload_type, c.name, c.apt) for c in video.codecs] == [
        (96, "VP8", None),
        (97, "rtx", 96),
    ]
    assert [g.value() for g in video.ssrc_groups] == ["FID 1020 1021"]
    assert {s.attr_value for s in video.ssrcs if s.attribute == "cname"} == {"alice"}


def test_chromium_answers_apply_through_renegotiation() -> None:
    steps = run_steps(3)
    assert [_mids(offer) for offer, _ in steps] == [
        [("audio", "0", 40000), ("video", "1", 40000)],
        # the tag's audio removed: its section stays live (parked, inactive); video 3 appends
        [("audio", "0", 40000), ("video", "1", 40000), ("video", "2", 40000)],
        # a parked tag is never recycled: the new audio appends under a fresh mid
        [("audio", "0", 40000), ("video", "1", 40000), ("video", "2", 40000),
         ("audio", "3", 40000)],
    ]  # fmt: skip
    final = steps[-1][1]
    assert [(s.mid, s.track.track_id if s.track else None, s.parked) for s in final.slots] == [
        ("0", None, True),
        ("1", "video-2", False),
        ("2", "video-3", False),
        ("3", "audio-4", False),
    ]
    assert final.tag == "0"
    assert final.next_mid == 4 and final.version == 3 and not final.awaiting_answer


def test_negotiated_session_from_chromium_answer() -> None:
    offer = offer_for_step(1)
    plan, session = apply_subscriber_answer(offer.plan, load("chromium_subscriber_answer_1.sdp"))
    assert session.bundle == ("0", "1") and session.rejected_mids == ()
    assert session.remote.dtls_role is DtlsRole.SERVER  # Chromium answers setup:active
    assert session.remote.fingerprints[0].algorithm == "sha-256"
    audio, video = session.media
    assert audio.direction is Direction.SENDONLY and audio.codec.payload_type == 111
    assert audio.ssrcs == (1010,)
    assert video.codec.name == "VP8" and video.codec.rtx_payload_type == 97
    assert video.rtx_map() == {97: 96} and video.rtx_ssrc(1020) == 1021
    assert video.codec.has_feedback("nack", "pli") and video.codec.has_feedback("ccm", "fir")
    assert video.extension_id(ABS_SEND_TIME) == 2 and video.extension_id(SDES_MID) == 1
    assert video.extension_id(TRANSPORT_WIDE_CC) is None  # not offered to subscribers
    assert plan.remote == session.remote


def _round(plan: SubscriberPlan, tracks: list[OutgoingTrack]) -> SubscriberPlan:
    offer = build_subscriber_offer(plan.with_tracks(tracks), LOCAL)
    return apply_subscriber_answer(offer.plan, _answer_to(offer))[0]


def test_removed_video_is_not_recycled_for_audio() -> None:
    plan = _round(SubscriberPlan(), [subscriber_track(9, "audio"), subscriber_track(1, "video")])
    plan = _round(plan, [subscriber_track(9, "audio")])
    assert plan.slots[1].free and plan.slots[1].track is None
    plan = plan.with_tracks([subscriber_track(9, "audio"), subscriber_track(2, "audio")])
    assert [(s.mid, s.kind, s.track is not None) for s in plan.slots] == [
        ("0", "audio", True),
        ("1", "video", False),
        ("2", "audio", True),
    ]
    plan = plan.with_tracks([subscriber_track(9, "audio"), subscriber_track(2, "audio"),
                             subscriber_track(3, "video")])  # fmt: skip
    assert [s.mid for s in plan.slots] == ["0", "3", "2"]


def test_the_bundle_tag_never_moves() -> None:
    """Removing the tag's track while others stay parks the tag: the group keeps its first mid,
    so the browser keeps its DTLS transport (a moved tag makes Chromium replace it)."""
    plan = _round(SubscriberPlan(), [subscriber_track(1, "audio"), subscriber_track(2, "video")])
    assert plan.tag == "0"
    offer = build_subscriber_offer(plan.with_tracks([subscriber_track(2, "video")]), LOCAL)
    assert describe(offer.sdp).bundle_groups[0].mids == ("0", "1")
    assert offer.sdp.media[0].port == 40000 and offer.sdp.media[0].has("inactive")
    plan, session = apply_subscriber_answer(offer.plan, _answer_to(offer))
    assert [m.mid for m in session.media] == ["1"] and plan.slots[0].parked
    # A recycled slot earlier in the SDP than a live tag still comes after it in the group.
    plan = _round(plan, [subscriber_track(2, "video"), subscriber_track(3, "audio")])
    plan = _round(plan, [subscriber_track(3, "audio")])
    plan = plan.with_tracks([subscriber_track(3, "audio"), subscriber_track(4, "video")])
    offer = build_subscriber_offer(plan, LOCAL)
    assert describe(offer.sdp).bundle_groups[0].mids[0] == "0"
    # The subscriber rejecting the tag moves it (its transport is gone anyway).
    tagged = _round(SubscriberPlan(), [subscriber_track(1, "audio"), subscriber_track(2, "video")])
    offer = build_subscriber_offer(tagged.with_tracks(
        [subscriber_track(1, "audio"), subscriber_track(2, "video"), subscriber_track(3, "audio")]
    ), LOCAL)  # fmt: skip
    plan, _ = apply_subscriber_answer(offer.plan, _answer_to(offer, reject="0"))
    assert plan.tag == "1"


def test_last_track_leaving_parks_its_section_as_the_bundle_anchor() -> None:
    """With nothing left to receive, the offer still has a BUNDLE group (max-bundle needs one):
    the first vacated section stays live and inactive, without msid or SSRCs."""
    plan = _round(SubscriberPlan(), [subscriber_track(1, "video"), subscriber_track(2, "audio")])
    offer = build_subscriber_offer(plan.with_tracks([]), LOCAL)
    assert [(s.mid, s.parked, s.track) for s in offer.plan.slots] == [
        ("0", True, None), ("1", False, None),
    ]  # fmt: skip
    anchor, stopped = offer.sdp.media
    assert describe(offer.sdp).bundle_groups[0].mids == ("0",)
    assert anchor.port == 40000 and stopped.port == 0
    names = [a.name for a in anchor.attributes]
    for name in ("ice-ufrag", "fingerprint", "setup", "mid", "inactive", "rtcp-mux", "candidate"):
        assert name in names, name
    assert "msid" not in names and "ssrc" not in names and "sendonly" not in names
    plan, session = apply_subscriber_answer(offer.plan, _answer_to(offer))
    assert session.media == () and session.bundle == ("0",)
    assert session.remote.ice_ufrag == "abcd"
    assert plan.slots[0].parked and not plan.slots[0].free and plan.slots[1].free
    # Nothing changes while nobody publishes: no further offer is due.
    assert plan.with_tracks([]).slots == plan.slots
    # A new publisher: its audio recycles the freed slot under a fresh mid, its video appends;
    # the parked tag stays parked (never handed to a new track) and first in the group.
    plan = plan.with_tracks([subscriber_track(3, "video"), subscriber_track(4, "audio")])
    assert [(s.mid, s.kind, s.track and s.track.track_id, s.parked) for s in plan.slots] == [
        ("0", "video", None, True), ("3", "audio", "audio-4", False),
        ("2", "video", "video-3", False),
    ]  # fmt: skip
    offer = build_subscriber_offer(plan, LOCAL)
    assert describe(offer.sdp).bundle_groups[0].mids == ("0", "3", "2")
    assert offer.sdp.media[0].port == 40000
    plan, session = apply_subscriber_answer(offer.plan, _answer_to(offer))
    assert [m.mid for m in session.media] == ["3", "2"] and plan.slots[0].parked
    # ... and the next video appends: the parked tag is not recycled.
    tracks = [subscriber_track(3, "video"), subscriber_track(4, "audio")]
    plan = plan.with_tracks([*tracks, subscriber_track(5, "video")])
    assert [s.mid for s in plan.slots] == ["0", "3", "2", "4"]


def test_parked_tag_stays_when_another_kind_goes_live() -> None:
    plan = _round(SubscriberPlan(), [subscriber_track(1, "video")])
    plan = _round(plan, [])
    assert plan.slots[0].parked
    plan = plan.with_tracks([subscriber_track(2, "audio")])
    assert [(s.mid, s.parked, s.free, s.track is not None) for s in plan.slots] == [
        ("0", True, False, False), ("1", False, False, True),
    ]  # fmt: skip
    offer = build_subscriber_offer(plan, LOCAL)
    assert offer.sdp.media[0].port == 40000
    assert describe(offer.sdp).bundle_groups[0].mids == ("0", "1")
    plan, _ = apply_subscriber_answer(offer.plan, _answer_to(offer))
    assert plan.slots[0].parked and not plan.slots[0].free


def test_answers_to_the_parked_section() -> None:
    plan = _round(SubscriberPlan(), [subscriber_track(1, "audio")])
    offer = build_subscriber_offer(plan.with_tracks([]), LOCAL)
    answer = _answer_to(offer)
    with pytest.raises(SdpError, match="the offer made it inactive"):
        apply_subscriber_answer(offer.plan, answer.replace("a=inactive", "a=recvonly"))
    with pytest.raises(SdpError, match="does not BUNDLE mid '0'"):
        apply_subscriber_answer(offer.plan, answer.replace("a=group:BUNDLE 0\r\n", ""))
    # Rejected (port 0) after all: the slot is freed and the connection keeps its transport.
    rejected = answer.replace("a=group:BUNDLE 0\r\n", "").replace("m=audio 9", "m=audio 0")
    plan, session = apply_subscriber_answer(offer.plan, rejected)
    assert plan.slots[0].free and not plan.slots[0].parked and session.bundle == ()
    assert plan.remote is not None and plan.remote.ice_ufrag == "abcd"


def _answer_to(offer: SubscriberOffer, reject: str | None = None) -> str:
    """A minimal well-formed browser-like answer to one of our offers."""
    lines = ["v=0", "o=- 7 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    active = [s.mid for s in offer.plan.bundled() if s.mid != reject]
    if active:
        lines.append("a=group:BUNDLE " + " ".join(active))
    for slot, media in zip(offer.plan.slots, offer.sdp.media, strict=True):
        if (slot.track is None and not slot.parked) or slot.mid == reject:
            lines += [
                f"m={media.kind} 0 {media.proto} {media.formats[0]}",
                "c=IN IP4 0.0.0.0",
                f"a=mid:{slot.mid}",
            ]
            continue
        lines += [
            f"m={media.m_line().split(' ', 2)[0]} 9 {media.proto} {' '.join(media.formats)}",
            "c=IN IP4 0.0.0.0", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789012345678901",
            "a=fingerprint:sha-256 " + ":".join(["11"] * 32), "a=setup:active", f"a=mid:{slot.mid}",
            "a=inactive" if slot.parked else "a=recvonly", "a=rtcp-mux",
        ]  # fmt: skip
        lines += [
            f"a={a.text()}"
            for a in media.attributes
            if a.name in ("rtpmap", "fmtp", "rtcp-fb", "extmap")
        ]
    return "\r\n".join(lines) + "\r\n"


def test_subscriber_rejecting_a_section() -> None:
    plan = SubscriberPlan().with_tracks(
        [subscriber_track(1, "audio"), subscriber_track(2, "video")]
    )
    offer = build_subscriber_offer(plan, LOCAL)
    plan, session = apply_subscriber_answer(offer.plan, _answer_to(offer, reject="1"))
    assert session.rejected_mids == ("1",) and [m.mid for m in session.media] == ["0"]
    assert plan.slots[1].free and plan.slots[1].track is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("a=group:BUNDLE 0 1", "a=group:BUNDLE 0", "does not BUNDLE mid '1'"),
        (
            "a=setup:active\r\na=mid:0",
            "a=setup:actpass\r\na=mid:0",
            "an answer's a=setup must be active or passive",
        ),
        (
            "a=recvonly",
            "a=sendrecv",
            "is sendrecv; an answer to sendonly must be recvonly or inactive",
        ),
        ("a=extmap:2 ", "a=extmap:9 ", "uses extmap id 9"),
        (
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:96 H264/90000",
            "payload type 96 (H264), not offered",
        ),
        (
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
            "m=video 9 UDP/TLS/RTP/SAVPF 97",
            "accepts no offered codec",
        ),
        ("a=mid:1", "a=mid:7", "the answer reordered sections"),
        ("a=rtcp-mux\r\n", "", "lacks a=mid, DTLS-SRTP or a=rtcp-mux"),
    ],
)
def test_bad_subscriber_answers(old: str, new: str, message: str) -> None:
    plan = SubscriberPlan().with_tracks(
        [subscriber_track(1, "audio"), subscriber_track(2, "video")]
    )
    offer = build_subscriber_offer(plan, LOCAL)
    answer = _answer_to(offer)
    assert old in answer
    answer = new.join(answer.rsplit(old, 1))  # the last occurrence: the video section
    if "a=mid:7" in answer:
        answer = answer.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 7")
    with pytest.raises(SdpError, match=re.escape(message)):
        apply_subscriber_answer(offer.plan, answer)


def test_answer_must_match_section_count_and_disabled_sections() -> None:
    offer = offer_for_step(1)
    answer = load("chromium_subscriber_answer_1.sdp")
    with pytest.raises(SdpError, match="the answer has 1 m-sections, the offer had 2"):
        apply_subscriber_answer(
            offer.plan, answer[: answer.index("m=video")].replace(" 0 1\r\n", " 0\r\n")
        )
    offer2 = run_steps(4)[3][0]
    disabled = "m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
    answer2 = _answer_to(offer2)
    assert disabled in answer2
    revived = disabled.replace(" 0 UDP", " 9 UDP") + "a=rtcp-mux\r\na=recvonly\r\n"
    with pytest.raises(SdpError, match="accepts a section the offer disabled"):
        apply_subscriber_answer(offer2.plan, answer2.replace(disabled, revived))


def test_stopped_section_is_a_complete_m_section() -> None:
    """A removed track's section keeps ICE/DTLS attributes, rtcp-mux and the rtpmap/fmtp of the
    codec it carried (aiortc refuses an m-section without them), but no rtcp-fb or RTX."""
    plan = _round(SubscriberPlan(), [subscriber_track(1, "video"), subscriber_track(2, "audio")])
    offer = build_subscriber_offer(plan.with_tracks([subscriber_track(1, "video")]), LOCAL)
    stopped = offer.sdp.media[1]
    assert (stopped.kind, stopped.port, stopped.formats) == ("audio", 0, ("111",))
    names = [a.name for a in stopped.attributes]
    for name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup", "mid", "inactive", "rtcp-mux"):
        assert name in names, name
    assert stopped.get("setup").value == "actpass"  # type: ignore[union-attr]
    assert [a.text() for a in stopped.attributes if a.name in ("rtpmap", "fmtp")] == [
        "rtpmap:111 opus/48000/2",
        "fmtp:111 minptime=10;useinbandfec=1",
    ]
    assert "rtcp-fb" not in names and "candidate" not in names and "msid" not in names
    assert "1" not in describe(offer.sdp).bundle_groups[0].mids
    # A stopped video section lists only its primary payload type, not RTX.
    plan = _round(SubscriberPlan(), [subscriber_track(2, "audio"), subscriber_track(1, "video")])
    removed = build_subscriber_offer(plan.with_tracks([subscriber_track(2, "audio")]), LOCAL)
    video = removed.sdp.media[1]
    assert video.port == 0 and video.formats == ("96",)
    assert [a.text() for a in video.attributes if a.name == "rtpmap"] == ["rtpmap:96 VP8/90000"]


def _aiortc_style(answer: str, mid: str) -> str:
    """aiortc answers a stopped section on a live port with a=inactive (not port 0)."""
    head, sep, rest = answer.partition(f"a=mid:{mid}\r\n")
    section_start = head.rindex("m=")
    m_line_end = head.index("\r\n", section_start)
    m_line = head[section_start:m_line_end].replace(" 0 UDP", " 9 UDP")
    head = head[:section_start] + m_line + head[m_line_end:]
    return head + sep + "a=inactive\r\na=rtcp-mux\r\n" + rest


def test_inactive_answer_to_a_stopped_section_is_accepted_and_counted() -> None:
    offer = run_steps(4)[3][0]
    answer = _aiortc_style(_answer_to(offer), "1")
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=inactive" in answer
    plan, session = apply_subscriber_answer(offer.plan, answer)
    assert session.inactive_stopped_mids == ("1",) and session.rejected_mids == ()
    assert [m.mid for m in session.media] == ["2", "3"]
    assert plan.slots[1].free and plan.slots[1].track is None
    # The next new video track recycles the slot exactly as after a port-0 answer.
    recycled = plan.with_tracks(
        [*(s.track for s in plan.active() if s.track), subscriber_track(5, "video")]
    )
    assert recycled.slots[1].kind == "video" and recycled.slots[1].track is not None
    # A Chromium-style port-0 answer is not counted.
    _, session = apply_subscriber_answer(offer.plan, _answer_to(offer))
    assert session.inactive_stopped_mids == ()


def test_api_misuse() -> None:
    plan = SubscriberPlan().with_tracks([subscriber_track(1, "audio")])
    offer = build_subscriber_offer(plan, LOCAL)
    with pytest.raises(SdpUsageError, match="already awaiting"):
        build_subscriber_offer(offer.plan, LOCAL)
    with pytest.raises(SdpUsageError, match="no offer is awaiting"):
        apply_subscriber_answer(plan, _answer_to(offer))
    clash = subscriber_track(2, "audio")
    clash = type(clash)(**{**{f: getattr(clash, f) for f in clash.__dataclass_fields__},
                           "codec": NegotiatedCodec(111, "PCMU", 8000)})  # fmt: skip
    with pytest.raises(SdpUsageError, match="payload type 111 would mean two codecs"):
        plan.with_tracks([subscriber_track(1, "audio"), clash])
    with pytest.raises(SdpUsageError, match="track_id must be a non-empty token"):
        type(clash)("bad id", "audio", "s", "p", clash.codec, 5)


def test_subscriber_codec_uses_router_payload_types() -> None:
    publisher_h264 = NegotiatedCodec(
        108, "H264", 90000, None,
        (
            ("level-asymmetry-allowed", "1"),
            ("packetization-mode", "1"),
            ("profile-level-id", "42e01f"),
        ),
        rtx_payload_type=109,
    )  # fmt: skip
    codec = subscriber_codec(publisher_h264, DEFAULT_CAPABILITIES)
    assert (codec.payload_type, codec.rtx_payload_type) == (102, 103)
    baseline = subscriber_codec(NegotiatedCodec(
        102, "H264", 90000, None, (("packetization-mode", "1"), ("profile-level-id", "42001f"))
    ))  # fmt: skip
    assert baseline.payload_type == 104
    assert subscriber_codec(NegotiatedCodec(109, "OPUS", 48000, 2)).payload_type == 111
    with pytest.raises(SdpUsageError):
        subscriber_codec(NegotiatedCodec(98, "VP9", 90000))
