"""Room membership against real etcd: one read, a watch cache, liveness from the cluster view."""

from __future__ import annotations

import time

import trio

from control import schema
from control.etcd import EtcdClient
from control.rooms import (
    RoomMembership,
    bind_router,
    leave_room,
    parse_room_key,
    room_routers,
)
from control.schema import RoomRecord, RoomRouterRecord
from control.view import open_view
from tests.control.test_placement import start_router


def member(room: str, node: str, region: str = "eu-central") -> RoomRouterRecord:
    return RoomRouterRecord(room, node, region, "EEA", time.time())


def test_room_keys_parse_both_forms() -> None:
    assert parse_room_key(schema.room_key("a.b")) is not None
    parsed = parse_room_key(schema.room_router_key("a.b", "r-1"))
    assert parsed is not None and (parsed.room, parsed.router) == ("a.b", "r-1")
    assert parse_room_key(schema.ROOMS_PREFIX + "a/routers/") is None
    assert parse_room_key(schema.node_key("r-1")) is None


async def test_room_routers_skip_dead_routers(client: EtcdClient, nursery: trio.Nursery) -> None:
    live = await start_router(client, nursery, "live")
    dead = await start_router(client, nursery, "dead")
    view = await open_view(client, nursery)
    await view.wait_until(lambda: len(view.nodes()) == 2, 5)
    assert await bind_router(client, member("team", "live"), live.lease)
    assert not await bind_router(client, member("team", "live"), live.lease), "already bound"
    assert await bind_router(client, member("team", "dead"), dead.lease)
    assert await bind_router(client, member("other", "dead"), dead.lease)
    # A membership key survives its router for a while; the view decides who counts.
    await client.put(schema.room_router_key("team", "ghost"), member("team", "ghost").encode())
    assert [r.router for r in await room_routers(client, "team")] == ["dead", "ghost", "live"]
    assert [r.router for r in await room_routers(client, "team", view)] == ["dead", "live"]
    assert [r.router for r in await room_routers(client, "te")] == [], "prefix is exact"

    rooms = RoomMembership(client)
    one = RoomMembership.of_room(client, "team")
    await nursery.start(rooms.run)
    await nursery.start(one.run)
    changes = one.subscribe()
    await client.put(schema.room_key("team"),
                     RoomRecord("team", "live", "eu-central", "eea", time.time()).encode())
    await rooms.wait_until(lambda: rooms.room("team") is not None, 5)
    assert rooms.rooms_of("dead") == ["other", "team"]
    await dead.deregister()
    await view.wait_until(lambda: view.node("dead") is None, 5)
    alive = lambda node: view.node(node) is not None  # noqa: E731
    assert [r.router for r in rooms.routers("team", alive)] == ["live"]
    assert [r.router for r in one.routers("team", alive)] == ["live"]
    # The dead router's key goes with its lease: the watch reports it.
    with trio.fail_after(10):
        async for change in changes:
            if change.type == "delete" and change.key.endswith("/dead"):
                break
    assert one.member("team", "dead") is None
    assert await leave_room(client, "team", "live")
    await one.wait_until(lambda: one.routers("team") == [one.member("team", "ghost")], 5)
    assert not await leave_room(client, "team", "live")
