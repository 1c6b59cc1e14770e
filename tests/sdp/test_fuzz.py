"""Whatever text arrives, the SDP layer raises SdpError or nothing (ARCHITECTURE.md §7)."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from router.sdp import SdpError, answer_publisher_offer, describe, parse_sdp
from router.sdp.subscriber import apply_subscriber_answer
from tests.sdp.capture_chromium import router_transport
from tests.sdp.fixtures import OFFER_FIXTURES, SUBSCRIBER_ANSWERS, load
from tests.sdp.test_subscriber import offer_for_step

LOCAL = router_transport()
FIXTURE_LINES = {name: load(name).split("\r\n") for name in OFFER_FIXTURES + SUBSCRIBER_ANSWERS}


def _everything(text: str | bytes) -> None:
    """Parse, describe and answer; only SdpError may escape."""
    with contextlib.suppress(SdpError):
        describe(parse_sdp(text))
    with contextlib.suppress(SdpError):
        answer_publisher_offer(text, LOCAL)


@given(st.text(max_size=2000))
def test_arbitrary_text(text: str) -> None:
    _everything(text)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    _everything(data)


_sdp_ish = st.lists(
    st.tuples(
        st.sampled_from("vosmcbtaxz"),
        st.sampled_from(
            [
                "0",
                "- 1 2 IN IP4 1.2.3.4",
                "audio 9 UDP/TLS/RTP/SAVPF 111",
                "video 0 RTP/AVP 96",
                "group:BUNDLE 0 1",
                "mid:0",
                "mid:1",
                "rtpmap:111 opus/48000/2",
                "rtcp-mux",
                "fmtp:111 x",
                "rid:a send",
                "simulcast:send a;~b",
                "setup:actpass",
                "ice-ufrag:abcd",
                "ice-pwd:0123456789012345678901",
                "fingerprint:sha-256 00",
                "extmap:1 u",
                "",
                "candidate:1 1 udp 1 1.2.3.4 9 typ host",
                "ssrc-group:FID 1 2",
                "ssrc:1 cname:x",
            ]
        ),
    ),
    max_size=40,
).map(lambda lines: "\r\n".join(f"{k}={v}" for k, v in lines))


@given(_sdp_ish)
def test_sdp_shaped_line_soup(text: str) -> None:
    _everything(text)


@st.composite
def _mutated_fixture(draw: st.DrawFn) -> str:
    lines = list(FIXTURE_LINES[draw(st.sampled_from(sorted(FIXTURE_LINES)))])
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "truncate", "garble", "swap"]))
        if action == "drop":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "truncate":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        elif action == "garble":
            line = lines[index]
            pos = draw(st.integers(0, len(line)))
            lines[index] = line[:pos] + draw(st.text(max_size=4)) + line[pos:]
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        if not lines:
            break
    return "\r\n".join(lines)


@given(_mutated_fixture())
def test_mutated_browser_sdp(text: str) -> None:
    _everything(text)


@given(_mutated_fixture())
def test_mutated_subscriber_answers(text: str) -> None:
    offer = offer_for_step(1)
    with contextlib.suppress(SdpError):
        apply_subscriber_answer(offer.plan, text)
