"""End-to-end residency properties: any address, any cluster snapshot, through the real lookup.

address --GeoIP (embedded database)--> country --topology--> client rule --selection--> nodes
"""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from control.topology import Topology
from geo.addresses import classify_text
from geo.geoip import DEFAULT_DATABASE, GeoIP, Outcome
from geo.locations import haversine_km
from geo.residency import EEA, place_client
from geo.selection import (
    NoCapacity,
    NodeInfo,
    RoomAllowed,
    RoomPolicy,
    Selected,
    TurnServers,
    allowed_jurisdictions,
    check_room,
    node_allowed,
    select_router,
    select_turn,
)
from tests.geo.topologies import TOPOLOGIES

GEO = GeoIP(DEFAULT_DATABASE)

v4 = st.integers(0, 2**32 - 1)
embedded_forms = v4.flatmap(
    lambda n: st.sampled_from(
        [
            f"::ffff:{ipaddress.IPv4Address(n)}",
            str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80))),
            str(ipaddress.IPv6Address((0x64FF9B << 96) | n)),
            str(ipaddress.IPv6Address((0x64FF9B0001 << 80) | n)),
            str(ipaddress.IPv6Address(n)),
        ]
    )
)
well_known = st.sampled_from(
    ["193.0.0.1", "2001:67c:2e8::1", "8.8.8.8", "81.2.69.142", "1.1.1.1", "10.0.0.1",
     "100.64.0.1", "169.254.169.254", "::1", "fe80::1%eth0", "ff02::1", "2001:db8::1", "0.0.0.0"]
)  # fmt: skip
addresses = st.one_of(
    st.ip_addresses().map(str),
    embedded_forms,
    well_known,
    st.text(max_size=30),
)


@st.composite
def snapshots(draw: st.DrawFn, topology: Topology) -> list[NodeInfo]:
    regions = [*topology.regions, "rogue-region"]
    jurisdictions = [*topology.jurisdictions, "ELSEWHERE"]
    nodes = []
    for index in range(draw(st.integers(0, 14))):
        region = draw(st.sampled_from(regions))
        home = topology.regions[region].jurisdiction if region in topology.regions else "EEA"
        honest = draw(st.integers(0, 4)) > 0
        nodes.append(
            NodeInfo(
                node_id=f"n{index}",
                kind=draw(st.sampled_from(["router", "turn"])),
                region=region,
                jurisdiction=home if honest else draw(st.sampled_from(jurisdictions)),
                load=draw(st.integers(0, 12)),
                capacity=draw(st.integers(0, 10)),
                draining=draw(st.booleans()),
            )
        )
    return nodes


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Topology, str, RoomPolicy, list[NodeInfo]]:
    topology = draw(st.sampled_from(TOPOLOGIES))
    policy: RoomPolicy = draw(st.sampled_from(["eea", "nearest"]))
    return topology, draw(addresses), policy, draw(snapshots(topology))


def _usable(topology: Topology, node: NodeInfo, allowed: frozenset[str] | None) -> bool:
    return node.available and node_allowed(topology, node, allowed)


@given(scenarios())
def test_residency_holds_for_any_address_and_snapshot(
    scenario: tuple[Topology, str, RoomPolicy, list[NodeInfo]],
) -> None:
    topology, address, policy, nodes = scenario
    result = GEO.lookup(address)
    client = place_client(topology, result.country)

    # Unknown, private, reserved and unparsable addresses are restricted (fail closed).
    query, _kind = classify_text(address)
    if query is None or result.outcome is not Outcome.FOUND:
        assert result.country is None
        assert client.restricted
        assert client.jurisdiction == topology.fail_closed_jurisdiction

    router = select_router(topology, client, policy, nodes)
    turns = select_turn(topology, client, nodes, policy=policy, count=3)
    given_nodes = ([router.node] if isinstance(router, Selected) else []) + (
        list(turns.nodes) if isinstance(turns, TurnServers) else []
    )
    for node in given_nodes:
        # Hard rule: a restricted client never leaves its jurisdiction.
        if client.restricted:
            assert node.jurisdiction == client.jurisdiction
        # An eea room is only ever on EEA nodes.
        if policy == "eea":
            assert node.jurisdiction == EEA
        # Drained, full and misconfigured nodes are never chosen.
        assert not node.draining and node.load < node.capacity
        assert topology.regions[node.region].jurisdiction == node.jurisdiction
    if isinstance(router, Selected):
        assert router.node.kind == "router"
    if isinstance(turns, TurnServers):
        assert all(n.kind == "turn" for n in turns.nodes)
        assert len({n.node_id for n in turns.nodes}) == len(turns.nodes)

    # No capacity only when there really is no usable node (no false 503s either).
    allowed = allowed_jurisdictions(client, policy)
    usable_routers = [n for n in nodes if n.kind == "router" and _usable(topology, n, allowed)]
    assert isinstance(router, NoCapacity) == (not usable_routers)
    usable_turns = [n for n in nodes if n.kind == "turn" and _usable(topology, n, allowed)]
    assert isinstance(turns, NoCapacity) == (not usable_turns)

    # Nearest: no usable router is in a region nearer than the chosen one (1 km resolution).
    if isinstance(router, Selected) and client.location is not None:
        best = min(
            haversine_km(client.location, topology.regions[n.region].location)
            for n in usable_routers
        )
        assert router.distance_km is not None and round(router.distance_km) <= round(best)

    # Deterministic, whatever order the snapshot comes in.
    shuffled = list(nodes)
    random.Random(len(nodes)).shuffle(shuffled)
    assert select_router(topology, client, policy, shuffled) == router
    assert select_turn(topology, client, shuffled, policy=policy, count=3) == turns


@given(scenarios())
def test_existing_rooms_respect_residency(
    scenario: tuple[Topology, str, RoomPolicy, list[NodeInfo]],
) -> None:
    topology, address, policy, nodes = scenario
    client = place_client(topology, GEO.lookup(address).country)
    for node in nodes:
        if node.kind != "router":
            continue
        verdict = check_room(topology, client, policy, node)
        if isinstance(verdict, RoomAllowed):
            if client.restricted:
                assert node.jurisdiction == client.jurisdiction
            if policy == "eea":
                assert node.jurisdiction == EEA
            assert node.region in topology.regions


@given(scenarios(), st.data())
def test_room_members_never_widen_residency(
    scenario: tuple[Topology, str, RoomPolicy, list[NodeInfo]], data: st.DataObject,
) -> None:
    """A room's routers (``members``, any subset, including misconfigured, full, draining or
    foreign ones) change which allowed router is preferred, never what is allowed: the choice
    is the same set's nearest region, a member there if one is usable, and residency holds."""
    topology, address, policy, nodes = scenario
    client = place_client(topology, GEO.lookup(address).country)
    routers = [n for n in nodes if n.kind == "router"]
    members = data.draw(st.sets(st.sampled_from([n.node_id for n in routers]))
                        if routers else st.just(set()))
    plain = select_router(topology, client, policy, nodes)
    chosen = select_router(topology, client, policy, nodes, members)
    assert isinstance(chosen, NoCapacity) == isinstance(plain, NoCapacity)
    if not isinstance(chosen, Selected) or not isinstance(plain, Selected):
        return
    node = chosen.node
    if client.restricted:
        assert node.jurisdiction == client.jurisdiction
    if policy == "eea":
        assert node.jurisdiction == EEA
    assert node.available and topology.regions[node.region].jurisdiction == node.jurisdiction
    # Same distance class as without members; a usable member of that class wins.
    assert round(chosen.distance_km or 0) == round(plain.distance_km or 0)
    allowed = allowed_jurisdictions(client, policy)
    near = [n for n in routers if _usable(topology, n, allowed)
            and round(haversine_km(client.location, topology.regions[n.region].location)
                      if client.location is not None else 0) == round(chosen.distance_km or 0)]
    if any(n.node_id in members for n in near):
        assert node.node_id in members
