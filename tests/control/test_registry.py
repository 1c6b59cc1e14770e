"""Registry against real etcd: leases, SIGKILL, fencing, outages longer than the TTL."""

from __future__ import annotations

import signal

import pytest
import trio

from control import schema
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.schema import NodeRecord
from control.view import open_view

from .conftest import SpawnNode, wait_one_ttl


async def test_register_publishes_record_under_lease(client: EtcdClient, nursery: trio.Nursery
                                                     ) -> None:
    record = new_record("r1", "router", "eu-central", "EEA", capacity=50)
    reg = NodeRegistration(client, record, RegistryConfig(ttl=3, load_interval=0.3))
    await nursery.start(reg.run)
    kv = await client.get(schema.node_key("r1"))
    assert kv is not None and kv.lease == reg.lease
    stored = NodeRecord.decode(kv.value)
    assert stored == record
    assert await client.lease_ttl(reg.lease) > 0

    # Load updates are coalesced: many sets, at most one write per interval.
    before = kv.mod_revision
    for load in range(1, 21):
        reg.set_load(load)
        await trio.sleep(0.01)
    await reg.flush()
    kv = await client.get(schema.node_key("r1"))
    assert kv is not None and NodeRecord.decode(kv.value).load == 20
    assert kv.version - 1 <= 3, "load writes must be rate limited"
    assert kv.mod_revision > before

    await reg.deregister()
    assert await client.get(schema.node_key("r1")) is None


async def test_sigkilled_node_disappears_within_ttl(etcd: LocalEtcd, client: EtcdClient,
                                                    spawn_node: SpawnNode,
                                                    nursery: trio.Nursery) -> None:
    view = await open_view(client, nursery)
    node = await spawn_node(etcd.urls, "victim", "--ttl", "2")
    await view.wait_until(lambda: view.node("victim") is not None, 5)
    node.signal(signal.SIGKILL)
    # Gone within the TTL plus a margin: the wait's own timeout is the bound.
    await view.wait_until(lambda: view.node("victim") is None, 2 + 2)
    assert await client.get(schema.node_key("victim")) is None


async def test_node_id_conflict_newer_process_wins(etcd: LocalEtcd, client: EtcdClient,
                                                   spawn_node: SpawnNode) -> None:
    old = await spawn_node(etcd.urls, "dup", "--ttl", "3")
    new = await spawn_node(etcd.urls, "dup", "--ttl", "3")
    await old.wait_event("fenced", 5)
    await old.wait_event("exit", 5)
    kv = await client.get(schema.node_key("dup"))
    assert kv is not None
    winner = NodeRecord.decode(kv.value)
    assert winner.instance == new.events[0]["pid_instance"]
    # The stale process is gone (reaped: every request it ever sent has reached etcd) and
    # wrote nothing after it lost the claim.
    await old.process.wait()
    kv2 = await client.get(schema.node_key("dup"))
    assert kv2 is not None and NodeRecord.decode(kv2.value).instance == winner.instance


async def test_stale_in_process_claim_cannot_overwrite(client: EtcdClient,
                                                       nursery: trio.Nursery) -> None:
    older = new_record("same", "turn", "eu-north", "EEA")
    newer = older.with_changes(instance="f" * 16, started_at=older.started_at + 1)
    reg_old = NodeRegistration(client, older, RegistryConfig(ttl=3, load_interval=0.05))
    old_returned = trio.Event()

    async def run_old(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await reg_old.run(task_status=task_status)
        old_returned.set()

    await nursery.start(run_old)
    reg_new = NodeRegistration(client, newer, RegistryConfig(ttl=3))
    await nursery.start(reg_new.run)
    with trio.fail_after(5):
        await reg_old.fenced.wait()
        # run() returned: none of the stale registration's tasks is left to write.
        await old_returned.wait()
    reg_old.set_load(7)
    kv = await client.get(schema.node_key("same"))
    assert kv is not None
    stored = NodeRecord.decode(kv.value)
    assert stored.instance == newer.instance and stored.load == 0
    assert reg_new.state == "registered" and reg_old.state == "fenced"


@pytest.mark.slow
async def test_etcd_down_longer_than_ttl_every_node_registered_once(
    etcd: LocalEtcd, spawn_node: SpawnNode
) -> None:
    nodes = [await spawn_node(etcd.urls, f"n{i}", "--ttl", "2") for i in range(3)]
    etcd.stop_member(0)
    for node in nodes:  # down longer than the TTL, as each node saw it
        await node.wait_event("lease_lost", 15)
    await etcd.restart_member(0)
    client = EtcdClient(etcd.config(timeout=1.0))
    try:
        with trio.fail_after(10):
            while True:
                _, kvs = await client.get_prefix(schema.NODES_PREFIX)
                ids = sorted(NodeRecord.decode(kv.value).node_id for kv in kvs)
                leases_alive = [await client.lease_ttl(kv.lease) > 0 for kv in kvs]
                if ids == ["n0", "n1", "n2"] and all(leases_alive):
                    break
                await trio.sleep(0.2)
        # Stable: no duplicates, no flapping, a live lease each, for at least a whole TTL more
        # (a lease of the same TTL granted now, never renewed, has expired).
        await wait_one_ttl(client, 2)
        _, kvs = await client.get_prefix(schema.NODES_PREFIX)
        assert sorted(NodeRecord.decode(kv.value).node_id for kv in kvs) == ["n0", "n1", "n2"]
        for kv in kvs:
            assert await client.lease_ttl(kv.lease) > 0
    finally:
        client.close()
    for node in nodes:
        assert node.process.returncode is None


async def test_expired_lease_reregisters_with_new_lease(etcd: LocalEtcd, client: EtcdClient,
                                                        spawn_node: SpawnNode) -> None:
    node = await spawn_node(etcd.urls, "phoenix", "--ttl", "2")
    kv = await client.get(schema.node_key("phoenix"))
    assert kv is not None
    await client.revoke(kv.lease)  # what etcd does when a lease expires
    with trio.fail_after(5):
        while True:
            again = await client.get(schema.node_key("phoenix"))
            if again is not None and again.lease != kv.lease:
                break
            await trio.sleep(0.1)
    assert await client.lease_ttl(again.lease) > 0
    assert node.count("registered") == 2
    _, kvs = await client.get_prefix(schema.NODES_PREFIX)
    assert [k.key for k in kvs] == [schema.node_key("phoenix")]


async def test_deleted_key_is_restored_on_same_lease(client: EtcdClient,
                                                     nursery: trio.Nursery) -> None:
    reg = NodeRegistration(client, new_record("keeper", "router", "eu-north", "EEA"),
                           RegistryConfig(ttl=3))
    await nursery.start(reg.run)
    lease = reg.lease
    await client.delete(schema.node_key("keeper"))
    with trio.fail_after(3):
        while (kv := await client.get(schema.node_key("keeper"))) is None:
            await trio.sleep(0.05)
    assert kv.lease == lease, "a live lease is kept, so rooms bound to it survive"
    # An older process that found the key absent and wrote it loses it again.
    older = reg.record.with_changes(instance="0" * 16, started_at=reg.record.started_at - 5)
    await client.put(schema.node_key("keeper"), older.encode())
    with trio.fail_after(3):
        while True:
            kv = await client.get(schema.node_key("keeper"))
            if kv is not None and NodeRecord.decode(kv.value).instance == reg.record.instance:
                break
            await trio.sleep(0.05)
    assert reg.state == "registered" and kv.lease == lease


async def test_a_taken_key_under_a_live_lease_is_no_lease_loss(client: EtcdClient,
                                                               nursery: trio.Nursery) -> None:
    """Another writer's record, or a deleted key, while our lease lives: the key is taken back
    on the same lease, and no renewal in between calls that a lost lease (it once did: a
    renewal seeing the pending claim reported "lease expired" and went to "lost")."""
    reg = NodeRegistration(client, new_record("holder", "router", "eu-north", "EEA"),
                           # A renewal every 0.33 s; a take-back held to the load-update
                           # interval would take up to 30 s and miss the bound below.
                           RegistryConfig(ttl=1, load_interval=30.0))
    await nursery.start(reg.run)
    lease = reg.lease
    key = schema.node_key("holder")
    for round_ in range(6):
        if round_ % 2:
            await client.delete(key)
        else:
            older = reg.record.with_changes(instance=f"{round_:016x}",
                                            started_at=reg.record.started_at - 5)
            await client.put(key, older.encode())
        with trio.fail_after(3):
            while True:
                kv = await client.get(key)
                if kv is not None and NodeRecord.decode(kv.value).instance == \
                        reg.record.instance:
                    break
                await trio.sleep(0.02)
        assert kv.lease == lease
        await trio.sleep(0.4)  # at least one renewal after the claim
        assert reg.state == "registered"
    assert reg.lease_losses == 0 and reg.lease == lease
