"""Capture real Chromium SDP for the fixtures, and check that Chromium accepts the router's SDP.

Run manually from the repository root (rewrites ``tests/sdp/data/chromium_*.sdp``)::

    .venv/bin/python -m tests.sdp.capture_chromium

It drives Debian's ``/usr/bin/chromium`` through Playwright with fake media devices and:

* captures publisher offers: (a) audio+video sendonly from getUserMedia, (b) VP8 simulcast with
  three rids, (c) recvonly audio+video, (d) a data channel before audio+video (BUNDLE tag on a
  section the router rejects);
* gives Chromium the router's answer to each offer (``setRemoteDescription``): it must accept;
* makes Chromium (``bundlePolicy: "max-bundle"``) answer the router's subscriber offers through
  a renegotiation sequence (two tracks; audio removed and a second video added; a new audio
  recycling the freed slot; a video removed; every track gone, leaving the parked BUNDLE
  anchor; a new publisher whose tracks recycle the freed slots while the anchor stops) and
  applies each answer with :func:`router.sdp.apply_subscriber_answer`.

``tests/sdp/test_browser.py`` runs the same checks live; this script also saves what it saw, so
the ordinary tests stay deterministic and browser-free.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.sdp import (
    DEFAULT_CAPABILITIES,
    Fingerprint,
    LocalTransportParams,
    NegotiatedCodec,
    OutgoingTrack,
    SubscriberPlan,
    answer_publisher_offer,
    apply_subscriber_answer,
    build_subscriber_offer,
    host_candidate,
    subscriber_codec,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
DATA = Path(__file__).parent / "data"

PAGE_SCRIPT = r"""
() => {
  window.pcs = {};
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, 3000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    });
  });
  const transceivers = (pc) => pc.getTransceivers().map((t) => ({
    mid: t.mid, direction: t.direction, current: t.currentDirection,
    kind: t.receiver.track.kind, stopped: t.stopped,
  }));
  window.makeOffer = async (name) => {
    const pc = new RTCPeerConnection();
    window.pcs[name] = pc;
    if (name === 'av_sendonly' || name === 'datachannel') {
      if (name === 'datachannel') pc.createDataChannel('chat');
      const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
      for (const track of stream.getTracks()) {
        pc.addTransceiver(track, {direction: 'sendonly', streams: [stream]});
      }
    } else if (name === 'simulcast') {
      const stream = await navigator.mediaDevices.getUserMedia(
        {video: {width: 1280, height: 720}});
      pc.addTransceiver(stream.getVideoTracks()[0], {
        direction: 'sendonly', streams: [stream],
        sendEncodings: [
          {rid: 'q', scaleResolutionDownBy: 4.0},
          {rid: 'h', scaleResolutionDownBy: 2.0},
          {rid: 'f'},
        ],
      });
    } else if (name === 'recvonly') {
      pc.addTransceiver('audio', {direction: 'recvonly'});
      pc.addTransceiver('video', {direction: 'recvonly'});
    } else {
      throw new Error('unknown offer ' + name);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    return pc.localDescription.sdp;
  };
  window.acceptAnswer = async (name, sdp) => {
    const pc = window.pcs[name];
    try {
      await pc.setRemoteDescription({type: 'answer', sdp});
      return {ok: true, error: null, signaling: pc.signalingState, transceivers: transceivers(pc)};
    } catch (e) {
      return {ok: false, error: String(e), signaling: pc.signalingState, transceivers: []};
    }
  };
  window.trackEvents = [];
  window.lastTransport = null;
  // Whether the live receivers still use the DTLS transport of the previous round: a moved
  // BUNDLE tag makes Chromium replace it (close_notify on the old one), which would drop media.
  const sameTransport = (pc) => {
    const live = pc.getTransceivers().filter((t) => !t.stopped && t.receiver.transport);
    const now = live.length ? live[0].receiver.transport : null;
    const same = window.lastTransport === null || now === null
      || live.every((t) => t.receiver.transport === window.lastTransport);
    if (now !== null) window.lastTransport = now;
    return same;
  };
  window.answerOffer = async (name, sdp) => {
    let pc = window.pcs[name];
    if (!pc) {
      // max-bundle, as the meeting page's publisher uses: an offer without a BUNDLE group
      // is refused ("max-bundle is used but no bundle group found").
      pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
      pc.ontrack = (e) => window.trackEvents.push(
        {mid: e.transceiver.mid, stream: e.streams[0] ? e.streams[0].id : null});
      window.pcs[name] = pc;
    }
    try {
      await pc.setRemoteDescription({type: 'offer', sdp});
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      return {ok: true, error: null, sdp: pc.localDescription.sdp, transceivers: transceivers(pc),
              tracks: window.trackEvents.splice(0), sameTransport: sameTransport(pc)};
    } catch (e) {
      return {ok: false, error: String(e), sdp: null, transceivers: [], tracks: [],
              sameTransport: false};
    }
  };
  window.closeAll = () => { for (const pc of Object.values(window.pcs)) pc.close(); };
}
"""

OFFER_NAMES = ("av_sendonly", "simulcast", "recvonly", "datachannel")


def router_transport(port: int = 40000) -> LocalTransportParams:
    """A fixed router transport (fake certificate digest; nothing connects in these checks)."""
    return LocalTransportParams(
        ice_ufrag="rgio",
        ice_pwd="regioregioregioregio0123",
        fingerprint=Fingerprint("sha-256", bytes(range(32))),
        candidates=(host_candidate("127.0.0.1", port),),
        session_id="4242",
    )


OPUS = NegotiatedCodec(111, "opus", 48000, 2)
VP8 = NegotiatedCodec(96, "VP8", 90000)


def publisher_of(n: int) -> str:
    """Tracks 1-4 are alice's; 5 and up belong to bob, who publishes after alice left."""
    return "alice" if n < 5 else "bob"


def subscriber_track(n: int, kind: str) -> OutgoingTrack:
    """Track ``n`` (see :func:`publisher_of`) as the router would send it to a subscriber."""
    codec = subscriber_codec(OPUS if kind == "audio" else VP8, DEFAULT_CAPABILITIES)
    video = kind == "video"
    return OutgoingTrack(
        track_id=f"{kind}-{n}",
        kind=kind,
        stream_id=f"{publisher_of(n)}-stream",
        participant=publisher_of(n),
        codec=codec,
        ssrc=1000 + 10 * n,
        rtx_ssrc=1001 + 10 * n if video else None,
    )


SUBSCRIBER_STEPS: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = (
    ("initial audio+video", ((1, "audio"), (2, "video"))),
    ("the tag's audio removed, second video added (the tag is parked, not stopped)",
     ((2, "video"), (3, "video"))),
    ("new audio appends (a parked tag is never recycled)",
     ((2, "video"), (3, "video"), (4, "audio"))),
    ("video with RTX removed (a stopped section)", ((3, "video"), (4, "audio"))),
    ("the publisher leaves: nothing to receive (the parked tag anchors the group)", ()),
    ("a new publisher: its tracks recycle freed slots", ((5, "video"), (6, "audio"))),
)
"""Track sets of the subscriber renegotiation sequence (checked by tests/sdp/test_browser.py)."""


@dataclass
class Capture:
    """What one run saw: offers, acceptance of our answers, the subscriber rounds."""

    version: str
    offers: dict[str, str] = field(default_factory=dict)
    answer_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriber_offers: list[str] = field(default_factory=list)
    subscriber_answers: list[dict[str, Any]] = field(default_factory=list)
    subscriber_plans: list[SubscriberPlan] = field(default_factory=list)


def run_capture(page: Any, version: str) -> Capture:
    """Drive one Playwright page through every check; raises on Python-side failures only."""
    page.evaluate(PAGE_SCRIPT)
    capture = Capture(version)
    local = router_transport()
    for name in OFFER_NAMES:
        offer = page.evaluate("(name) => window.makeOffer(name)", name)
        capture.offers[name] = offer
        answer = answer_publisher_offer(offer, local)
        capture.answer_results[name] = page.evaluate(
            "([name, sdp]) => window.acceptAnswer(name, sdp)", [name, answer.text]
        )
    plan = SubscriberPlan()
    for _label, tracks in SUBSCRIBER_STEPS:
        plan = plan.with_tracks(subscriber_track(n, kind) for n, kind in tracks)
        offer = build_subscriber_offer(plan, local)
        capture.subscriber_offers.append(offer.text)
        result = page.evaluate(
            "([name, sdp]) => window.answerOffer(name, sdp)", ["subscriber", offer.text]
        )
        capture.subscriber_answers.append(result)
        if not result["ok"]:
            break
        plan, _negotiated = apply_subscriber_answer(offer.plan, result["sdp"])
        capture.subscriber_plans.append(plan)
    page.evaluate("() => window.closeAll()")
    return capture


PAGE_URL = "https://regio.test/"
"""A made-up origin that Playwright fulfils itself: nothing leaves the process."""


def open_secure_page(browser: Any) -> Any:
    """A blank page in a secure context.

    ``about:blank`` and ``data:`` pages are not secure contexts in Chromium, so
    ``navigator.mediaDevices`` (getUserMedia) does not exist there; an ``https:`` URL answered by
    ``page.route`` is one, without any server or network access.
    """
    page = browser.new_page()
    page.route(
        PAGE_URL + "**",
        lambda route: route.fulfill(
            body="<!doctype html><title>regio</title>", content_type="text/html"
        ),
    )
    page.goto(PAGE_URL)
    return page


def capture_with_chromium() -> Capture:
    """Launch Chromium headless through Playwright and run :func:`run_capture`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return run_capture(open_secure_page(browser), browser.version)
        finally:
            browser.close()


def _write(name: str, sdp: str, version: str, what: str) -> None:
    header = (
        f"# Captured from Chromium {version} (Debian, headless, fake devices) by\n"
        f"# tests/sdp/capture_chromium.py: {what}.\n"
    )
    (DATA / name).write_text(header + sdp.replace("\r\n", "\n"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Capture, report, and save fixtures; exit status 1 if Chromium refused our SDP.

    ``--subscriber-only`` rewrites only the subscriber answers (after a change to the router's
    offers), leaving the captured publisher offers as they are.
    """
    subscriber_only = "--subscriber-only" in (sys.argv[1:] if argv is None else argv)
    capture = capture_with_chromium()
    failures = 0
    for name, offer in capture.offers.items():
        if not subscriber_only:
            _write(f"chromium_{name}_offer.sdp", offer, capture.version,
                   f"publisher offer '{name}'")
        result = capture.answer_results[name]
        failures += not result["ok"]
        print(f"router answer to {name}: {'accepted' if result['ok'] else result['error']}")
    for index, result in enumerate(capture.subscriber_answers, start=1):
        label = SUBSCRIBER_STEPS[index - 1][0]
        print(f"subscriber round {index} ({label}): {'ok' if result['ok'] else result['error']}"
              f"{'' if result.get('sameTransport') else ' (DTLS transport REPLACED)'}")
        failures += not result["ok"] or not result.get("sameTransport")
        if result["ok"]:
            _write(
                f"chromium_subscriber_answer_{index}.sdp", result["sdp"], capture.version,
                f"Chromium's answer to the router's subscriber offer, round {index} ({label})",
            )  # fmt: skip
    (DATA / "CHROMIUM_VERSION").write_text(capture.version + "\n", encoding="utf-8")
    print(f"Chromium {capture.version}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
