"""Placement against real etcd: concurrent front doors agree, draining routers get nothing."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control import schema
from control.bootstrap import init_cluster
from control.drain import request_drain
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.placement import (
    NoRouterAvailable,
    RoomState,
    assign_router,
    get_room,
    hold_room,
    least_loaded,
    place_room,
    read_room,
)
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.rooms import room_routers
from control.topology import parse_topology
from control.view import ClusterView, open_view

TOPOLOGY = parse_topology(
    """
[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]

[regions.eu-north]
jurisdiction = "EEA"
location = [59.33, 18.07]

[regions.us-east]
jurisdiction = "US"
location = [39.04, -77.49]
"""
)


async def start_router(client: EtcdClient, nursery: trio.Nursery, node_id: str,
                       region: str = "eu-central", load: int = 0,
                       jurisdiction: str | None = None) -> NodeRegistration:
    """Register a router; placement only uses routers of regions in the stored topology."""
    await init_cluster(client, TOPOLOGY)
    jurisdiction = jurisdiction or TOPOLOGY.regions[region].jurisdiction
    reg = NodeRegistration(client, new_record(node_id, "router", region, jurisdiction,
                                              capacity=100),
                           RegistryConfig(ttl=3, load_interval=0.05))
    await nursery.start(reg.run)
    if load:
        reg.set_load(load)
        await reg.flush()
    return reg


async def test_concurrent_front_doors_agree_on_one_router(etcd: LocalEtcd,
                                                          nursery: trio.Nursery) -> None:
    await _front_doors_agree(etcd, nursery)


async def test_front_doors_agree_on_three_members(etcd3: LocalEtcd,
                                                  nursery: trio.Nursery) -> None:
    """The same race with each front door on another member of a three-member cluster."""
    await _front_doors_agree(etcd3, nursery)


async def _front_doors_agree(etcd: LocalEtcd, nursery: trio.Nursery) -> None:
    node_client = EtcdClient(etcd.config())
    for i in range(4):
        await start_router(node_client, nursery, f"r{i}")
    # Four front doors, each with its own connection and view, twenty joins each.
    doors: list[tuple[EtcdClient, ClusterView]] = []
    for door in range(4):
        config = etcd.config()
        endpoints = config.endpoints[door % len(config.endpoints):] + config.endpoints[
            :door % len(config.endpoints)]
        c = EtcdClient(dataclasses.replace(config, endpoints=endpoints))
        view = await open_view(c, nursery)
        await view.wait_until(lambda v=view: len(v.nodes()) == 4, 5)  # type: ignore[misc]
        doors.append((c, view))
    results: list[str] = []
    members: list[str] = []
    created = 0

    async def join(door: int, shift: int) -> None:
        nonlocal created
        c, view = doors[door]
        # Different doors prefer different routers (as stale or differing loads would).
        regions = None if shift % 2 else ["eu-central"]
        placement = await place_room(c, view, "standup", regions=regions)
        results.append(placement.room.router)
        created += placement.created
        # Each door prefers another router for the next participant: the room record's guard
        # makes them agree on one router anyway (one per region until it is loaded).
        assignment = await assign_router(c, view, "spread", least_loaded(view, None,
                                                                         f"r{door}"))
        members.append(assignment.router.router)

    async with trio.open_nursery() as joins:
        for door in range(4):
            for shift in range(20):
                joins.start_soon(join, door, shift)
    assert len(results) == 80
    assert len(set(results)) == 1, results
    assert created == 1
    assert len(set(members)) == 1, members
    assert [r.router for r in await room_routers(node_client, "spread")] == members[:1]
    stored = await get_room(node_client, "standup")
    assert stored is not None and stored.router == results[0]
    for c, _ in doors:
        c.close()
    node_client.close()


async def test_draining_router_gets_no_new_rooms_keeps_old(client: EtcdClient,
                                                           nursery: trio.Nursery) -> None:
    await start_router(client, nursery, "idle")
    await start_router(client, nursery, "busy", load=50)
    view = await open_view(client, nursery)
    await view.wait_until(lambda: len(view.nodes()) == 2, 5)
    first = await place_room(client, view, "room-a")
    assert first.created and first.room.router == "idle"
    await request_drain(client, "idle")
    await view.wait_until(lambda: view.node("idle").draining, 5)  # type: ignore[union-attr]
    again = await place_room(client, view, "room-a")
    assert not again.created and again.room.router == "idle", "current rooms stay"
    for i in range(5):
        placement = await place_room(client, view, f"new-{i}")
        assert placement.room.router == "busy"
    await request_drain(client, "busy")
    await view.wait_until(lambda: all(n.draining for n in view.nodes().values()), 5)
    try:
        await place_room(client, view, "nowhere")
    except NoRouterAvailable as exc:
        assert "no router accepts" in str(exc)
    else:
        raise AssertionError("placement must fail when every router drains")


async def test_unconnected_placement_expires_and_residency(client: EtcdClient,
                                                             nursery: trio.Nursery) -> None:
    """Squatting (issue 15 item 1): what a join writes lives on a short pending lease, not on
    the router's lease, so a placement nobody connects to is gone while the router lives."""
    eu = await start_router(client, nursery, "eu1", region="eu-central")
    await start_router(client, nursery, "us1", region="us-east", load=0)
    view = await open_view(client, nursery)
    await view.wait_until(lambda: len(view.nodes()) == 2, 5)
    for i in range(3):
        placement = await place_room(client, view, f"eu-room-{i}", regions=["eu-central"],
                                     pending_ttl=2)
        assert placement.room.router == "eu1"
    try:
        await place_room(client, view, "x", regions=["eu-north"])
    except NoRouterAvailable:
        pass
    else:
        raise AssertionError("no fallback outside the allowed regions")
    kv = await client.get(schema.room_key("eu-room-0"))
    assert kv is not None and kv.lease and kv.lease != eu.lease
    assert [r.router for r in await room_routers(client, "eu-room-0", view)] == ["eu1"]
    # A router that got a participant holds the room: its record outlives the pending lease.
    held = await hold_room(client, "eu-room-1", "eu1", "eu-central", "eea", "sfu")
    assert not held.created and held.lease not in (0, eu.lease)
    with trio.fail_after(15):
        while await get_room(client, "eu-room-0") is not None:
            await client.keepalive(held.lease)
            await trio.sleep(0.3)
    state = await read_room(client, "eu-room-0")
    assert state.record_kv is None and not state.members, "nothing of the placement remains"
    assert view.node("eu1") is not None, "the router is alive all along"


async def test_misconfigured_router_is_never_placed(client: EtcdClient,
                                                    nursery: trio.Nursery) -> None:
    # A router in a US region claiming to be EEA (or the reverse) must not host rooms: a
    # misconfigured node would otherwise become a residency breach.
    await start_router(client, nursery, "liar", region="us-east", jurisdiction="EEA")
    view = await open_view(client, nursery)
    await view.wait_until(lambda: len(view.nodes()) == 1, 5)
    try:
        await place_room(client, view, "r1", regions=["us-east"])
    except NoRouterAvailable:
        pass
    else:
        raise AssertionError("a router with the wrong jurisdiction was used")
    honest = await start_router(client, nursery, "honest", region="us-east")
    await view.wait_until(lambda: len(view.nodes()) == 2, 5)
    placement = await place_room(client, view, "r1", regions=["us-east"], prefer="liar",
                                 mode="p2p", policy="nearest")
    assert placement.room.router == honest.record.node_id
    assert placement.room.mode == "p2p"


ROUTERS = {"eu1": "eu-central", "north1": "eu-north", "us1": "us-east"}


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEtcd]:
    """One etcd for every example, with three honest routers and a liar (a us-east router
    claiming the EEA) registered under one long lease."""
    etcd = LocalEtcd(1, base_dir=tmp_path_factory.mktemp("etcd-props"))

    async def setup() -> None:
        await etcd.start()
        async with EtcdClient(etcd.config()) as client:
            await init_cluster(client, TOPOLOGY)
            lease = await client.grant(600)
            nodes = [*((n, r, TOPOLOGY.regions[r].jurisdiction) for n, r in ROUTERS.items()),
                     ("liar", "us-east", "EEA")]
            for node_id, region, jurisdiction in nodes:
                record = new_record(node_id, "router", region, jurisdiction, capacity=100)
                await client.put(schema.node_key(node_id), record.encode(), lease)

    trio.run(setup)
    try:
        yield etcd
    finally:
        etcd.stop()


_ROOM_NUMBERS = itertools.count()


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["eea", "nearest"]),
                                st.sampled_from([*ROUTERS, "liar"])), min_size=1, max_size=6))
def test_placement_never_widens_residency(registered: LocalEtcd,
                                          steps: list[tuple[str, str]]) -> None:
    """Whatever a chooser proposes (here: anything, adversarially), the transaction layer
    keeps the policy the room was created with and never adds a router outside the EEA to an
    ``eea`` room, nor a router whose jurisdiction disagrees with its region's to any room."""
    room = f"prop-{next(_ROOM_NUMBERS)}"

    async def scenario() -> RoomState:
        async with EtcdClient(registered.config()) as client, trio.open_nursery() as nursery:
            view = await open_view(client, nursery)
            for policy, proposed in steps:
                record = view.node(proposed)
                assert record is not None
                try:
                    assignment = await assign_router(
                        client, view, room, lambda _p, _m, r=record: r, policy=policy)
                except NoRouterAvailable:
                    continue
                assert assignment.router.router == proposed
            state = await read_room(client, room)
            nursery.cancel_scope.cancel()
            return state

    state = trio.run(scenario)
    if state.record is None:
        assert not state.members
        return
    created = next(p for p, node in steps if node != "liar" and (
        p == "nearest" or TOPOLOGY.regions[ROUTERS[node]].jurisdiction == "EEA"))
    assert state.record.policy == created, "the first successful join fixes the policy"
    assert state.members, "a created room has its router"
    for member in state.members.values():
        assert member.router != "liar"
        assert TOPOLOGY.regions[member.region].jurisdiction == member.jurisdiction
        if state.record.policy == "eea":
            assert member.jurisdiction == "EEA"
