"""The text model: lossless round trips on real SDP, order and unknown attributes kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.sdp import Attribute, MediaDescription, Origin, SessionDescription, parse_sdp
from router.sdp.model import serialize_sdp
from tests.sdp.fixtures import ALL_FIXTURES, load


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixture_round_trip_is_exact(name: str) -> None:
    text = load(name)
    desc = parse_sdp(text)
    assert parse_sdp(serialize_sdp(desc)) == desc
    # Browser SDP already follows RFC 8866 field order, so even the bytes come back.
    assert serialize_sdp(desc) == text


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_attribute_order_and_unknown_attributes_are_kept(name: str) -> None:
    text = load(name)
    desc = parse_sdp(text)
    source = [line[2:] for line in text.split("\r\n") if line.startswith("a=")]
    parsed = [a.text() for a in desc.attributes] + [
        a.text() for m in desc.media for a in m.attributes
    ]
    assert parsed == source


def test_lf_only_and_trailing_blank_lines_are_accepted() -> None:
    text = load("chromium_av_sendonly_offer.sdp")
    assert parse_sdp(text.replace("\r\n", "\n") + "\n\n") == parse_sdp(text)
    assert parse_sdp(text.encode()) == parse_sdp(text)


def test_unknown_attribute_survives_and_property_vs_empty_value() -> None:
    desc = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=x-regio-private:a b:c\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtcp-mux\r\na=x-empty:\r\n"
    )
    assert desc.attributes == (Attribute("x-regio-private", "a b:c"),)
    assert desc.media[0].attributes == (Attribute("rtcp-mux"), Attribute("x-empty", ""))
    assert "a=x-empty:\r\n" in str(desc)


def test_attribute_line_numbers_point_at_the_source() -> None:
    desc = parse_sdp(load("chromium_simulcast_offer.sdp"))
    simulcast = desc.media[0].get("simulcast")
    assert simulcast is not None
    assert (
        load("chromium_simulcast_offer.sdp")
        .split("\r\n")[simulcast.line - 1]
        .startswith("a=simulcast:")
    )


def test_fields_after_attributes_come_back_in_canonical_order() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\na=x\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
    desc = parse_sdp(text)
    assert str(desc).index("t=0 0") < str(desc).index("a=x")
    assert parse_sdp(str(desc)) == desc


# --- generated descriptions ----------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=12,
)
_value = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")),
    max_size=30,
).filter(lambda v: v.strip() == v or v == "")
_attributes = st.lists(st.builds(Attribute, _token, st.none() | _value), max_size=6).map(tuple)
_field_value = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20
)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    rtp = draw(st.booleans())
    if rtp:
        proto = "UDP/TLS/RTP/SAVPF"
        formats = tuple(
            map(str, draw(st.lists(st.integers(0, 127), min_size=1, max_size=5, unique=True)))
        )
    else:
        proto = "UDP/DTLS/SCTP"
        formats = ("webrtc-datachannel",)
    return MediaDescription(
        kind=draw(st.sampled_from(["audio", "video", "application", "text"])),
        port=draw(st.integers(0, 65535)),
        proto=proto,
        formats=formats,
        port_count=draw(st.none() | st.integers(1, 4)),
        fields=tuple(draw(st.lists(st.tuples(st.sampled_from("icbk"), _field_value), max_size=3))),
        attributes=draw(_attributes),
    )


_sessions = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        _field_value,
        _field_value,
        st.integers(0, 2**64),
        st.just("IN"),
        st.sampled_from(["IP4", "IP6"]),
        _field_value,
    ),
    session_name=_field_value,
    fields=st.lists(st.tuples(st.sampled_from("iuepcbtrzk"), _field_value), max_size=4).map(tuple),
    attributes=_attributes,
    media=st.lists(_media(), max_size=4).map(tuple),
)


@given(_sessions)
def test_generated_descriptions_round_trip(desc: SessionDescription) -> None:
    assert parse_sdp(serialize_sdp(desc)) == desc
