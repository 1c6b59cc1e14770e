"""Failover (issue 15 item 7): a router killed with SIGKILL leaves the front door's candidates
through the front door's own health probes, long before its 10 s lease expires, and no join
gets a 5xx while another allowed router exists.

Real etcd, two real ``regio router`` processes in eu-central with the default 10 s lease, a
real ``regio frontdoor`` subprocess (probes every 0.5 s, down after 2 failures). The room's
router is killed; joins of the room keep getting 200 and move to the surviving router while
etcd still lists the dead one.
"""

from __future__ import annotations

import http.client
import json
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from benchmarks.frontdoor_cluster import LocalFrontdoorCluster
from control import schema
from control.etcd import EtcdClient
from control.rooms import room_routers
from geo.frontdoor.health import RouterHealth, probe

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

LEASE_TTL = 10


def _join(hostport: str, room: str, address: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(hostport, timeout=10)
    try:
        conn.request("POST", f"/v1/rooms/{room}/join", body=b"",
                     headers={"X-Forwarded-For": address})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_killed_router_leaves_candidates_before_its_lease(
        tmp_path: Path, country_addresses: dict[str, list[str]]) -> None:
    cluster = LocalFrontdoorCluster(tmp_path)
    cluster.start()
    try:
        routers = [cluster.add_router("eu-central", node_id=f"fo-{i}", lease_ttl=LEASE_TTL)
                   for i in (1, 2)]
        _, url = cluster.add_frontdoor("frontdoor", "--trusted-proxy", "127.0.0.1/32",
                                       "--no-require-turn")
        hostport = url.split("://", 1)[1]
        german = country_addresses["DE"][0]
        deadline = time.monotonic() + 30
        while True:
            status, body = _join(hostport, "failover", german)
            if status == 200:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        victim = next(r for r in routers if r.node_id == body["router"]["node"])
        survivor = next(r for r in routers if r is not victim)

        async def registered(client: EtcdClient, node_id: str) -> bool:
            return await client.get(schema.node_key(node_id)) is not None

        victim.proc.stop(signal.SIGKILL)
        killed = time.monotonic()
        answers: list[tuple[float, int, str | None]] = []
        while True:
            status, body = _join(hostport, "failover", german)
            node = body.get("router", {}).get("node") if status == 200 else None
            answers.append((time.monotonic() - killed, status, node))
            assert status == 200, (status, body)  # never a 5xx: another router exists
            if node == survivor.node_id:
                break
            assert time.monotonic() - killed < 30, answers
            time.sleep(0.05)
        moved_after = answers[-1][0]
        # The dead router is still registered in etcd (its lease has not expired): the front
        # door's own probes took it out of the candidates.
        assert cluster.run(registered, victim.node_id), (
            f"the move took {moved_after:.2f} s: as long as the lease, probes did nothing")

        async def members(client: EtcdClient) -> set[str]:
            return {r.router for r in await room_routers(client, "failover")}

        assert survivor.node_id in cluster.run(members)
        status, body = _join(hostport, "fresh-after-failover", german)
        assert status == 200 and body["router"]["node"] == survivor.node_id, body
        print(f"failover: joins moved to the surviving router {moved_after:.2f} s after "
              f"SIGKILL ({len(answers)} joins, all 200; lease TTL {LEASE_TTL} s)")
    finally:
        cluster.stop()


def test_probe_rounds_mark_down_and_back() -> None:
    """Down after ``failures`` refused rounds in a row, or ``failures + 2`` failed rounds of
    any kind; back after one good answer; routers that left the registry are forgotten."""
    health = RouterHealth(dict, interval=0.5, failures=2)
    health.apply({"a": "refused", "b": "up"})
    assert health.down == frozenset() and health.version == 0
    health.apply({"a": "refused", "b": "timeout"})
    assert health.down == {"a"} and health.version == 1
    health.apply({"a": "up", "b": "timeout"})
    assert health.down == frozenset() and health.version == 2
    health.apply({"a": "timeout", "b": "refused"})
    assert health.down == frozenset(), "three slow or refused answers are not yet enough"
    health.apply({"a": "timeout", "b": "timeout"})
    assert health.down == {"b"}, "four failures in a row are"
    health.apply({"a": "timeout"})
    assert health.down == frozenset(), "b left the registry"
    with pytest.raises(ValueError):
        RouterHealth(dict, interval=0, failures=1)


async def test_probe_answers_only_for_a_live_health_endpoint() -> None:
    """A listener that answers 200 is up; a closed port (a killed process) and a listener
    that accepts but never answers (a hung one) are down within the timeout."""
    import trio

    async def healthy(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async def hung(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        ok = (await nursery.start(partial(trio.serve_tcp, healthy, 0, host="127.0.0.1")))[0]
        stuck = (await nursery.start(partial(trio.serve_tcp, hung, 0, host="127.0.0.1")))[0]
        closed = trio.socket.socket()
        await closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        assert await probe("127.0.0.1", ok.socket.getsockname()[1], False, 5.0) == "up"
        assert await probe("127.0.0.1", port, False, 5.0) == "refused"
        assert await probe("127.0.0.1", stuck.socket.getsockname()[1], False, 0.3) == "timeout"
        nursery.cancel_scope.cancel()
