"""Room squatting (issue 15 item 1): a placement nobody connects to expires, a room key lives
while the room has participants plus a short grace, and room creation is limited per client
network (IPv4 /24, IPv6 /48) without keeping any address.

Before this was fixed a join bound the room name to its router's lease: one network could
hold any room name for as long as the router lived."""

from __future__ import annotations

import ipaddress
import time

import trio

from benchmarks.frontdoor_cluster import TOPOLOGY_FILE
from control import schema
from control.etcd import EtcdClient
from control.placement import place_room
from control.schema import NodeAddress, NodeRecord
from control.topology import load_topology
from control.view import open_view
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.service import JoinService
from geo.frontdoor.snapshot import SnapshotCache
from router.rooms import RoomPlacements
from router.session import RoomNotice
from router.session.stats import SessionStats
from tests.control.test_placement import start_router
from tests.frontdoor.test_join_properties import GEO, FakeView, MemoryRooms

TOPOLOGY = load_topology(TOPOLOGY_FILE)


def _service(room_burst: float) -> JoinService:
    router = NodeRecord("eu-r1", "router", "eu-central", "EEA",
                        (NodeAddress("ws", "127.0.0.1", 1),), 1000, 0, False, "t", 0.0, "i")
    view = FakeView(TOPOLOGY, {"eu-r1": router})
    config = FrontdoorConfig(rate_limit=1e9, rate_burst=1e9, room_rate=0.001,
                             room_burst=room_burst, require_turn=False)
    rooms = MemoryRooms(view)
    return JoinService(config, GEO, SnapshotCache(view, "/s"), rooms, rooms.place,
                       FrontdoorMetrics())


def test_room_creation_is_limited_per_network() -> None:
    service = _service(room_burst=3)

    def join(room: str, address: str) -> tuple[int, str | None]:
        answer = trio.run(service.join, room, b"", ipaddress.ip_address(address))
        return answer.status, answer.body.get("error")

    assert [join(f"r{i}", "193.0.0.1")[0] for i in range(3)] == [200, 200, 200]
    assert join("r3", "193.0.0.1") == (429, "room_rate_limited")
    assert join("r4", "193.0.0.200") == (429, "room_rate_limited"), "same /24"
    assert join("r0", "193.0.0.200") == (200, None), "joining an existing room is not limited"
    assert join("r5", "193.0.1.1")[0] == 200, "another /24"
    v6 = [join(f"v6-{i}", f"2001:67c:2e8:{i}::1") for i in range(4)]
    assert [s for s, _ in v6] == [200, 200, 200, 429], "one /48"
    assert join("v6-x", "2001:67c:2e9::1")[0] == 200, "another /48"
    # The limiter keeps network numbers, never an address.
    keys = set(service.room_limiter._buckets)
    assert int(ipaddress.ip_address("193.0.0.1")) not in keys
    assert all(k < 1 << 49 for k in keys)


async def test_unconnected_placement_expires_and_served_room_is_held(
        client: EtcdClient, nursery: trio.Nursery) -> None:
    ttl = 2
    registration = await start_router(client, nursery, "eu1")
    view = await open_view(client, nursery)
    await view.wait_until(lambda: view.node("eu1") is not None, 5)
    # Two placements; nobody connects to "squat", a participant arrives for "held".
    for room in ("squat", "held"):
        await place_room(client, view, room, regions=["eu-central"], pending_ttl=ttl)
    evicted: list[str] = []
    stats = SessionStats()
    placements = RoomPlacements(client, "eu1", "eu-central", "EEA", lambda: registration.lease,
                                lambda room, code, text: evicted.append(room) or 1, stats,
                                room_ttl=ttl)
    send, notices = trio.open_memory_channel[RoomNotice](10)
    nursery.start_soon(placements.follow, notices)
    await send.send(RoomNotice("held", True, "eea", "sfu"))
    member_key = schema.room_router_key("held", "eu1")
    with trio.fail_after(10):
        while (kv := await client.get(member_key)) is None or kv.lease != registration.lease:
            await trio.sleep(0.05)
    # Three TTLs later the unconnected placement is gone; the served room is still there.
    until = time.monotonic() + 3 * ttl
    while time.monotonic() < until:
        assert await client.get(schema.room_key("held")) is not None
        await trio.sleep(0.2)
    with trio.fail_after(10):
        while await client.get(schema.room_key("squat")) is not None:
            await trio.sleep(0.1)
    assert await client.get(schema.room_router_key("squat", "eu1")) is None
    # The last participant leaves: the membership goes at once, the room after its grace.
    await send.send(RoomNotice("held", False, "eea", "sfu"))
    with trio.fail_after(10):
        while await client.get(member_key) is not None:
            await trio.sleep(0.05)
    with trio.fail_after(3 * ttl + 5):
        while await client.get(schema.room_key("held")) is not None:
            await trio.sleep(0.1)
    assert stats.room_claims["joined"] == 1 and not evicted
    # An eea room opening on a router outside the EEA: residency wins, participants leave.
    outside = RoomPlacements(client, "eu1", "eu-central", "US", lambda: registration.lease,
                             lambda room, code, text: evicted.append(room) or 1, stats,
                             room_ttl=ttl)
    await place_room(client, view, "strict", regions=["eu-central"], pending_ttl=ttl)
    assert await outside.opened(RoomNotice("strict", True, "nearest", "sfu")) == "refused"
    assert evicted == ["strict"]
