"""`regio router` as a real process against a real etcd: registration, token keys from etcd,
a participant served, drain on SIGTERM (no new rooms, joins into its rooms and existing sessions
continue, exit when empty) and deregistration; room placement following the rooms a restarted
router actually hosts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from control import schema
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import KeySet, RoomRecord, RoomRouterRecord
from control.secrets import read_keyset
from control.topology import load_topology
from control.view import open_view
from router.signaling.client import SignalingClient
from tests.control.conftest import python_env
from tests.router.synth import token

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.etcd


async def test_router_registers_serves_and_drains_on_sigterm(tmp_path: Path, nursery) -> None:  # type: ignore[no-untyped-def]
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    process = None
    try:
        topology = load_topology(REPO / "infra/local/topology.toml")
        region = sorted(topology.regions)[0]
        await init_cluster(client, topology)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "control", "router", "--workers", "1",
             "--etcd", etcd.urls, "--region", region,
             "--node-id", "rt-1", "--listen", "127.0.0.1", "--udp-port", "0",
             "--signaling", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--lease-ttl", "3"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=python_env(), cwd=str(REPO),
            start_new_session=True,
        )
        assert process.stdout is not None
        with trio.fail_after(30):
            line = b""
            while b"\n" not in line:
                line += await process.stdout.receive_some(4096)
        ready = json.loads(line.split(b"\n")[0])
        view = await open_view(client, nursery)
        await view.wait_until(lambda: view.node("rt-1") is not None, 15)
        record = view.node("rt-1")
        assert record is not None and record.kind == "router" and record.region == region
        protocols = {a.protocol for a in record.addresses}
        assert protocols == {"udp", "ws", "metrics"}
        keyset = view.keyset("token")
        assert isinstance(keyset, KeySet)
        key = keyset.current_key
        url = ready["signaling"]
        ws = await SignalingClient.connect(url)
        await ws.send({"type": "join", "token": token("room", "a", router="rt-1", key=key)})
        assert (await ws.recv())["type"] == "joined"
        await view.wait_until(lambda: (n := view.node("rt-1")) is not None and n.load == 1, 15)
        process.send_signal(signal.SIGTERM)
        await view.wait_until(lambda: (n := view.node("rt-1")) is not None and n.draining, 15)
        # A draining router keeps its rooms: a (re)join into a room it hosts is accepted...
        late = await SignalingClient.connect(url)
        await late.send({"type": "join", "token": token("room", "b", router="rt-1", key=key)})
        assert (await late.recv_type("joined"))["room"] == "room"
        # ... a join that would create a room is refused.
        new = await SignalingClient.connect(url)
        await new.send({"type": "join", "token": token("other", "c", router="rt-1", key=key)})
        refusal = await new.recv()
        assert (refusal["type"], refusal["code"]) == ("error", "draining")
        await ws.send({"type": "ping"})
        assert (await ws.recv_type("pong"))["type"] == "pong"  # the existing session continues
        assert process.poll() is None
        await ws.send({"type": "leave"})
        await late.send({"type": "leave"})
        with trio.fail_after(20):
            await process.wait()
        assert process.returncode == 0
        await view.wait_until(lambda: view.node("rt-1") is None, 15)
        for conn in (new, late, ws):
            await conn.close()
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        client.close()
        etcd.stop()


async def _start_router(etcd_urls: str, region: str, node_id: str) -> tuple[trio.Process, str]:
    """A ``regio router`` process (lease TTL 2 s); returns it and its signaling URL."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "router", "--workers", "1",
         "--etcd", etcd_urls, "--region", region,
         "--node-id", node_id, "--listen", "127.0.0.1", "--udp-port", "0",
         "--signaling", "127.0.0.1:0", "--lease-ttl", "2"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=python_env(), cwd=str(REPO),
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = b""
    with trio.fail_after(30):
        while b"\n" not in line:
            line += await process.stdout.receive_some(4096)
    return process, json.loads(line.split(b"\n")[0])["signaling"]


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.1)


async def test_router_membership_follows_its_participants(tmp_path: Path) -> None:
    """A router binds its membership of a room to its own lease when a participant connects;
    restarted with the same node id (new process, new lease) and rejoined, the membership is
    bound to the new lease and outlives the old one. A room whose record names another router
    is a room spanning routers, not a stray: this router joins it (no eviction) and leaves it
    when its share empties (issue 11 item 2)."""
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    processes: list[trio.Process] = []
    try:
        topology = load_topology(REPO / "infra/local/topology.toml")
        region = "eu-central"
        await init_cluster(client, topology)
        keyset = await read_keyset(client, "token")
        assert keyset is not None
        key = keyset.current_key
        room_key, node_key = schema.room_key("room"), schema.node_key("rt-1")
        member_key = schema.room_router_key("room", "rt-1")

        first, url = await _start_router(etcd.urls, region, "rt-1")
        processes.append(first)
        ws = await SignalingClient.connect(url)
        await ws.send({"type": "join", "token": token("room", "a", router="rt-1", key=key)})
        await ws.recv_type("joined")
        node_kv = await client.get(node_key)
        assert node_kv is not None and node_kv.lease
        old_lease = node_kv.lease

        async def member_bound_to_node_lease() -> bool:
            kv, node = await client.get(member_key), await client.get(node_key)
            return kv is not None and node is not None and kv.lease == node.lease

        await _wait_for(member_bound_to_node_lease)  # bound when the room opened
        room = await client.get(room_key)
        assert room is not None and room.lease not in (0, old_lease), "a room lease of its own"
        first.kill()  # a crash: no deregistration, the old lease lives on until its TTL
        await first.wait()

        second, url = await _start_router(etcd.urls, region, "rt-1")
        processes.append(second)

        async def reregistered() -> bool:
            node = await client.get(node_key)
            return node is not None and node.lease not in (0, old_lease)

        await _wait_for(reregistered)
        rejoin = await SignalingClient.connect(url)
        await rejoin.send({"type": "join", "token": token("room", "a", router="rt-1", key=key)})
        await rejoin.recv_type("joined")
        await _wait_for(member_bound_to_node_lease)

        async def old_lease_gone() -> bool:
            return await client.lease_ttl(old_lease) == -1

        await _wait_for(old_lease_gone)
        kv, node = await client.get(member_key), await client.get(node_key)
        assert kv is not None and node is not None
        assert kv.lease == node.lease != old_lease
        assert RoomRouterRecord.decode(kv.value).jurisdiction == "EEA"

        # A room whose record names another router: this router serves its share of it.
        other = RoomRecord("shared", "rt-2", region, "eea", 0.0, "sfu")
        await client.put(schema.room_key("shared"), other.encode())
        peer = await SignalingClient.connect(url)
        await peer.send({"type": "join", "token": token("shared", "s", router="rt-1", key=key)})
        await peer.recv_type("joined")
        await _wait_for(lambda: _present(client, schema.room_router_key("shared", "rt-1")))
        await peer.send({"type": "ping", "id": 7})
        assert (await peer.recv_type("pong"))["id"] == 7, "no eviction from a spanning room"
        shared = await client.get(schema.room_key("shared"))
        assert shared is not None and RoomRecord.decode(shared.value).router == "rt-2"
        await rejoin.send({"type": "leave"})
        await _wait_for(lambda: _absent(client, member_key))  # removed when its share empties
        for conn in (ws, rejoin, peer):
            await conn.close()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        client.close()
        etcd.stop()


async def _present(client: EtcdClient, key: str) -> bool:
    return await client.get(key) is not None


async def _absent(client: EtcdClient, key: str) -> bool:
    return await client.get(key) is None
