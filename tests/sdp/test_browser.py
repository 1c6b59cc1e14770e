"""Live check in Debian Chromium: it accepts the router's answers and answers its offers.

Skips only when /usr/bin/chromium is absent. Uses the same driver as the fixture capture script
(``tests/sdp/capture_chromium.py``), so a pass here means today's code still produces SDP that
Chromium's ``setRemoteDescription`` takes, for every publisher shape and every renegotiation step.
"""

from __future__ import annotations

import os

import pytest

from router.sdp import parse_sdp
from tests.sdp.capture_chromium import (
    CHROMIUM,
    OFFER_NAMES,
    SUBSCRIBER_STEPS,
    Capture,
    capture_with_chromium,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


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
    third = capture.subscriber_answers[2]["transceivers"]
    live = {t["mid"]: (t["kind"], t["current"]) for t in third if not t["stopped"]}
    assert live == {
        "3": ("audio", "recvonly"),
        "1": ("video", "recvonly"),
        "2": ("video", "recvonly"),
    }
    assert [s.mid for s in capture.subscriber_plans[2].active()] == ["3", "1", "2"]
    # The removal: Chromium takes the stopped section (ICE/DTLS attributes, rtcp-mux, rtpmap,
    # a=inactive, port 0), stops that transceiver and answers it with port 0.
    final = capture.subscriber_answers[-1]["transceivers"]
    live = {t["mid"]: (t["kind"], t["current"]) for t in final if not t["stopped"]}
    assert live == {"3": ("audio", "recvonly"), "2": ("video", "recvonly")}
    plan = capture.subscriber_plans[-1]
    assert [s.mid for s in plan.active()] == ["3", "2"]
    assert plan.slots[1].mid == "1" and plan.slots[1].free
    stopped = parse_sdp(capture.subscriber_offers[-1]).media[1]
    assert stopped.port == 0 and stopped.has("ice-ufrag") and stopped.has("rtcp-mux")
    answer = parse_sdp(capture.subscriber_answers[-1]["sdp"]).media[1]
    assert answer.port == 0
