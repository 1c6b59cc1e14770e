"""Three real router processes, one room spanning them (real etcd, real UDP on loopback): one
router is killed without a goodbye. The trunks to it are torn down within its lease TTL on both
survivors, and the media between the survivors' participants flows on without a break (counted
per packet before and after the kill)."""

from __future__ import annotations

import re
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
from tests.router.synth import SynthClient, rtp, token
from tests.trunk.routers import REPO, RouterProc, fetch, payload_of, start_router

pytestmark = pytest.mark.etcd

TTL = 3
RATE = 100
"""Packets a second from the publisher."""
ROUTERS = (("rA", "eu-central"), ("rB", "eu-north"), ("rC", "eu-central"))


async def trunks_up(router: RouterProc) -> int:
    metrics = await trio.to_thread.run_sync(fetch, router.ready["metrics"])
    found = re.search(r"^regio_trunks_up\{[^}]*\} ([0-9.]+)$", metrics, re.M)
    return int(float(found.group(1))) if found else 0


async def test_survivors_keep_their_media_when_a_router_dies(tmp_path: Path,
                                                             nursery: trio.Nursery) -> None:
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    routers: dict[str, RouterProc] = {}
    try:
        await init_cluster(client, load_topology(REPO / "infra/local/topology.toml"))
        for node, region in ROUTERS:
            routers[node] = await start_router(tmp_path, etcd.urls, node, region, TTL)
        view = await open_view(client, nursery)
        await view.wait_until(lambda: all(
            (n := view.node(x)) is not None and any(a.protocol == "quic" for a in n.addresses)
            for x, _ in ROUTERS), 20)
        for node, region in ROUTERS:
            record = RoomRouterRecord("trio", node, region, "EEA", time.time())
            await client.put(schema.room_router_key("trio", node), record.encode())
        keyset = view.keyset("token")
        assert keyset is not None
        people = {}
        for seed, (name, node) in enumerate((("alice", "rA"), ("bob", "rB"), ("carol", "rC"))):
            people[name] = await SynthClient.join(
                nursery, routers[node].signaling,
                token("trio", name, router=node, key=keyset.current_key), seed=seed)
        alice, bob, carol = people["alice"], people["bob"], people["carol"]
        await alice.publish(audio_ssrc=2222)
        for listener in (bob, carol):
            assert len((await listener.answer_offer(timeout=20))["tracks"]) == 1
        assert alice.publisher is not None and bob.subscriber is not None
        assert carol.subscriber is not None
        with trio.fail_after(15):
            for leg in (alice.publisher, bob.subscriber, carol.subscriber):
                await leg.connected.wait()
        with trio.fail_after(20):
            while min([await trunks_up(routers[n]) for n in ("rA", "rB")]) < 2:
                await trio.sleep(0.2)

        sent_at: list[float] = []
        stop = trio.Event()

        async def publish() -> None:
            start = trio.current_time()
            while not stop.is_set():
                seq = len(sent_at)
                alice.send_rtp(rtp(seq, 2222, 111, seq.to_bytes(4, "big") * 40, seq * 960))
                sent_at.append(trio.current_time())
                await trio.sleep_until(start + (seq + 1) / RATE)

        nursery.start_soon(publish)
        with trio.fail_after(20):  # media reaches both listeners before the kill
            while len(bob.subscriber.received) < RATE or len(carol.subscriber.received) < RATE:
                await trio.sleep(0.05)
        await trio.sleep(2.0)

        routers["rC"].kill()  # SIGKILL: no goodbye, no lease revocation
        killed = trio.current_time()
        torn_down: dict[str, float] = {}
        with trio.fail_after(TTL + 10):
            while len(torn_down) < 2:
                for node in ("rA", "rB"):
                    if node not in torn_down and await trunks_up(routers[node]) == 1:
                        torn_down[node] = trio.current_time() - killed
                await trio.sleep(0.1)
        assert max(torn_down.values()) < TTL + 2.0  # the TTL plus etcd's expiry granularity
        await trio.sleep(2.0)
        stop.set()
        await trio.sleep(0.5)  # the last packets in flight

        got = {int.from_bytes(payload_of(p)[:4], "big") for p in bob.subscriber.received}
        before = [s for s, t in enumerate(sent_at) if killed - 2.0 <= t < killed]
        after = [s for s, t in enumerate(sent_at) if killed <= t < sent_at[-1] - 0.3]
        assert len(before) >= RATE and len(after) >= TTL * RATE  # both windows really counted
        lost_before = [s for s in before if s not in got]
        lost_after = [s for s in after if s not in got]
        # no interruption: loopback loses nothing, and the trunk rA-rB never depended on rC
        assert len(lost_before) <= len(before) // 100, lost_before
        assert len(lost_after) <= len(after) // 100, lost_after
        await bob.ws.send({"type": "ping", "id": 7})
        assert (await bob.ws.recv_type("pong"))["id"] == 7
        for person in (alice, bob, carol):
            await person.close()
    finally:
        for router in routers.values():
            router.kill()
        client.close()
        etcd.stop()
