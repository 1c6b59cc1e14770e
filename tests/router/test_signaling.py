"""Signaling over a real WebSocket: token refusals, malformed/oversized/out-of-order messages,
chat relay and limits, p2p relay, churn cleanup."""

from __future__ import annotations

import json

import pytest
import trio

from control.schema import SecretKey
from router.session.forwarder_adapter import ForwarderPlane
from router.signaling.client import SignalingClient, SignalingClosed
from tests.router.synth import SynthClient, rtp, token


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def refused(url: str, tok: str) -> tuple[dict, int | None]:  # type: ignore[type-arg]
    ws = await SignalingClient.connect(url)
    await ws.send({"type": "join", "token": tok})
    reply = await ws.recv()
    with pytest.raises(SignalingClosed) as info:
        await ws.recv()
    await ws.close()
    return reply, info.value.code


@pytest.mark.parametrize(
    ("make", "code", "close"),
    [
        (lambda: token("r", "p", router="other-router"), "wrong_router", 4003),
        (lambda: token("r", "p", router="r1", ttl=-5), "token_expired", 4002),
        (lambda: token("r", "p", router="r1",
                       key=SecretKey("k1", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk", 0, None)),
         "token_invalid", 4001),
        (lambda: token("r", "p", router="r1", key=SecretKey("k9", "eHh4eHh4eHh4eHh4", 0, None)),
         "token_invalid", 4001),
        (lambda: "not.a.token", "token_invalid", 4001),
    ],
)
async def test_token_refusals(start_router, make, code, close) -> None:  # type: ignore[no-untyped-def]
    node = await start_router()
    reply, closed = await refused(node.addresses.signaling_url, make())
    assert reply["type"] == "error" and reply["code"] == code
    assert closed == close
    assert node.core.participant_count == 0


async def test_bad_messages_get_errors_and_session_survives(start_router) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(max_message_bytes=4096)
    ws = await SignalingClient.connect(node.addresses.signaling_url)
    await ws.send({"type": "publish", "sdp": "v=0"})
    assert (await ws.recv())["code"] == "out_of_order"
    await ws.send({"type": "join", "token": token("r", "p", router="r1")})
    assert (await ws.recv())["type"] == "joined"
    for bad, code in [
        ("{not json", "malformed"),
        ("[1,2]", "malformed"),
        (json.dumps({"type": "teleport"}), "unknown_type"),
        (json.dumps({"type": "chat"}), "malformed"),
        (json.dumps({"type": "chat", "text": 5}), "malformed"),
        (json.dumps({"type": "chat", "text": "x" * 5000}), "too_large"),
        (json.dumps({"type": "answer", "sdp": "v=0"}), "out_of_order"),
        (json.dumps({"type": "join", "token": "x"}), "out_of_order"),
        (json.dumps({"type": "publish", "sdp": "garbage"}), "bad_sdp"),
        (json.dumps({"type": "relay", "payload": {"kind": "offer"}}), "not_allowed"),
    ]:
        await ws.send(bad)
        reply = await ws.recv()
        assert reply["type"] == "error" and reply["code"] == code, (bad, reply)
    await ws.send({"type": "ping", "id": 7})
    assert await ws.recv() == {"type": "pong", "id": 7}
    assert node.core.participant_count == 1
    await ws.close()


async def test_hostile_json_gets_errors_and_session_survives(start_router) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 item 5: nesting past the limit, an integer over the interpreter's digit limit
    and a token whose header nests a thousand arrays are answered with an error; before, the
    last two escaped the core as exceptions and ended the connection."""
    import base64

    node = await start_router()
    ws = await SignalingClient.connect(node.addresses.signaling_url)
    deep_header = base64.urlsafe_b64encode(b"[" * 2900).rstrip(b"=").decode()
    await ws.send({"type": "join", "token": f"{deep_header}.e30.c2ln"})
    reply = await ws.recv()
    assert reply["type"] == "error" and reply["code"] == "token_invalid", reply
    ws = await SignalingClient.connect(node.addresses.signaling_url)
    await ws.send({"type": "join", "token": token("r", "p", router="r1")})
    assert (await ws.recv())["type"] == "joined"
    nested: object = "x"
    for _ in range(40):
        nested = [nested]
    for bad in [
        '{"type":"ping","id":' + "1" * 5000 + "}",
        json.dumps({"type": "relay", "payload": {"kind": "candidate", "candidate": nested}}),
        json.dumps({"type": "join", "token": "t", "room_options": {"a": nested}}),
        "[" * 50_000,
        '{"type":"chat","text":"' + "\\" * 20_000 + '"',
    ]:
        await ws.send(bad)
        reply = await ws.recv()
        assert reply["type"] == "error" and reply["code"] == "malformed", (bad[:40], reply)
    await ws.send({"type": "ping", "id": 8})
    assert await ws.recv() == {"type": "pong", "id": 8}
    assert node.core.participant_count == 1
    await ws.close()


async def test_message_rate_limit(start_router) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(message_rate=1.0, message_burst=5.0)
    ws = await SignalingClient.connect(node.addresses.signaling_url)
    for i in range(8):
        await ws.send({"type": "ping", "id": i})
    replies = [await ws.recv() for _ in range(6)]
    assert [r["type"] for r in replies[:5]] == ["pong"] * 5
    assert replies[5]["code"] == "rate_limited"
    await ws.close()


async def test_chat_relay_rate_limit_and_disabled(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(chat_rate=0.01, chat_burst=3.0)
    url = node.addresses.signaling_url
    a = await SynthClient.join(nursery, url, token("c", "a", router="r1", name="Ann"))
    b = await SynthClient.join(nursery, url, token("c", "b", router="r1"))
    for i in range(3):
        await a.ws.send({"type": "chat", "text": f"hello {i}"})
    for i in range(3):
        msg = await b.ws.recv_type("chat")
        assert msg["text"] == f"hello {i}" and msg["from"] == {"id": "a", "name": "Ann"}
    await a.ws.send({"type": "chat", "text": "one too many"})
    assert (await a.ws.recv_type("error"))["code"] == "chat_rate_limited"
    assert node.core.stats.chat_relayed == 3
    quiet = await SynthClient.join(nursery, url, token("q", "a", router="r1"),
                                   room_options={"chat": False})
    assert quiet.joined["chat"] is False
    await quiet.ws.send({"type": "chat", "text": "hi"})
    assert (await quiet.ws.recv_type("error"))["code"] == "chat_disabled"
    for c in (a, b, quiet):
        await c.close()


async def test_p2p_relay_and_third_joiner_refused(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router()
    url = node.addresses.signaling_url
    a = await SynthClient.join(nursery, url, token("small", "a", router="r1", mode="p2p"))
    b = await SynthClient.join(nursery, url, token("small", "b", router="r1", mode="p2p"))
    await a.ws.send({"type": "relay", "payload": {"kind": "offer", "sdp": "v=0..."}})
    got = await b.ws.recv_type("relay")
    assert got == {"type": "relay", "from": "a", "payload": {"kind": "offer", "sdp": "v=0..."}}
    await b.ws.send({"type": "relay", "to": "a",
                     "payload": {"kind": "candidate", "candidate": "candidate:1 1 udp ..."}})
    assert (await a.ws.recv_type("relay"))["payload"]["kind"] == "candidate"
    await a.ws.send({"type": "relay", "payload": {"kind": "video"}})
    assert (await a.ws.recv_type("error"))["code"] == "malformed"
    await a.ws.send({"type": "publish", "sdp": "v=0"})
    assert (await a.ws.recv_type("error"))["code"] == "not_allowed"
    reply, closed = await refused(url, token("small", "c", router="r1", mode="p2p"))
    assert reply["code"] == "room_full" and closed == 4004
    reply, closed = await refused(url, token("small", "d", router="r1", mode="sfu"))
    assert reply["code"] == "mode_mismatch"
    await a.ws.send({"type": "chat", "text": "p2p chat"})
    assert (await b.ws.recv_type("chat"))["text"] == "p2p chat"
    await a.leave()
    await b.leave()
    await wait_for(lambda: node.core.participant_count == 0)


async def test_churn_leaves_nothing_behind(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(reconnect_grace=0.2)
    assert isinstance(node.core.media, ForwarderPlane)
    url = node.addresses.signaling_url
    watcher = await SynthClient.join(nursery, url, token("churn", "w", router="r1"), seed=99)
    for rnd in range(3):
        clients = []
        for i in range(4):
            c = await SynthClient.join(nursery, url, token("churn", f"p{rnd}-{i}", router="r1"),
                                       seed=rnd * 10 + i)
            await c.publish(audio_ssrc=5000 + i, video_ssrc=6000 + 2 * i)
            clients.append(c)
        for c in clients:
            assert c.publisher is not None
            with trio.fail_after(10):
                await c.publisher.connected.wait()
            for seq in range(5):
                c.send_rtp(rtp(seq, 5000 + clients.index(c), 111, b"x" * 50, seq * 960))
        await trio.sleep(0.05)
        for i, c in enumerate(clients):
            if i % 2:
                await c.leave()
            else:
                await c.close()  # signaling vanishes: removed after the grace period
        await wait_for(lambda: node.core.participant_count == 1)
    await watcher.leave()
    await wait_for(lambda: node.core.participant_count == 0)
    await wait_for(lambda: all(v == 0 for v in node.core.state_counts().values()))
    counts = node.core.state_counts()
    assert all(v == 0 for v in counts.values()), counts


async def test_participants_on_other_routers_are_seen_by_name(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    """What a trunk reports (router/trunk/bridge.py) reaches the room's participants: someone
    on another router joins and leaves by name; one who moves here from there never seems to
    leave; a newcomer's ``joined`` lists them."""
    node = await start_router()
    core = node.core

    def flush() -> None:
        node.hub.after_change()
        node.driver.notify()

    bob = await SynthClient.join(nursery, node.addresses.signaling_url,
                                 token("r", "bob", router="r1"))
    assert not core.add_remote_participant("elsewhere", "r2", "x", None)  # room not open here
    assert core.add_remote_participant("r", "r2", "alice", "Alice")
    assert not core.add_remote_participant("r", "r2", "alice", "Alice")  # nothing changed
    assert core.add_remote_participant("r", "r3", "alice", "Alice")  # also there (a move)
    flush()
    joined = await bob.ws.recv_type("participant_joined")
    assert joined["participant"] == {"id": "alice", "name": "Alice"}
    assert core.remove_remote_participant("r", "r2", "alice")  # still on r3: no news
    carol = await SynthClient.join(nursery, node.addresses.signaling_url,
                                   token("r", "carol", router="r1", name="Carol"))
    assert carol.joined["participants"] == [{"id": "bob", "name": None},
                                            {"id": "alice", "name": "Alice"}]
    # alice moves here: she joins locally, and when r3 withdraws her, nobody sees her leave
    alice = await SynthClient.join(nursery, node.addresses.signaling_url,
                                   token("r", "alice", router="r1", name="Alice"))
    assert core.remove_remote_participant("r", "r3", "alice")
    assert not core.remove_remote_participant("r", "r3", "alice")
    await alice.ws.send({"type": "leave"})  # she leaves for good
    gone = await carol.ws.recv_type("participant_left")
    assert gone["participant"]["id"] == "alice"
    news = []
    while ("participant_left", "alice") not in news:
        message = await bob.ws.recv()
        if message["type"].startswith("participant_"):
            news.append((message["type"], message["participant"]["id"]))
    assert news == [
        ("participant_joined", "carol"), ("participant_joined", "alice"),
        ("participant_left", "alice")]
    # chat: from there to everyone here; from here queued for the trunks (room.remote is set)
    core.add_remote_participant("r", "r2", "erin", "Erin")
    assert core.deliver_remote_chat("r", "erin", "Erin", "hi from r2")
    assert not core.deliver_remote_chat("r", "bob", "Bob", "a local id: refused")
    flush()
    said = await carol.ws.recv_type("chat")
    assert said["from"] == {"id": "erin", "name": "Erin"} and said["text"] == "hi from r2"
    await carol.ws.send({"type": "chat", "text": "hi there"})
    await wait_for(lambda: core.chat_out == [("r", "carol", "Carol", "hi there")])
    # someone only on another router leaves when that router withdraws them
    core.remove_remote_participant("r", "r2", "erin")
    core.add_remote_participant("r", "r2", "dave", None)
    core.remove_remote_participant("r", "r2", "dave")
    flush()
    left = await carol.ws.recv_type("participant_left")
    assert left["participant"] == {"id": "erin", "name": None}
    left = await carol.ws.recv_type("participant_left")
    assert left["participant"] == {"id": "dave", "name": None}
    await bob.close()
    await carol.close()
