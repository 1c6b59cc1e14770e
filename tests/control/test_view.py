"""Cluster view against real etcd: compaction, broken streams, leader loss, outages."""

from __future__ import annotations

import pytest
import trio

from control import schema
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.view import ClusterView, WatchCache, open_view

from .conftest import SpawnNode, wait_one_ttl


def etcd_content(kvs: list) -> dict[str, bytes]:  # type: ignore[type-arg]
    return {kv.key: kv.value for kv in kvs}


async def test_view_reads_then_follows(client: EtcdClient, nursery: trio.Nursery) -> None:
    await client.put(schema.CLUSTER_PREFIX + "a", b"1")
    view = await open_view(client, nursery)
    assert set(view.items) == {schema.CLUSTER_PREFIX + "a"}
    changes = view.subscribe()
    await client.put(schema.CLUSTER_PREFIX + "b", b"2")
    await client.delete(schema.CLUSTER_PREFIX + "a")
    with trio.fail_after(5):
        first = await changes.receive()
        second = await changes.receive()
    assert (first.type, first.key) == ("put", schema.CLUSTER_PREFIX + "b")
    assert (second.type, second.key) == ("delete", schema.CLUSTER_PREFIX + "a")
    assert view.connected and view.age() == 0.0


async def test_compaction_while_stalled_view_equals_etcd(client: EtcdClient,
                                                         nursery: trio.Nursery) -> None:
    prefix = schema.CLUSTER_PREFIX + "k/"
    for i in range(10):
        await client.put(f"{prefix}{i}", b"old")
    cache = WatchCache(client, prefix)
    resume = trio.Event()
    stalled_at: list[int] = []

    async def stall(start: int) -> None:
        if not stalled_at:
            stalled_at.append(start)
            await resume.wait()

    cache.before_watch = stall
    await nursery.start(cache.run)
    deletes: list[str] = []
    puts: list[str] = []
    changes = cache.subscribe()

    async def collect() -> None:
        async for change in changes:
            (deletes if change.type == "delete" else puts).append(change.key)

    nursery.start_soon(collect)
    # The watcher read at R and is stalled before watching from R+1: change things behind its
    # back and compact history past R+1.
    for i in range(5):
        await client.delete(f"{prefix}{i}")
    for i in range(10, 15):
        await client.put(f"{prefix}{i}", b"new")
    await client.put(f"{prefix}9", b"changed")
    revision, _ = await client.get_prefix(prefix)
    await client.compact(revision)
    assert stalled_at and stalled_at[0] < revision
    resume.set()
    _, kvs = await client.get_prefix(prefix)
    await cache.wait_until(
        lambda: {k: v.value for k, v in cache.items.items()} == etcd_content(kvs), 10
    )
    assert cache.compactions == 1
    assert cache.relists == 2
    # And it keeps following after the re-read; once the subscriber has that later change,
    # it has every delete the re-read produced.
    await client.put(f"{prefix}new", b"x")
    await cache.wait_until(lambda: f"{prefix}new" in cache.items, 5)
    with trio.fail_after(5):
        while f"{prefix}new" not in puts:
            await trio.sleep(0.02)
    assert sorted(deletes) == sorted(f"{prefix}{i}" for i in range(5))


async def test_view_serves_last_state_while_etcd_down(etcd: LocalEtcd, client: EtcdClient,
                                                      nursery: trio.Nursery) -> None:
    reg = NodeRegistration(client, new_record("r1", "router", "eu-central", "EEA"),
                           RegistryConfig(ttl=10))
    await nursery.start(reg.run)
    view = await open_view(client, nursery)
    await view.wait_until(lambda: view.node("r1") is not None, 5)
    etcd.stop_member(0)
    with trio.fail_after(10):
        while view.connected:
            await trio.sleep(0.05)
        failed = view.failed_reads
        while view.failed_reads < failed + 2:  # it tried to re-read, and failed, twice
            await trio.sleep(0.05)
    assert view.node("r1") is not None, "the last view keeps serving"
    assert view.age() > 0
    # A node that vanished while etcd was away is dropped on the re-read.
    await etcd.restart_member(0)
    await view.wait_until(lambda: view.connected, 10)
    assert view.age() == 0.0
    other = EtcdClient(etcd.config(timeout=1.0))
    try:
        await other.put(schema.node_key("ghost"), b"x")
        await view.wait_until(lambda: schema.node_key("ghost") in view.items, 5)
    finally:
        other.close()


@pytest.mark.slow
async def test_leader_kill_evicts_no_node_and_view_recovers(etcd3: LocalEtcd,
                                                            spawn_node: SpawnNode,
                                                            nursery: trio.Nursery) -> None:
    client = EtcdClient(etcd3.config(timeout=1.0))
    try:
        view = await open_view(client, nursery)
        ids = [f"n{i}" for i in range(3)]
        nodes = [await spawn_node(etcd3.urls, i, "--ttl", "5") for i in ids]
        await view.wait_until(lambda: sorted(view.nodes()) == ids, 10)
        deleted: list[str] = []
        changes = view.subscribe()

        async def collect() -> None:
            async for change in changes:
                if change.type == "delete":
                    deleted.append(change.key)

        nursery.start_soon(collect)
        leader = await etcd3.leader_index()
        etcd3.kill(leader)
        new_leader = await etcd3.leader_index()
        assert new_leader != leader
        # Every lease has had to be renewed under the new leader: a lease of the nodes' TTL
        # granted now, never renewed, has expired.
        await wait_one_ttl(client, 5)
        _, kvs = await client.get_prefix(schema.NODES_PREFIX)
        assert sorted(kv.key for kv in kvs) == [schema.node_key(i) for i in ids]
        assert deleted == [], "no node may be evicted by a leader change"
        assert sorted(view.nodes()) == ids
        assert all(n.process.returncode is None for n in nodes)
        assert all(n.count("lease_lost") == 0 for n in nodes), [n.events for n in nodes]
        # The view still follows changes through the surviving members.
        await client.put(schema.CLUSTER_PREFIX + "probe", b"1")
        await view.wait_until(lambda: schema.CLUSTER_PREFIX + "probe" in view.items, 10)
        assert isinstance(view, ClusterView)
    finally:
        client.close()
