"""The join logic against a real etcd: placement, the room cache, racing front doors, outages.

Services run in-process (no HTTP) over real :class:`control.view.ClusterView` and
:class:`geo.frontdoor.rooms.RoomCache` watch caches; nodes register through
``control.registry`` with real leases.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from benchmarks.frontdoor_cluster import TOPOLOGY_FILE
from control import schema
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.rooms import room_routers
from control.schema import KeySet, NodeAddress, RoomRecord
from control.tokens import verify_token
from control.topology import load_topology
from control.view import ClusterView, ViewConfig
from geo.addresses import parse_address
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.rooms import RoomCache
from geo.frontdoor.server import build_service
from geo.frontdoor.service import JoinService
from geo.geoip import DEFAULT_DATABASE, GeoIP

pytestmark = pytest.mark.etcd

TOPOLOGY = load_topology(TOPOLOGY_FILE)
GEO = GeoIP(DEFAULT_DATABASE)
NODES = [("eu-central-r1", "router", "eu-central"), ("eu-central-r2", "router", "eu-central"),
         ("eu-north-r1", "router", "eu-north"), ("us-east-r1", "router", "us-east"),
         ("eu-central-t1", "turn", "eu-central"), ("us-east-t1", "turn", "us-east")]


async def register_nodes(client: EtcdClient, nursery: trio.Nursery) -> None:
    await init_cluster(client, TOPOLOGY)
    for index, (node_id, kind, region) in enumerate(NODES):
        protocol = "wss" if kind == "router" else "udp"
        record = new_record(node_id, kind, region, TOPOLOGY.regions[region].jurisdiction,
                            addresses=(NodeAddress(protocol, "127.0.0.1", 30000 + index),),
                            capacity=1000)
        await nursery.start(NodeRegistration(client, record, RegistryConfig(ttl=5)).run)


@asynccontextmanager
async def frontdoor(client: EtcdClient, **config: object) -> AsyncIterator[JoinService]:
    settings = FrontdoorConfig(**{"placement_timeout": 3.0, **config})  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        view_config = ViewConfig(retry_delay=0.05, max_retry_delay=0.2)
        view, rooms = ClusterView(client, view_config), RoomCache(client, view_config)
        await nursery.start(view.run)
        await nursery.start(rooms.run)
        await view.wait_until(lambda: len(view.nodes()) == len(NODES))
        yield build_service(settings, client, view, rooms, GEO, None)
        nursery.cancel_scope.cancel()


GERMANY = parse_address("193.0.0.1")  # RIPE NCC's own block: NL, an EEA country
US = parse_address("8.8.8.8")


async def test_new_room_is_placed_then_served_from_cache(client: EtcdClient) -> None:
    async with trio.open_nursery() as nursery:
        await register_nodes(client, nursery)
        async with frontdoor(client) as service:
            first = await service.join("alpha", b'{"policy":"eea"}', US)
            assert first.status == 200, first.body
            assert first.body["router"]["jurisdiction"] == "EEA"
            stored = await client.get(schema.room_key("alpha"))
            assert stored is not None
            record = RoomRecord.decode(stored.value)
            assert (record.router, record.policy) == (first.body["router"]["node"], "eea")
            assert stored.lease != 0  # bound to the short pending lease
            # Each participant gets their own nearest allowed router (these routers have no
            # trunks, so here the room stays on its router), with the room's policy.
            second = await service.join("alpha", b'{"policy":"nearest"}', GERMANY)
            assert second.status == 200, second.body
            assert second.body["router"]["jurisdiction"] == "EEA"
            assert second.body["policy"] == "eea"
            third = await service.join("alpha", b"", GERMANY)
            assert third.body["router"] == second.body["router"]
            members = {r.router for r in await room_routers(client, "alpha")}
            assert members == {first.body["router"]["node"], second.body["router"]["node"]}
            placed = 1 + (members != {first.body["router"]["node"]})
            text = service.metrics.render().decode()
            cached = 3 - placed
            assert f'regio_frontdoor_assignment_seconds_count{{path="cached"}} {cached}.0' in text
            assert f'regio_frontdoor_assignment_seconds_count{{path="placed"}} {placed}.0' in text
        nursery.cancel_scope.cancel()


async def test_racing_front_doors_agree(client: EtcdClient) -> None:
    async with trio.open_nursery() as nursery:
        await register_nodes(client, nursery)
        async with frontdoor(client, room_burst=50) as one, \
                frontdoor(client, room_burst=50) as two:
            answers: dict[tuple[str, int], str] = {}

            async def join(service: JoinService, which: int, room: str) -> None:
                answer = await service.join(room, b"", GERMANY)
                assert answer.status == 200, answer.body
                answers[room, which] = answer.body["router"]["node"]

            async with trio.open_nursery() as racers:
                for i in range(12):
                    racers.start_soon(join, one, 1, f"race-{i}")
                    racers.start_soon(join, two, 2, f"race-{i}")
            for i in range(12):
                assert answers[f"race-{i}", 1] == answers[f"race-{i}", 2]
                assert answers[f"race-{i}", 1].startswith("eu-central")
        nursery.cancel_scope.cancel()


async def test_etcd_outage_serves_known_rooms_only(etcd: LocalEtcd) -> None:
    client = EtcdClient(etcd.config(timeout=0.5))
    try:
        async with trio.open_nursery() as nursery:
            await register_nodes(client, nursery)
            async with frontdoor(client, placement_timeout=1.0) as service:
                assert (await service.join("known", b"", US)).status == 200
                etcd.kill(0)
                with trio.fail_after(10):
                    while service.snapshots.source.connected:  # type: ignore[attr-defined]
                        await trio.sleep(0.05)
                known = await service.join("known", b"", US)
                assert known.status == 200 and known.body["region"] == "us-east"
                with trio.fail_after(5):
                    fresh = await service.join("fresh", b"", US)
                assert fresh.status == 503 and fresh.body["error"] == "etcd_unavailable"
            nursery.cancel_scope.cancel()
    finally:
        client.close()


async def test_rejoin_keeps_the_participant(client: EtcdClient) -> None:
    async with trio.open_nursery() as nursery:
        await register_nodes(client, nursery)
        async with frontdoor(client, token_ttl=60, rejoin_window=600) as service:
            first = await service.join("gamma", b'{"name":"Ada"}', GERMANY)
            assert first.status == 200, first.body
            token = first.body["token"]
            body = f'{{"rejoin":"{token}"}}'.encode()
            again = await service.join("gamma", body, GERMANY)
            assert again.status == 200, again.body
            assert again.body["participant"] == first.body["participant"]
            claims = verify_token(again.body["token"], _token_keys(service), None, time.time())
            assert claims.name == "Ada"  # kept from the previous token
            # Expired, but inside the rejoin window: still the same participant.
            service.clock = lambda: time.time() + 300
            late = await service.join("gamma", body, GERMANY)
            assert late.body["participant"] == first.body["participant"]
            # Past the window, for another room, or tampered: a precise 400, nothing issued.
            service.clock = lambda: time.time() + 60 + 601
            stale = await service.join("gamma", body, GERMANY)
            assert (stale.status, stale.body["error"]) == (400, "invalid_rejoin")
            service.clock = time.time
            other = await service.join("delta", body, GERMANY)
            assert (other.status, other.body["error"]) == (400, "invalid_rejoin")
            assert "another room" in other.body["message"]
            forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
            bad = await service.join("gamma", f'{{"rejoin":"{forged}"}}'.encode(), GERMANY)
            assert (bad.status, bad.body["error"]) == (400, "invalid_rejoin")
            fresh = await service.join("gamma", b"{}", GERMANY)
            assert fresh.body["participant"] != first.body["participant"]
        nursery.cancel_scope.cancel()


def _token_keys(service: JoinService) -> KeySet:
    keyset = service.snapshots.get().token_keyset
    assert keyset is not None
    return keyset
