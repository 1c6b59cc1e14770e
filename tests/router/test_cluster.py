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
from control.schema import KeySet, RoomRecord
from control.secrets import read_keyset
from control.topology import load_topology
from control.view import open_view
from router.signaling.client import SignalingClient, SignalingClosed
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
            [sys.executable, "-m", "control", "router", "--etcd", etcd.urls, "--region", region,
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
        [sys.executable, "-m", "control", "router", "--etcd", etcd_urls, "--region", region,
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


async def test_restarted_router_claims_its_rooms_under_its_new_lease(tmp_path: Path) -> None:
    """A router restarts with the same node id (new process, new lease); a participant rejoins
    its room; once the old lease expires the room key still names the router, bound to the new
    lease, so the front door keeps sending the room there. A room whose key names another
    router sends its participants away with ``wrong_router``."""
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    processes: list[trio.Process] = []
    try:
        topology = load_topology(REPO / "infra/local/topology.toml")
        region = sorted(topology.regions)[0]
        await init_cluster(client, topology)
        keyset = await read_keyset(client, "token")
        assert keyset is not None
        key = keyset.current_key
        room_key, node_key = schema.room_key("room"), schema.node_key("rt-1")

        first, url = await _start_router(etcd.urls, region, "rt-1")
        processes.append(first)
        ws = await SignalingClient.connect(url)
        await ws.send({"type": "join", "token": token("room", "a", router="rt-1", key=key)})
        await ws.recv_type("joined")
        node_kv = await client.get(node_key)
        assert node_kv is not None and node_kv.lease
        old_lease = node_kv.lease

        async def room_bound_to_node_lease() -> bool:
            kv, node = await client.get(room_key), await client.get(node_key)
            return kv is not None and node is not None and kv.lease == node.lease

        await _wait_for(room_bound_to_node_lease)  # claimed when the room opened
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
        await _wait_for(room_bound_to_node_lease)

        async def old_lease_gone() -> bool:
            return await client.lease_ttl(old_lease) == -1

        await _wait_for(old_lease_gone)
        kv, node = await client.get(room_key), await client.get(node_key)
        assert kv is not None and node is not None
        assert kv.lease == node.lease != old_lease
        assert RoomRecord.decode(kv.value).router == "rt-1"

        # A room placed on another router (a token issued before a re-placement).
        other = RoomRecord("moved", "rt-2", region, "eea", 0.0, "sfu")
        await client.put(schema.room_key("moved"), other.encode())
        stray = await SignalingClient.connect(url)
        await stray.send({"type": "join", "token": token("moved", "s", router="rt-1", key=key)})
        await stray.recv_type("joined")
        error = await stray.recv()
        assert (error["type"], error["code"]) == ("error", "wrong_router")
        with pytest.raises(SignalingClosed) as closed:
            await stray.recv()
        assert closed.value.code == 4003
        moved = await client.get(schema.room_key("moved"))
        assert moved is not None and RoomRecord.decode(moved.value).router == "rt-2"
        await rejoin.send({"type": "leave"})
        await _wait_for(lambda: _absent(client, room_key))  # released when the room empties
        for conn in (ws, rejoin, stray):
            await conn.close()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        client.close()
        etcd.stop()


async def _absent(client: EtcdClient, key: str) -> bool:
    return await client.get(key) is None
