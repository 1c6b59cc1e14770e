"""aiortc (an independent WebRTC stack) publishes to and subscribes from a real router process.

The router runs as a subprocess in standalone ``--token-key`` mode on loopback; aiortc runs here
under ``asyncio.run`` (it is asyncio, the router is Trio). ICE (aioice, controlling, against the
router's ICE-lite), DTLS (aiortc as client on both connections), SRTP, Opus and VP8 are all
aiortc's own: nothing of the router's client code is involved, which is the point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from benchmarks.sfu.router_proc import RouterProcess
from benchmarks.sfu.tokens import join_token
from tests.interop.aiortc_peers import Publisher, Subscriber, loopback_only


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def _publish_then_add_video(url: str) -> None:
    bob = await Subscriber.join(url, join_token("interop", "bob"))
    alice = await Publisher.join(url, join_token("interop", "alice"))
    try:
        answer = await alice.publish("audio")
        assert answer["rejected"] == []
        audio_track = answer["tracks"]["0"]
        offer = await bob.answer_next_offer()  # the router offers; aiortc answers
        assert list(offer["tracks"].values()) == [audio_track]
        await _until(lambda: bob.received.frames["audio"] > 25, 20)

        answer = await alice.publish("video")  # renegotiation on the publisher connection
        assert answer["rejected"] == [] and len(answer["tracks"]) == 2
        offer = await bob.answer_next_offer()  # and on the subscriber connection
        assert sorted(offer["tracks"].values()) == sorted(answer["tracks"].values())
        await _until(lambda: bob.received.frames["video"] > 15, 20)
        await _until(lambda: bob.received.frames["audio"] > 60, 20)
        assert bob.received.sizes == {(160, 120)}
        assert alice.pc.connectionState == "connected"
        assert bob.pc.connectionState == "connected"
    finally:
        await alice.close()
        await bob.close()


def test_aiortc_publishes_and_subscribes_with_renegotiation(
    router_process: RouterProcess,
) -> None:
    """Decoded Opus and VP8 frames reach an aiortc subscriber through the router, across one
    publisher renegotiation (audio, then video added) and two router offers."""
    with loopback_only():
        asyncio.run(_publish_then_add_video(router_process.signaling_url))


async def _publisher_leaves(url: str) -> None:
    bob = await Subscriber.join(url, join_token("interop", "bob"))
    alice = await Publisher.join(url, join_token("interop", "alice"))
    carol = await Publisher.join(url, join_token("interop", "carol"))
    dave: Publisher | None = None
    try:
        await alice.publish("audio")
        await bob.answer_next_offer()
        await carol.publish("audio")
        await bob.answer_next_offer()
        await _until(lambda: bob.received.frames["audio"] > 20, 20)
        await carol.ws.send({"type": "leave"})
        # The router re-offers carol's section as a stopped (port 0) section (alice's, the
        # BUNDLE tag, stays live); aiortc needs ICE credentials, a=rtcp-mux and an rtpmap in
        # it, and answers it a=inactive on a live port.
        offer = await bob.answer_next_offer()
        stopped = offer["sdp"].split("m=audio ")[2]
        assert stopped.startswith("0 ") and "a=inactive" in stopped and "a=ice-ufrag:" in stopped
        # A router that refused that answer would send bad_sdp here (recv_type raises on error);
        # a new track recycles the freed slot in the next offer.
        dave = await Publisher.join(url, join_token("interop", "dave"))
        await dave.publish("audio")
        offer = await bob.answer_next_offer()
        assert len(offer["tracks"]) == 2
        before = bob.received.frames["audio"]
        await _until(lambda: bob.received.frames["audio"] > before + 40, 20)
        assert bob.pc.connectionState == "connected"
    finally:
        for peer in (alice, carol, dave):
            if peer is not None:
                await peer.close()
        await bob.close()


def test_aiortc_subscriber_after_a_track_is_removed(router_process: RouterProcess) -> None:
    """A publisher leaves: aiortc takes the router's stopped section, the router takes aiortc's
    inactive answer to it, and media keeps flowing through a further renegotiation."""
    with loopback_only():
        asyncio.run(_publisher_leaves(router_process.signaling_url))


async def _last_publisher_leaves(url: str) -> None:
    bob = await Subscriber.join(url, join_token("interop", "bob"))
    alice = await Publisher.join(url, join_token("interop", "alice"))
    dave: Publisher | None = None
    try:
        await alice.publish("audio")
        await bob.answer_next_offer()
        await _until(lambda: bob.received.frames["audio"] > 20, 20)
        await alice.ws.send({"type": "leave"})
        # Nothing left for bob to receive: the section is parked (live port, a=inactive) and
        # stays the BUNDLE group's only member; aiortc answers it and the router takes that.
        offer = await bob.answer_next_offer()
        assert offer["tracks"] == {} and "a=group:BUNDLE 0\r\n" in offer["sdp"]
        parked = offer["sdp"].split("m=audio ")[1]
        assert not parked.startswith("0 ") and "a=inactive" in parked
        dave = await Publisher.join(url, join_token("interop", "dave"))
        answer = await dave.publish("audio")
        # dave's audio gets a new section; the parked one stays live as the BUNDLE tag (aiortc
        # would not follow new SSRCs on a live section, see router/sdp/subscriber.py).
        offer = await bob.answer_next_offer()
        assert offer["tracks"] == {"1": answer["tracks"]["0"]}
        assert "a=group:BUNDLE 0 1\r\n" in offer["sdp"]
        assert not offer["sdp"].split("m=audio ")[1].startswith("0 ")
        await bob.ws.send({"type": "ping", "id": "after-answer"})  # no bad_sdp before it
        assert (await bob.ws.recv_type("pong"))["id"] == "after-answer"
        before = bob.received.frames["audio"]
        await _until(lambda: bob.received.frames["audio"] > before + 40, 20)
        assert bob.pc.connectionState == "connected"
    finally:
        for peer in (alice, dave):
            if peer is not None:
                await peer.close()
        await bob.close()


def test_aiortc_subscriber_with_nothing_left_to_receive(router_process: RouterProcess) -> None:
    """The last publisher leaves: aiortc takes the offer whose only live section is the parked
    BUNDLE anchor, the router takes aiortc's answer, and a new publisher's audio flows again."""
    with loopback_only():
        asyncio.run(_last_publisher_leaves(router_process.signaling_url))
