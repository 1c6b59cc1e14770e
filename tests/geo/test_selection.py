"""Node selection: residency first, then nearest region, then least load; never a fallback."""

from __future__ import annotations

from dataclasses import dataclass

from geo.residency import default_topology, place_client
from geo.selection import (
    NoCapacity,
    NodeInfo,
    RoomAllowed,
    RoomOutsideJurisdiction,
    Selected,
    TurnServers,
    allowed_jurisdictions,
    check_room,
    select_router,
    select_turn,
)
from tests.geo.topologies import WITH_SWISS, WORLD


def router(node_id: str, region: str, jurisdiction: str, load: int = 0, **kw: object) -> NodeInfo:
    return NodeInfo(node_id, "router", region, jurisdiction, load, kw.pop("capacity", 10), **kw)  # type: ignore[arg-type]


def turn(node_id: str, region: str, jurisdiction: str, load: int = 0) -> NodeInfo:
    return NodeInfo(node_id, "turn", region, jurisdiction, load, 10)


NODES = [
    router("fra-1", "eu-central", "EEA", 5),
    router("fra-2", "eu-central", "EEA", 2),
    router("sto-1", "eu-north", "EEA", 0),
    router("iad-1", "us-east", "US", 1),
    router("nrt-1", "ap-northeast", "JP", 0),
    router("gru-1", "sa-east", "BR", 0),
    turn("fra-t1", "eu-central", "EEA"),
    turn("sto-t1", "eu-north", "EEA"),
    turn("iad-t1", "us-east", "US"),
    turn("nrt-t1", "ap-northeast", "JP"),
]


def chosen(result: object) -> str:
    assert isinstance(result, Selected), result
    return result.node.node_id


def test_nearest_region_then_least_loaded() -> None:
    assert chosen(select_router(WORLD, place_client(WORLD, "DE"), "nearest", NODES)) == "fra-2"
    assert chosen(select_router(WORLD, place_client(WORLD, "FI"), "nearest", NODES)) == "sto-1"
    assert chosen(select_router(WORLD, place_client(WORLD, "US"), "nearest", NODES)) == "iad-1"
    assert chosen(select_router(WORLD, place_client(WORLD, "JP"), "nearest", NODES)) == "nrt-1"
    assert chosen(select_router(WORLD, place_client(WORLD, "BR"), "nearest", NODES)) == "gru-1"
    # Unrestricted clients may use EEA nodes when they are nearest.
    assert chosen(select_router(WORLD, place_client(WORLD, "CH"), "nearest", NODES)) == "fra-2"


def test_restricted_clients_stay_home_however_far() -> None:
    # Réunion is EEA (an outermost region): its client goes to Europe, not to a nearer region.
    result = select_router(WORLD, place_client(WORLD, "RE"), "nearest", NODES)
    assert isinstance(result, Selected) and result.node.jurisdiction == "EEA"
    for code in ("GP", "GF", "MQ", "YT", "MF", "AX", "NO", "IS", "LI"):
        result = select_router(WORLD, place_client(WORLD, code), "nearest", NODES)
        assert isinstance(result, Selected) and result.node.jurisdiction == "EEA", code


def test_unknown_client_fails_closed() -> None:
    place = place_client(WORLD, None)
    assert place.restricted and place.jurisdiction == "EEA"
    result = select_router(WORLD, place, "nearest", NODES)
    assert isinstance(result, Selected) and result.node.jurisdiction == "EEA"
    assert result.distance_km is None
    assert place_client(WORLD, "ZZ").restricted


def test_eea_room_for_a_non_eea_participant() -> None:
    result = select_router(WORLD, place_client(WORLD, "US"), "eea", NODES)
    assert isinstance(result, Selected) and result.node.jurisdiction == "EEA"
    turns = select_turn(WORLD, place_client(WORLD, "US"), NODES, policy="eea")
    assert isinstance(turns, TurnServers)
    assert {n.jurisdiction for n in turns.nodes} == {"EEA"}


def test_no_fallback_when_every_eea_node_is_gone() -> None:
    drained = [
        NodeInfo(
            n.node_id, n.kind, n.region, n.jurisdiction, n.load, n.capacity, n.jurisdiction == "EEA"
        )
        for n in NODES
    ]
    result = select_router(WORLD, place_client(WORLD, "DE"), "nearest", drained)
    assert isinstance(result, NoCapacity)
    assert result.allowed_jurisdictions == frozenset({"EEA"})
    assert "EEA" in result.reason
    assert isinstance(select_turn(WORLD, place_client(WORLD, "FR"), drained), NoCapacity)
    full = [router("fra-1", "eu-central", "EEA", 10)]
    assert isinstance(select_router(WORLD, place_client(WORLD, "DE"), "nearest", full), NoCapacity)
    # A US client of a nearest room still gets its own region.
    assert chosen(select_router(WORLD, place_client(WORLD, "US"), "nearest", drained)) == "iad-1"


def test_full_nearest_region_moves_to_the_next_allowed() -> None:
    nodes = [router("fra-1", "eu-central", "EEA", 10), router("sto-1", "eu-north", "EEA", 9)]
    assert chosen(select_router(WORLD, place_client(WORLD, "DE"), "nearest", nodes)) == "sto-1"


def test_misconfigured_nodes_are_never_chosen() -> None:
    nodes = [
        router("liar", "us-east", "EEA"),  # says EEA, runs in a US region
        router("ghost", "nowhere", "EEA"),  # region unknown to the topology
    ]
    assert isinstance(select_router(WORLD, place_client(WORLD, "DE"), "nearest", nodes), NoCapacity)
    assert isinstance(select_router(WORLD, place_client(WORLD, "US"), "nearest", nodes), NoCapacity)


def test_turn_nearest_first() -> None:
    result = select_turn(WORLD, place_client(WORLD, "SE"), NODES, count=2)
    assert isinstance(result, TurnServers)
    assert [n.node_id for n in result.nodes] == ["sto-t1", "fra-t1"]
    result = select_turn(WORLD, place_client(WORLD, "JP"), NODES, count=3)
    assert isinstance(result, TurnServers)
    assert result.nodes[0].node_id == "nrt-t1"


def test_second_restricted_jurisdiction() -> None:
    nodes = [router("zrh-1", "ch-zurich", "SWISS"), router("fra-1", "eu-central", "EEA")]
    swiss = place_client(WITH_SWISS, "CH")
    assert swiss.restricted and swiss.jurisdiction == "SWISS"
    assert chosen(select_router(WITH_SWISS, swiss, "nearest", nodes)) == "zrh-1"
    # An eea room and a Swiss client exclude each other: no node at all.
    result = select_router(WITH_SWISS, swiss, "eea", nodes)
    assert isinstance(result, NoCapacity)
    assert result.allowed_jurisdictions == frozenset()
    assert (
        chosen(select_router(WITH_SWISS, place_client(WITH_SWISS, "DE"), "nearest", nodes))
        == "fra-1"
    )


def test_check_room() -> None:
    us_router = router("iad-1", "us-east", "US")
    eu_router = router("fra-1", "eu-central", "EEA", draining=True)
    de, us = place_client(WORLD, "DE"), place_client(WORLD, "US")
    outside = check_room(WORLD, de, "nearest", us_router)
    assert isinstance(outside, RoomOutsideJurisdiction)
    assert outside.client_jurisdiction == "EEA"
    assert isinstance(check_room(WORLD, us, "nearest", us_router), RoomAllowed)
    # Draining does not evict a room; residency is all that is checked.
    assert isinstance(check_room(WORLD, de, "eea", eu_router), RoomAllowed)
    assert isinstance(check_room(WORLD, us, "eea", eu_router), RoomAllowed)
    assert isinstance(check_room(WORLD, us, "eea", us_router), RoomOutsideJurisdiction)


def test_allowed_jurisdictions() -> None:
    topology = default_topology()
    assert allowed_jurisdictions(place_client(topology, "US"), "nearest") is None
    assert allowed_jurisdictions(place_client(topology, "US"), "eea") == frozenset({"EEA"})
    assert allowed_jurisdictions(place_client(topology, "DE"), "nearest") == frozenset({"EEA"})
    assert allowed_jurisdictions(place_client(topology, None), "nearest") == frozenset({"EEA"})
    assert allowed_jurisdictions(place_client(topology, "US"), "bogus") == frozenset()  # type: ignore[arg-type]


def test_from_record() -> None:
    @dataclass
    class Record:
        node_id: str = "r1"
        kind: str = "turn"
        region: str = "eu-central"
        jurisdiction: str = "EEA"
        load: int = 3
        capacity: int = 9
        draining: bool = False

    info = NodeInfo.from_record(Record())
    assert info == NodeInfo("r1", "turn", "eu-central", "EEA", 3, 9, False)
