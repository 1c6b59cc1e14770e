"""Two real router processes on loopback with a real etcd: a room spanning both through a trunk.

A publisher on router A, a subscriber on router B: B receives exactly the publisher's payloads,
in order, sees the publisher in the room by name and gets her chat; both publish their probe
figures for the link. Then A dies: B tears the trunk down within the lease TTL (the publisher
leaves B's room), its own participant stays; A's audit record goes with its lease, B's when
the room ends on B.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from control import schema
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import RoomRouterRecord
from control.topology import load_topology
from control.view import open_view
from tests.control.conftest import python_env
from tests.router.synth import SynthClient, token
from tests.trunk.routers import (
    REPO,
    RouterProc,
    fetch,
    payload_of,
    publish_and_receive,
    start_router,
)

pytestmark = pytest.mark.etcd


async def test_room_spanning_two_routers(tmp_path: Path, nursery) -> None:  # type: ignore[no-untyped-def]
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    routers: list[RouterProc] = []
    try:
        await init_cluster(client, load_topology(REPO / "infra/local/topology.toml"))
        ra = await start_router(tmp_path, etcd.urls, "rA", "eu-central")
        routers.append(ra)
        rb = await start_router(tmp_path, etcd.urls, "rB", "eu-north")
        routers.append(rb)
        view = await open_view(client, nursery)
        await view.wait_until(lambda: all(
            (n := view.node(x)) is not None and any(a.protocol == "quic" for a in n.addresses)
            for x in ("rA", "rB")), 20)
        for node, region in (("rA", "eu-central"), ("rB", "eu-north")):
            record = RoomRouterRecord("span", node, region, "EEA", time.time())
            await client.put(schema.room_router_key("span", node), record.encode())
        keyset = view.keyset("token")
        assert keyset is not None
        key = keyset.current_key
        alice = await SynthClient.join(nursery, ra.signaling,
                                       token("span", "alice", router="rA", key=key,
                                             name="Alice"), seed=1)
        bob = await SynthClient.join(nursery, rb.signaling,
                                     token("span", "bob", router="rB", key=key), seed=2)
        sent = await publish_and_receive(alice, bob, ssrc=1111, count=300, first_seq=1000,
                                         offer_timeout=20, connect_timeout=15)
        assert bob.subscriber is not None
        got = [payload_of(p) for p in bob.subscriber.received]
        assert got == sent
        assert len({p[8:12] for p in bob.subscriber.received}) == 1
        # bob sees alice in the room, by name, although she is on the other router
        if {"id": "alice", "name": "Alice"} not in bob.joined["participants"]:
            present = await bob.ws.recv_type("participant_joined", timeout=15)
            assert present["participant"] == {"id": "alice", "name": "Alice"}
        await alice.ws.send({"type": "chat", "text": "hello from A"})  # and hears her chat
        chat = await bob.ws.recv_type("chat", timeout=15)
        assert chat["from"] == {"id": "alice", "name": "Alice"} and chat["text"] == "hello from A"

        # each router probes the link to the other and publishes it; the view holds the map
        await view.wait_until(lambda: {("rA", "rB"), ("rB", "rA")} <= set(view.links()), 20)
        link = view.links()[("rB", "rA")]
        assert link.samples >= 1 and link.loss == 0.0 and 0 < link.rtt_ms < 1000

        # metrics: the trunk, its probe figures; the audit names both routers and the path
        metrics = await trio.to_thread.run_sync(fetch, rb.ready["metrics"])
        assert 'regio_trunks_up{region="eu-north"} 1.0' in metrics
        assert 'regio_trunk_rtt_seconds{peer="rA",region="eu-north"}' in metrics
        with trio.fail_after(20):
            while len((await client.get_prefix(schema.room_audit_prefix("span")))[1]) < 2:
                await trio.sleep(0.2)
        audit = await trio.to_thread.run_sync(lambda: subprocess.run(
            [sys.executable, "-m", "control", "audit", "room", "span", "--etcd", etcd.urls,
             "--json"], capture_output=True, text=True, env=python_env(), cwd=str(REPO),
            timeout=60, check=True).stdout)
        report = json.loads(audit)
        assert [(n["node"], n["region"], n["jurisdiction"]) for n in report["nodes"]] == [
            ("rA", "eu-central", "EEA"), ("rB", "eu-north", "EEA")]
        assert ["rA", "rB"] in report["paths"] and report["jurisdictions"] == ["EEA"]
        assert "127.0.0.1" not in audit and "alice" not in audit

        # router A dies: within its lease TTL (3 s) B drops the trunk and A's track
        ra.kill()
        killed = trio.current_time()
        gone = await bob.ws.recv_type("track_unpublished", timeout=15)
        assert gone["track"]["participant"] == "alice"
        assert trio.current_time() - killed < 3 + 2.0  # TTL plus etcd's expiry granularity
        left = await bob.ws.recv_type("participant_left", timeout=5)
        assert left["participant"]["id"] == "alice"
        await bob.ws.send({"type": "ping", "id": 1})
        assert (await bob.ws.recv_type("pong"))["id"] == 1  # B's participant is unaffected

        # audit records live with the room: A's went with A's lease (A never deleted it), B's
        # stays while bob is in the room and goes when the room ends on B
        audit_keys = schema.room_audit_prefix("span")
        with trio.fail_after(15):
            while schema.room_audit_key("span", "rA") in {
                    kv.key for kv in (await client.get_prefix(audit_keys))[1]}:
                await trio.sleep(0.2)
        _, remaining = await client.get_prefix(audit_keys)
        assert [kv.key for kv in remaining] == [schema.room_audit_key("span", "rB")]
        await bob.close()
        with trio.fail_after(15):
            while (await client.get_prefix(audit_keys))[1]:
                await trio.sleep(0.2)
        await alice.close()
    finally:
        for r in routers:
            r.kill()
        client.close()
        etcd.stop()
