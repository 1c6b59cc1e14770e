"""Live check in Debian Chromium: it accepts the router's answers and answers its offers.

Skips only when /usr/bin/chromium is absent. Uses the same driver as the fixture capture script
(``tests/sdp/capture_chromium.py``), so a pass here means today's code still produces SDP that
Chromium's ``setRemoteDescription`` takes, for every publisher shape and every renegotiation step.
"""

from __future__ import annotations

import pytest

from router.sdp import parse_sdp
from tests.sdp.capture_chromium import (
    OFFER_NAMES,
    SUBSCRIBER_STEPS,
    Capture,
    capture_with_chromium,
)

pytestmark = pytest.mark.browser
# Chromium is a declared dependency (make setup): missing, capture_with_chromium fails loudly.


@pytest.fixture(scope="module")
def capture() -> Capture:
    return capture_with_chromium()


def test_chromium_accepts_every_publisher_answer(capture: Capture) -> None:
    assert set(capture.answer_results) == set(OFFER_NAMES)
    for name, result in capture.answer_results.items():
        assert result["ok"], (
            f"Chromium {capture.version} refused our answer to {name}: {result['error']}"
        )
        assert result["signaling"] == "stable"
    av = {t["mid"]: t for t in capture.answer_results["av_sendonly"]["transceivers"]}
    assert {mid: t["current"] for mid, t in av.items()} == {"0": "sendonly", "1": "sendonly"}
    recv = capture.answer_results["recvonly"]["transceivers"]
    assert [t["current"] for t in recv] == ["inactive", "inactive"]


def test_live_offers_parse(capture: Capture) -> None:
    for offer in capture.offers.values():
        assert parse_sdp(offer).has("group")


def test_chromium_answers_every_subscriber_offer(capture: Capture) -> None:
    assert len(capture.subscriber_answers) == len(SUBSCRIBER_STEPS)
    for (label, _), result in zip(SUBSCRIBER_STEPS, capture.subscriber_answers, strict=True):
        assert result["ok"], f"Chromium refused our subscriber offer ({label}): {result['error']}"
        # The BUNDLE tag never moves, so Chromium keeps one DTLS transport for the connection's
        # life (a moved tag makes it replace the transport, which the router sees as a close).
        assert result["sameTransport"], f"Chromium replaced the DTLS transport ({label})"
    # Round 2: the tag's track went; its section is parked (live, inactive), not stopped.
    second = parse_sdp(capture.subscriber_offers[1])
    assert second.get("group").value == "BUNDLE 0 1 2"  # type: ignore[union-attr]
    assert second.media[0].port == 40000 and second.media[0].has("inactive")
    third = capture.subscriber_answers[2]["transceivers"]
    live = {t["mid"]: (t["kind"], t["current"]) for t in third if not t["stopped"]}
    assert live == {
        "0": ("audio", "inactive"),
        "1": ("video", "recvonly"),
        "2": ("video", "recvonly"),
        "3": ("audio", "recvonly"),
    }
    assert [s.mid for s in capture.subscriber_plans[2].active()] == ["1", "2", "3"]
    # The removal: Chromium takes the stopped section (ICE/DTLS attributes, rtcp-mux, rtpmap,
    # a=inactive, port 0), stops that transceiver and answers it with port 0.
    fourth = capture.subscriber_answers[3]["transceivers"]
    live = {t["mid"]: (t["kind"], t["current"]) for t in fourth if not t["stopped"]}
    assert live == {"0": ("audio", "inactive"), "2": ("video", "recvonly"),
                    "3": ("audio", "recvonly")}  # fmt: skip
    plan = capture.subscriber_plans[3]
    assert [s.mid for s in plan.active()] == ["2", "3"]
    assert plan.slots[1].mid == "1" and plan.slots[1].free
    stopped = parse_sdp(capture.subscriber_offers[3]).media[1]
    assert stopped.port == 0 and stopped.has("ice-ufrag") and stopped.has("rtcp-mux")
    answer = parse_sdp(capture.subscriber_answers[3]["sdp"]).media[1]
    assert answer.port == 0


def test_chromium_max_bundle_takes_an_offer_with_nothing_to_receive(capture: Capture) -> None:
    """Every publisher gone: the offer keeps a BUNDLE group on the parked tag (mid 0, live,
    inactive) and Chromium with max-bundle accepts it; the transport stays up for later."""
    offer = parse_sdp(capture.subscriber_offers[4])
    assert offer.get("group").value == "BUNDLE 0"  # type: ignore[union-attr]
    result = capture.subscriber_answers[4]
    transceivers = {t["mid"]: t for t in result["transceivers"]}
    assert not transceivers["0"]["stopped"] and transceivers["0"]["current"] == "inactive"
    assert [mid for mid, t in transceivers.items() if not t["stopped"]] == ["0"]
    assert parse_sdp(result["sdp"]).get("group").value == "BUNDLE 0"  # type: ignore[union-attr]
    plan = capture.subscriber_plans[4]
    assert plan.active() == () and [s.mid for s in plan.bundled()] == ["0"]


def test_chromium_sees_a_new_publisher_after_the_anchor(capture: Capture) -> None:
    """bob publishes after alice left: his video recycles a freed slot (fresh mid 4), his audio
    another (mid 5), the parked tag stays, and Chromium fires ``track`` with bob's stream."""
    offer = parse_sdp(capture.subscriber_offers[5])
    assert offer.get("group").value == "BUNDLE 0 4 5"  # type: ignore[union-attr]
    assert offer.media[0].port == 40000 and offer.media[2].port == 0
    result = capture.subscriber_answers[5]
    live = {t["mid"]: (t["kind"], t["current"]) for t in result["transceivers"]
            if not t["stopped"]}  # fmt: skip
    assert live == {"0": ("audio", "inactive"), "4": ("video", "recvonly"),
                    "5": ("audio", "recvonly")}  # fmt: skip
    assert sorted((e["mid"], e["stream"]) for e in result["tracks"]) == [
        ("4", "bob-stream"), ("5", "bob-stream"),
    ]  # fmt: skip
    plan = capture.subscriber_plans[5]
    assert [(s.mid, s.track.track_id) for s in plan.active() if s.track] == [
        ("4", "video-5"), ("5", "audio-6"),
    ]  # fmt: skip
    assert plan.slots[0].parked and not plan.slots[0].free
