"""End to end on real loopback sockets: token auth, signaling, ICE, DTLS, SRTP, forwarding."""

from __future__ import annotations

import itertools
import struct

import trio

from router.rtp import TransportCc, parse_rtcp_compound
from tests.router.synth import SynthClient, rtp, token


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_publish_subscribe_every_payload_in_order(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router()
    url = node.addresses.signaling_url
    alice = await SynthClient.join(nursery, url, token("room1", "alice", router="r1"), seed=1)
    bob = await SynthClient.join(nursery, url, token("room1", "bob", router="r1"), seed=2)
    assert [p["id"] for p in bob.joined["participants"]] == ["alice"]
    answer = await alice.publish(audio_ssrc=1111, video_ssrc=2222)
    assert set(answer["tracks"]) == {"0", "1"}
    offer = await bob.answer_offer()
    assert len(offer["tracks"]) == 2
    assert alice.publisher is not None and bob.subscriber is not None
    with trio.fail_after(10):
        await alice.publisher.connected.wait()
        await bob.subscriber.connected.wait()
    sent = []
    for seq in range(300):
        payload = seq.to_bytes(2, "big") * 40
        packet = rtp(1000 + seq, 1111, 111, payload, seq * 960)
        assert alice.send_rtp(packet)
        sent.append(payload)
        if seq % 20 == 0:
            await trio.sleep(0.005)
    await wait_for(lambda: len(bob.subscriber.received) >= 300)
    audio_ssrcs = {int.from_bytes(p[8:12], "big") for p in bob.subscriber.received}
    assert len(audio_ssrcs) == 1 and 1111 not in audio_ssrcs
    got = [p[12:] for p in bob.subscriber.received]
    assert got == sent
    seqs = [int.from_bytes(p[2:4], "big") for p in bob.subscriber.received]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert all(p[1] & 0x7F == 111 for p in bob.subscriber.received)
    # RTP is routed as it is read (SessionCore.on_rtp, not an event), and the latency
    # histogram still weighs every batch by what it forwarded.
    assert node.core.stats.packets_out >= 300
    assert node.hub.latency.observations == node.core.stats.packets_out
    # The router's view of bob's downlink, and a size request for the video track.
    video_track = next(iter(offer["tracks"].values()))
    await bob.ws.send({"type": "link_stats"})
    stats = await bob.ws.recv_type("link_stats")
    assert stats["estimate_bps"] > 0 and set(stats["layers"]) <= set(offer["tracks"].values())
    await bob.ws.send({"type": "video_size", "track": video_track, "height": 360})
    await bob.ws.send({"type": "video_size", "track": "nope", "height": 360})
    error = await bob.ws.recv_type("error")
    assert error["code"] == "unknown_track" and "nope" in error["message"]
    await alice.leave()
    await bob.leave()
    await wait_for(lambda: node.core.participant_count == 0)


async def test_publisher_feedback_keeps_its_interval_while_media_alone_flows(  # type: ignore[no-untyped-def]
    start_router, nursery
) -> None:
    """TWCC feedback to a publisher is due 50 ms after its first unreported packet: a deadline
    the media path creates, with no signaling call to wake the timer task. It must still go out
    on time (it used to wait for the next receiver report, ~1 s, and then cover ~500 packets in
    one stall of the media path)."""
    node = await start_router()
    url = node.addresses.signaling_url
    alice = await SynthClient.join(nursery, url, token("room1", "alice", router="r1"), seed=3)
    await alice.publish(audio_ssrc=1111, chromium_extensions=True)
    assert alice.publisher is not None
    with trio.fail_after(10):
        await alice.publisher.connected.wait()
    interval = node.core.media.forwarder.config.link.twcc_interval  # type: ignore[attr-defined]
    start = trio.current_time()
    seq = 0
    while trio.current_time() - start < 1.5:
        # Audio with a one-byte extension block: transport-wide-cc (id 3), as Chromium sends.
        ext = struct.pack("!HH", 0xBEDE, 1) + bytes([0x31]) + struct.pack("!H", seq) + b"\x00"
        packet = rtp(seq, 1111, 111, b"\x00" * 60, seq * 960)
        packet = bytes([packet[0] | 0x10]) + packet[1:12] + ext + packet[12:]
        assert alice.send_rtp(packet)
        seq += 1
        await trio.sleep(0.01)
    await trio.sleep(4 * interval)
    feedback = [p for c in alice.publisher.rtcp for p in parse_rtcp_compound(c)
                if isinstance(p, TransportCc)]
    covered = [len(f.statuses) for f in feedback]
    # ~150 packets over 1.5 s: one feedback per interval covers ~5; a late one covers many.
    assert len(feedback) >= 1.5 / interval / 2, covered
    assert max(covered) <= 0.6 / 0.01, covered  # no feedback waits for more than ~0.6 s
    assert sum(f.statuses.count(1) + f.statuses.count(2) for f in feedback) >= seq * 0.9
    await alice.leave()
