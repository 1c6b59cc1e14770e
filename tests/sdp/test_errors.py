"""Malformed remote SDP ends in one precise SdpError naming the line and the problem."""

from __future__ import annotations

import pytest

from router.errors import RemoteProtocolError
from router.sdp import SdpError, answer_publisher_offer, describe, parse_sdp
from tests.sdp.capture_chromium import router_transport
from tests.sdp.fixtures import load

HEAD = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def _error(text: str) -> SdpError:
    with pytest.raises(SdpError) as info:
        describe(parse_sdp(text))
    return info.value


def _offer_with(old: str, new: str, name: str = "chromium_av_sendonly_offer.sdp") -> str:
    text = load(name)
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    """The last line equal to ``needle``, else the last containing it."""
    lines = list(enumerate(text.split("\r\n"), 1))
    exact = [i for i, line in lines if line == needle]
    return exact[-1] if exact else [i for i, line in lines if needle in line][-1]


def test_sdp_error_is_a_remote_protocol_error() -> None:
    assert issubclass(SdpError, RemoteProtocolError)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", None, "SDP is empty"),
        ("o=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\n", 1, "must start with a 'v=' line, got 'o='"),
        ("v=1\r\n", 1, "unsupported SDP version '1'"),
        ("v=0\r\ns=-\r\n", 2, "must be followed by 'o=' and 's='"),
        ("v=0\r\no=- 1 2 IN IP4\r\ns=-\r\n", 2, "o= line needs 6 fields"),
        ("v=0\r\no=- 1 x IN IP4 a\r\ns=-\r\n", 2, "session version 'x' is not a number"),
        (HEAD + "garbage\r\n", 5, "expected '<type>=<value>', got 'garbage'"),
        (HEAD + "y=1\r\n", 5, "unknown line type 'y='"),
        (
            HEAD + "m=audio 9 RTP/AVP 0\r\nt=0 0\r\n",
            6,
            "'t=' is not allowed inside a media section",
        ),
        (HEAD + "v=0\r\n", 5, "duplicate 'v=' line"),
        (HEAD + "a=\r\n", 5, "bad attribute name ''"),
        (HEAD + "a=x\x00y\r\n", 5, "stray CR or NUL"),
    ],
)
def test_syntax_errors(text: str, line: int | None, message: str) -> None:
    error = _error(text)
    assert error.line == line
    assert message in str(error)
    if line is not None:
        assert str(error).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    ("m_line", "message"),
    [
        ("m=audio 9 UDP/TLS/RTP/SAVPF", "expected '<media> <port> <proto> <fmt> ...'"),
        ("m=audio", "expected '<media> <port> <proto> <fmt> ...'"),
        ("m=audio  9 UDP/TLS/RTP/SAVPF 111", "expected '<media> <port> <proto> <fmt> ...'"),
        ("m=audio nine UDP/TLS/RTP/SAVPF 111", "port 'nine' is not a number"),
        ("m=audio 70000 UDP/TLS/RTP/SAVPF 111", "port 70000 is out of range 0-65535"),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111 opus", "payload type 'opus' in m= line is not a number"),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 128", "payload type 128 in m= line is out of range 0-127"),
        ("m=audio 9 UDP/TLS/RTP/SAVPF 111 111", "payload type 111 listed twice"),
    ],
)
def test_bad_m_lines(m_line: str, message: str) -> None:
    error = _error(HEAD + m_line + "\r\n")
    assert error.line == 5
    assert message in str(error)


@pytest.mark.parametrize(
    ("rtpmap", "message"),
    [
        ("a=rtpmap:111 opus", "bad a=rtpmap value '111 opus': expected '<pt> <name>/<clock>"),
        ("a=rtpmap:111 opus/48000/2/9", "bad a=rtpmap value"),
        ("a=rtpmap:111 opus/fast/2", "a=rtpmap clock rate 'fast' is not a number"),
        ("a=rtpmap:200 opus/48000/2", "payload type 200 in a=rtpmap is out of range 0-127"),
        ("a=rtpmap:x opus/48000/2", "payload type 'x' in a=rtpmap is not a number"),
        ("a=rtpmap:111 opus/0/2", "a=rtpmap clock rate 0 is out of range"),
        ("a=rtpmap:111", "bad a=rtpmap value '111'"),
        ("a=rtpmap:", "a=rtpmap needs a value"),
    ],
)
def test_bad_rtpmap_names_the_line(rtpmap: str, message: str) -> None:
    text = _offer_with("a=rtpmap:111 opus/48000/2", rtpmap)
    error = _error(text)
    assert error.line == _line_of(text, rtpmap)
    assert message in str(error)


def test_conflicting_rtpmaps() -> None:
    text = _offer_with(
        "a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/2\r\na=rtpmap:111 PCMU/8000"
    )
    error = _error(text)
    assert error.line == _line_of(text, "a=rtpmap:111 PCMU/8000")
    assert "conflicting a=rtpmap lines for payload type 111" in str(error)


def test_duplicate_mid() -> None:
    text = _offer_with("a=mid:1", "a=mid:0")
    error = _error(text)
    first, second = [i for i, line in enumerate(text.split("\r\n"), 1) if line == "a=mid:0"]
    assert error.line == second
    assert f"duplicate a=mid:0 (first at line {first})" in str(error)


def test_bundle_naming_an_unknown_mid() -> None:
    text = _offer_with("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 7")
    error = _error(text)
    assert error.line == _line_of(text, "a=group:BUNDLE")
    assert "a=group:BUNDLE names mid '7' that no m-section has" in str(error)


def test_mid_in_two_bundle_groups() -> None:
    text = _offer_with("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1\r\na=group:BUNDLE 1")
    assert "mid '1' is in two BUNDLE groups" in str(_error(text))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "a=rtcp-fb:96 nack pli",
            "a=rtcp-fb:300 nack pli",
            "payload type 300 in a=rtcp-fb is out of range",
        ),
        ("a=rtcp-fb:96 nack pli", "a=rtcp-fb:96", "bad a=rtcp-fb value '96'"),
        ("a=fmtp:97 apt=96", "a=fmtp:abc apt=96", "payload type 'abc' in a=fmtp is not a number"),
        ("a=setup:actpass", "a=setup:sideways", "bad a=setup value 'sideways'"),
        ("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ:", "is not colon-separated hex"),
        ("a=sendonly", "a=sendonly\r\na=recvonly", "conflicting direction attributes"),
        (
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:256 urn:x",
            "a=extmap id 256 is out of range 1-255",
        ),
        (
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:2 urn:x",
            "a=extmap id 2 is used for two extensions",
        ),
        (
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:4/sideways urn:x",
            "bad a=extmap direction",
        ),
        (
            "a=ssrc-group:FID ",
            "a=ssrc-group:FID 99999999999 ",
            "a=ssrc-group SSRC 99999999999 is out of range",
        ),
        ("a=mid:1", "a=mid:1\r\na=mid:2", "more than one a=mid in one m-section"),
    ],
)
def test_bad_attribute_values(old: str, new: str, message: str) -> None:
    text = _offer_with(old, new)
    error = _error(text)
    assert message in str(error)
    assert error.line == _line_of(text, new.split("\r\n")[-1])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "a=simulcast:send q;h;f",
            "a=simulcast:send q;h;x",
            "names rid 'x' without a matching 'a=rid:x send'",
        ),
        ("a=simulcast:send q;h;f", "a=simulcast:send rid=q;h", "draft-era 'rid=' simulcast syntax"),
        ("a=simulcast:send q;h;f", "a=simulcast:send q send h", "lists 'send' twice"),
        ("a=simulcast:send q;h;f", "a=simulcast:up q", "bad a=simulcast direction 'up'"),
        ("a=simulcast:send q;h;f", "a=simulcast:send", "expected 'send <rids>'"),
        ("a=simulcast:send q;h;f", "a=simulcast:send q;;h", "bad rid '' in a=simulcast"),
        ("a=rid:h send", "a=rid:h sideways", "bad a=rid direction 'sideways'"),
        ("a=rid:h send", "a=rid:q send", "duplicate a=rid:q"),
        ("a=rid:h send", "a=rid:h! send", "bad rid id 'h!'"),
    ],
)
def test_bad_simulcast(old: str, new: str, message: str) -> None:
    text = _offer_with(old, new, "chromium_simulcast_offer.sdp")
    error = _error(text)
    assert message in str(error)
    assert error.line == _line_of(text, new)


def test_bad_candidate() -> None:
    text = _offer_with(
        "typ host generation 0 network-id 1\r\n",
        "typ host generation\r\n",
        "chromium_simulcast_offer.sdp",
    )
    error = _error(text)
    assert "bad a=candidate value" in str(error)


def test_non_utf8_and_oversized_input() -> None:
    with pytest.raises(SdpError, match="not valid UTF-8"):
        parse_sdp(b"v=0\r\n\xff\r\n")
    with pytest.raises(SdpError, match="more than the"):
        parse_sdp("v=0\r\n" + "a=x\r\n" * 100_000)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("a=ice-ufrag:", "a=x-ice-ufrag:", "has no a=ice-ufrag/a=ice-pwd"),
        ("a=fingerprint:", "a=x-fingerprint:", "has no a=fingerprint"),
        ("a=setup:actpass", "a=setup:holdconn", "holdconn offers no DTLS connection"),
        ("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1\r\na=ice-lite", "the peer is ICE-lite too"),
    ],
)
def test_unusable_offers(old: str, new: str, message: str) -> None:
    text = load("chromium_av_sendonly_offer.sdp").replace(old, new)
    with pytest.raises(SdpError, match=message):
        answer_publisher_offer(text, router_transport())


def test_offer_without_mid() -> None:
    text = _offer_with("a=mid:0\r\n", "").replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")
    with pytest.raises(SdpError, match="m-section has no a=mid") as info:
        answer_publisher_offer(text, router_transport())
    assert info.value.line == _line_of(text, "m=audio")
