"""Placement end to end: the front door's join decisions put the participants of one room on
the routers nearest to them, and the routers carry the media between them over a trunk.

Real etcd, two real router processes with trunks (eu-central, us-east), the front door's join
service in this process on real etcd watch caches (no HTTP: the join path is the one
``regio frontdoor`` runs). A German publisher and an American subscriber of a ``nearest`` room
land on eu-central and us-east, the room's etcd record lists both, and the subscriber receives
the publisher's payloads through the trunk. In an ``eea`` room the American is served from
eu-central too, and the room never lists the us-east router.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from benchmarks.frontdoor_cluster import TOPOLOGY_FILE
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.rooms import room_routers
from control.topology import load_topology
from control.view import ClusterView, ViewConfig
from geo.addresses import parse_address
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.rooms import RoomCache
from geo.frontdoor.server import build_service
from geo.geoip import DEFAULT_DATABASE, GeoIP
from tests.router.synth import SynthClient
from tests.trunk.routers import RouterProc, payload_of, publish_and_receive, start_router

pytestmark = pytest.mark.etcd

GERMANY = parse_address("193.0.0.1")  # RIPE NCC: an EEA country
US = parse_address("8.8.8.8")


async def test_front_door_spreads_a_room_and_trunks_carry_it(tmp_path: Path,
                                                             nursery: trio.Nursery) -> None:
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    routers: list[RouterProc] = []
    try:
        await init_cluster(client, load_topology(TOPOLOGY_FILE))
        routers.append(await start_router(tmp_path, etcd.urls, "eu1", "eu-central"))
        routers.append(await start_router(tmp_path, etcd.urls, "us1", "us-east"))
        view_config = ViewConfig(retry_delay=0.05, max_retry_delay=0.2)
        view, rooms = ClusterView(client, view_config), RoomCache(client, view_config)
        await nursery.start(view.run)
        await nursery.start(rooms.run)
        await view.wait_until(lambda: all(
            (n := view.node(x)) is not None and any(a.protocol == "quic" for a in n.addresses)
            for x in ("eu1", "us1")), 30)
        service = build_service(FrontdoorConfig(require_turn=False), client, view, rooms,
                                GeoIP(DEFAULT_DATABASE), None)

        de = await service.join("span", b'{"policy":"nearest"}', GERMANY)
        us = await service.join("span", b"", US)
        assert (de.status, us.status) == (200, 200), (de.body, us.body)
        assert de.body["router"]["node"] == "eu1" and us.body["router"]["node"] == "us1"
        assert {r.router for r in await room_routers(client, "span", view)} == {"eu1", "us1"}

        alice = await SynthClient.join(nursery, de.body["router"]["signaling_url"],
                                       de.body["token"], seed=1)
        bob = await SynthClient.join(nursery, us.body["router"]["signaling_url"],
                                     us.body["token"], seed=2)
        sent = await publish_and_receive(alice, bob, ssrc=2222, count=100, first_seq=500,
                                         offer_timeout=30, connect_timeout=20)
        assert bob.subscriber is not None
        assert [payload_of(p) for p in bob.subscriber.received] == sent

        # An eea room: the American is served in the EEA, the room never lists us1.
        first = await service.join("strict", b'{"policy":"eea"}', US)
        second = await service.join("strict", b"", GERMANY)
        assert first.body["router"]["node"] == second.body["router"]["node"] == "eu1"
        assert [r.router for r in await room_routers(client, "strict")] == ["eu1"]
        await bob.close()
        await alice.close()
    finally:
        for router in routers:
            router.kill()
        client.close()
        etcd.stop()

