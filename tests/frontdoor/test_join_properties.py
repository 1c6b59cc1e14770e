"""Hypothesis properties of the whole join path (address header -> answer), etcd aside.

The service runs exactly as in production (trusted-proxy address extraction, GeoIP on the
embedded database, residency selection, TURN credentials, token), over an arbitrary cluster
snapshot and an in-memory create-if-absent placer standing in for etcd's transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import trio
from hypothesis import event, given, settings
from hypothesis import strategies as st

from control.placement import Assignment, Chooser
from control.rooms import Liveness, filter_live
from control.schema import (
    KeySet,
    NodeAddress,
    NodeRecord,
    RoomRecord,
    RoomRouterRecord,
    SecretKind,
)
from control.secrets import new_key
from control.tokens import verify_token
from control.topology import Topology
from geo.client_address import parse_trusted_proxies
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.service import JoinService, NoRouterForRoom
from geo.frontdoor.snapshot import SnapshotCache
from geo.geoip import DEFAULT_DATABASE, GeoIP
from geo.residency import EEA, place_client
from tests.frontdoor.test_tokens import KEY
from tests.geo.test_residency_properties import addresses
from tests.geo.topologies import TOPOLOGIES

GEO = GeoIP(DEFAULT_DATABASE)
TURN_KEY = new_key()


@dataclass
class FakeView:
    topo: Topology
    records: dict[str, NodeRecord]
    revision: int = 1

    def nodes(self) -> dict[str, NodeRecord]:
        return dict(self.records)

    def topology(self) -> Topology | None:
        return self.topo

    def keyset(self, which: SecretKind) -> KeySet | None:
        key = KEY if which == "token" else TURN_KEY
        return KeySet(which, key.kid, (key,))


@dataclass
class MemoryRooms:
    """Room records, room routers and a placer over the same dicts, with the rules of
    :func:`control.placement.assign_router` (stored policy wins, residency checked again,
    a live member returned as is, else one router added)."""

    view: FakeView
    rooms: dict[str, RoomRecord] = field(default_factory=dict)
    members: dict[str, dict[str, RoomRouterRecord]] = field(default_factory=dict)

    def room(self, room: str) -> RoomRecord | None:
        return self.rooms.get(room)

    def routers(self, room: str, alive: Liveness | None = None) -> list[RoomRouterRecord]:
        return filter_live(self.members.get(room, {}).values(), alive)

    def remember(self, record: RoomRecord | RoomRouterRecord) -> None:
        if isinstance(record, RoomRecord):
            self.rooms.setdefault(record.room, record)
        else:
            self.members.setdefault(record.room, {})[record.router] = record

    async def place(self, room: str, policy: str, mode: str, choose: Chooser,
                    alive: Liveness) -> Assignment:
        record = self.rooms.get(room)
        effective = record.policy if record is not None else policy
        node = choose(effective, self.routers(room, alive))
        topology = self.view.topo
        if node is None:
            raise NoRouterForRoom("none allowed")
        assert topology.regions[node.region].jurisdiction == node.jurisdiction
        assert effective != "eea" or node.jurisdiction == EEA
        member = self.members.get(room, {}).get(node.node_id)
        if record is not None and member is not None:
            return Assignment(record, member, False, False)
        member = RoomRouterRecord(room, node.node_id, node.region, node.jurisdiction, 0.0)
        created = record is None
        record = record or RoomRecord(room, node.node_id, node.region, policy, time.time(), mode)
        self.rooms[room] = record
        self.members.setdefault(room, {})[node.node_id] = member
        # A participant arrives there: its load grows, so the next one may find it full.
        self.view.records[node.node_id] = replace(node, load=node.load + 1)
        self.view.revision += 1
        return Assignment(record, member, created, True)


@st.composite
def clusters(draw: st.DrawFn) -> FakeView:
    topology = draw(st.sampled_from(TOPOLOGIES))
    regions = sorted(topology.regions)
    jurisdictions = sorted(topology.jurisdictions)
    records: dict[str, NodeRecord] = {}
    for index in range(draw(st.integers(0, 14))):
        region = draw(st.sampled_from(regions))
        honest = draw(st.integers(0, 4)) > 0
        kind = draw(st.sampled_from(["router", "turn"]))
        node_id = f"n{index}"
        addresses_ = ((NodeAddress("wss", "127.0.0.1", 1000 + index),) if kind == "router"
                      else (NodeAddress("udp", "127.0.0.1", 2000 + index),))
        if kind == "router" and draw(st.integers(0, 3)) > 0:  # most routers have trunks
            addresses_ += (NodeAddress("quic", "127.0.0.1", 3000 + index),)
        records[node_id] = NodeRecord(
            node_id, kind, region,
            topology.regions[region].jurisdiction if honest
            else draw(st.sampled_from(jurisdictions)),
            addresses_, draw(st.integers(0, 12)), draw(st.integers(0, 6)),
            draw(st.integers(0, 4)) == 0, "t", 0.0, "i")
    return FakeView(topology, records)


def _service(view: FakeView, rooms: MemoryRooms) -> JoinService:
    config = FrontdoorConfig(rate_limit=1e9, rate_burst=1e9)
    return JoinService(config, GEO, SnapshotCache(view, "/s"), rooms, rooms.place,
                       FrontdoorMetrics(), trusted=parse_trusted_proxies(["127.0.0.1/32"]))


def _join(service: JoinService, room: str, forwarded: str, body: bytes) -> Any:
    client = service.client_of("127.0.0.1", [(b"x-forwarded-for", forwarded.encode(
        "utf-8", "surrogatepass"))])
    return trio.run(service.join, room, body, client)


def _check_answer(view: FakeView, service: JoinService, forwarded: str, answer: Any,
                  policy: str | None) -> None:
    topology = view.topo
    client = service.client_of("127.0.0.1", [(b"x-forwarded-for", forwarded.encode(
        "utf-8", "surrogatepass"))])
    country = GEO.lookup(client).country if client is not None else None
    place = place_client(topology, country)
    if country is None:
        assert place.restricted and place.jurisdiction == topology.fail_closed_jurisdiction
    event(f"status {answer.status}")
    if answer.status != 200:
        assert answer.status in (409, 503), answer
        return
    body = answer.body
    router = view.records[body["router"]["node"]]
    turn_regions = [s["username"].split(":")[1] for s in body["ice_servers"]]
    used_jurisdictions = {topology.regions[router.region].jurisdiction} | {
        topology.regions[r].jurisdiction for r in turn_regions}
    assert router.jurisdiction == topology.regions[router.region].jurisdiction
    if place.restricted:
        assert used_jurisdictions == {place.jurisdiction}, (place, body)
    if body["policy"] == "eea":
        assert used_jurisdictions == {EEA}, body
    claims = verify_token(body["token"], {KEY.kid: KEY}, router.node_id, time.time())
    assert claims.room == body["room"] and claims.participant == body["participant"]
    if client is not None and not client.is_loopback and len(str(client)) >= 7:
        assert str(client) not in json.dumps(body), "the client address leaked into the answer"


@settings(max_examples=150)
@given(clusters(), st.lists(st.tuples(addresses, st.sampled_from([None, "eea", "nearest"]),
                                      st.sampled_from(["room", "other"]),
                                      st.sampled_from([None, "small"])),
                            min_size=1, max_size=8))
def test_residency_holds_through_the_join_path(
        view: FakeView, joins: list[tuple[str, str | None, str, str | None]]) -> None:
    """Residency of multi-router placement: whoever joins in whatever order, an EEA client
    only ever gets EEA routers, and no router of an ``eea`` room is ever outside the EEA."""
    rooms = MemoryRooms(view)
    service = _service(view, rooms)
    for forwarded, policy, room, size in joins:
        if "\x00" in forwarded or "\r" in forwarded or "\n" in forwarded:
            continue
        fields = {"policy": policy, "size": size}
        body = json.dumps({k: v for k, v in fields.items() if v is not None}).encode()
        answer = _join(service, room, forwarded, body)
        _check_answer(view, service, forwarded, answer, policy)
        for name, record in rooms.rooms.items():
            members = rooms.members.get(name, {})
            event(f"routers in a room: {len(members)}")
            if record.policy == "eea":
                assert all(m.jurisdiction == EEA for m in members.values()), members
            assert all(view.topo.regions[m.region].jurisdiction == m.jurisdiction
                       for m in members.values())
            if record.mode == "p2p":
                assert len(members) <= 1, "a p2p room never spans routers"
            if len(members) > 1:
                assert all(any(a.protocol == "quic" for a in view.records[m].addresses)
                           for m in members), "only routers with trunks share a room"


@settings(max_examples=60)
@given(clusters(), st.sampled_from(["10.0.0.1", "fe80::1", "::1", "192.0.2.7", "garbage",
                                    "unknown", "240.0.0.1", "100.64.1.1", "::ffff:10.1.1.1"]))
def test_unlocatable_clients_are_restricted(view: FakeView, forwarded: str) -> None:
    rooms = MemoryRooms(view)
    service = _service(view, rooms)
    answer = _join(service, "r", forwarded, b"")
    if answer.status == 200:
        assert answer.body["jurisdiction"] == view.topo.fail_closed_jurisdiction
        assert view.records[answer.body["router"]["node"]].jurisdiction == EEA
