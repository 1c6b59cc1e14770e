"""Drain rule on the real router (no etcd): a draining router takes no new rooms but keeps its
current ones, so a participant reconnecting into a room it hosts is accepted (the front door keeps
sending that room here while its placement exists) and a join that would create a room is
refused with ``draining`` (close 4006). The SIGTERM version against etcd is in test_cluster."""

from __future__ import annotations

import pytest

from router.signaling.client import SignalingClient, SignalingClosed
from tests.router.conftest import StartRouter
from tests.router.synth import token


async def _join(url: str, room: str, participant: str) -> SignalingClient:
    ws = await SignalingClient.connect(url)
    await ws.send({"type": "join", "token": token(room, participant, router="r1")})
    return ws


async def test_draining_router_accepts_rejoins_into_its_rooms_only(
    start_router: StartRouter,
) -> None:
    node = await start_router()
    url = node.addresses.signaling_url
    alice = await _join(url, "team", "alice")
    await alice.recv_type("joined")
    node.begin_drain()

    again = await _join(url, "team", "alice")  # the same participant reconnecting
    assert (await again.recv_type("joined"))["room"] == "team"
    with pytest.raises(SignalingClosed) as replaced:
        await alice.recv_type("never")
    assert replaced.value.code == 4009
    bob = await _join(url, "team", "bob")  # someone else into the same hosted room
    joined = await bob.recv_type("joined")
    assert [p["id"] for p in joined["participants"]] == ["alice"]

    carol = await _join(url, "elsewhere", "carol")  # would create a room: refused
    refusal = await carol.recv()
    assert (refusal["type"], refusal["code"]) == ("error", "draining")
    with pytest.raises(SignalingClosed) as closed:
        await carol.recv()
    assert closed.value.code == 4006
    assert set(node.core.rooms) == {"team"}
    assert node.core.stats.joins["draining"] == 1
    for ws in (again, bob, carol, alice):
        await ws.close()
