"""``regio turn --etcd`` as a real subprocess against a real etcd (``control.localetcd``).

It registers as kind ``turn`` in its region, takes the TURN REST secret from etcd and follows
``regio secrets rotate``, drains on ``regio node drain`` (508 for new Allocates while an existing
allocation keeps relaying, exit when empty) or SIGTERM (exit at the deadline), and its key
disappears within the lease TTL after a SIGKILL. Processes are stopped by pid, always.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio

from control import schema
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import KeySet, NodeRecord
from control.secretbox import load_box
from control.topology import load_topology
from control.view import open_view
from tests.turn.helpers import code
from tests.turn.netclient import NetClient
from turn.stun import Lifetime, Method

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-central"
TTL = 2

# The etcd binary is found as everywhere else (control.localetcd.find_etcd_binary: the
# argument, $REGIO_ETCD_BIN, Debian's /usr/bin/etcd, PATH); a missing one fails the test loudly.
pytestmark = pytest.mark.etcd


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Node:
    """One ``regio turn --etcd`` process and the addresses from its ready line."""

    def __init__(self, proc: subprocess.Popen[str], ready: str) -> None:
        self.proc = proc
        self.ready = ready
        fields = dict(part.split("=", 1) for part in ready.split() if "=" in part)
        host, port = fields["udp"].rsplit(":", 1)
        self.udp = (host, int(port))
        self.node_id = fields["node"]

    async def wait_exit(self, timeout: float) -> int:
        with trio.fail_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.05)
        return self.proc.returncode


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[tuple[LocalEtcd, EtcdClient]]:
    cluster = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await cluster.start()
    client = EtcdClient(cluster.config(timeout=1.0))
    try:
        await init_cluster(client, load_topology(ROOT / "infra" / "local" / "topology.toml"))
        yield cluster, client
    finally:
        client.close()
        cluster.stop()


StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(etcd: tuple[LocalEtcd, EtcdClient]) -> AsyncIterator[StartNode]:
    cluster = etcd[0]
    started: list[subprocess.Popen[str]] = []

    async def start(node_id: str, *extra: str) -> Node:
        cmd = [sys.executable, "-m", "control", "turn", "--region", REGION,
               "--etcd", cluster.urls, "--node-id", node_id, "--lease-ttl", str(TTL),
               "--listen", "127.0.0.1:0", "--allow-peer", "127.0.0.0/8",
               "--relay-ip", "127.0.0.3", "--relay-ports", "54000-54499", *extra]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=_env(),
                                start_new_session=True)
        started.append(proc)
        assert proc.stdout is not None
        line = await trio.to_thread.run_sync(proc.stdout.readline)
        assert line.startswith("regio turn ready"), (line, proc.poll())
        return Node(proc, line)

    yield start
    for proc in started:  # stopped by pid, whatever the test did
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _regio(cluster: LocalEtcd, *args: str) -> str:
    done = await trio.run_process([sys.executable, "-m", "control", *args, "--etcd",
                                   cluster.urls], capture_stdout=True, capture_stderr=True,
                                  env=_env(), cwd=str(ROOT))
    return done.stdout.decode()


async def _turn_secret(client: EtcdClient) -> KeySet:
    kv = await client.get(schema.secrets_key("turn"))
    assert kv is not None
    return KeySet.decode(load_box(None).open(kv.key, kv.value))


async def _allocate(node: Node, secret: str, participant: str) -> tuple[NetClient, int | None]:
    client = NetClient("udp", node.udp, region=REGION, secret=secret, participant=participant)
    await client.connect()
    return client, code(await client.allocate())


async def _allocate_until(node: Node, secret: str, participant: str, want: int,
                          timeout: float = 5.0) -> NetClient:
    """Allocate until the node answers ``want`` (etcd changes reach it through a watch)."""
    deadline = trio.current_time() + timeout
    while True:
        client, got = await _allocate(node, secret, participant)
        if got == want:
            return client
        await client.close()
        assert trio.current_time() < deadline, f"still {got}, wanted {want}"
        await trio.sleep(0.1)


async def test_registers_takes_secrets_rotates_and_drains(
        etcd: tuple[LocalEtcd, EtcdClient], start_node: StartNode, nursery: trio.Nursery,
        peer: trio.socket.SocketType) -> None:
    cluster, client = etcd
    node = await start_node("turn-eu-1", "--drain-deadline", "30")
    # Registered as kind turn in its region, visible in the registry and a cluster view.
    kv = await client.get(schema.node_key("turn-eu-1"))
    assert kv is not None and kv.lease != 0
    record = NodeRecord.decode(kv.value)
    assert (record.kind, record.region, record.jurisdiction) == ("turn", REGION, "EEA")
    assert any(a.protocol == "udp" and a.port == node.udp[1] for a in record.addresses)
    view = await open_view(client, nursery)
    assert [n.node_id for n in view.available("turn", regions=[REGION])] == ["turn-eu-1"]

    # The TURN REST secret comes from etcd: minted from it works, an unknown one does not.
    first = (await _turn_secret(client)).current_key.secret
    holders: list[NetClient] = []
    alice, got = await _allocate(node, first, "alice")
    holders.append(alice)
    assert got == 200
    mallory, got = await _allocate(node, "not-the-cluster-secret", "mallory")
    await mallory.close()
    assert got == 401
    # Load is allocations (control.schema has one load field; pps is left to metrics).
    await view.wait_until(lambda: (n := view.node("turn-eu-1")) is not None and n.load == 1)

    # regio secrets rotate: the new key works once the node's watch saw it; the old one keeps
    # working through the overlap window.
    out = await _regio(cluster, "secrets", "rotate", "--which", "turn", "--overlap", "120")
    assert "turn: new current key" in out, out
    second = (await _turn_secret(client)).current_key.secret
    assert second != first
    holders.append(await _allocate_until(node, second, "bob", 200))
    carol, got = await _allocate(node, first, "carol")
    holders.append(carol)
    assert got == 200

    # An allocation with a channel to a real peer, to prove relaying survives the drain.
    assert code(await alice.bind(0x4000, *peer.getsockname())) == 200

    # regio node drain: new Allocates get 508, the existing allocation keeps relaying.
    out = await _regio(cluster, "node", "drain", "turn-eu-1")
    assert "is draining" in out, out
    refused = await _allocate_until(node, second, "dave", 508)
    await refused.close()
    kv = await client.get(schema.node_key("turn-eu-1"))
    assert kv is not None and NodeRecord.decode(kv.value).draining
    await alice.channel_data(0x4000, b"still relaying while draining")
    with trio.fail_after(5):
        assert await peer.recv(100) == b"still relaying while draining"
    assert code(await alice.request(Method.REFRESH)) == 200
    assert node.proc.poll() is None

    # Empty: the node deregisters and exits on its own.
    for holder in holders:
        assert code(await holder.request(Method.REFRESH, Lifetime(0))) == 200
        await holder.close()
    assert await node.wait_exit(10) == 0
    assert await client.get(schema.node_key("turn-eu-1")) is None


async def test_sigterm_drain_ends_at_the_deadline(etcd: tuple[LocalEtcd, EtcdClient],
                                                  start_node: StartNode) -> None:
    client = etcd[1]
    node = await start_node("turn-eu-2", "--drain-deadline", "2")
    secret = (await _turn_secret(client)).current_key.secret
    holder, got = await _allocate(node, secret, "alice")
    assert got == 200
    node.proc.send_signal(signal.SIGTERM)
    refused = await _allocate_until(node, secret, "bob", 508)
    await refused.close()
    # The allocation (600 s) is still there: only the 2 s drain deadline can end the process
    # within wait_exit's generous timeout. How fast is not asserted here (no wall clock in tests).
    assert await node.wait_exit(30) == 0
    assert await client.get(schema.node_key("turn-eu-2")) is None
    await holder.close()


async def test_sigkill_key_disappears_within_ttl(etcd: tuple[LocalEtcd, EtcdClient],
                                                 start_node: StartNode) -> None:
    client = etcd[1]
    node = await start_node("turn-eu-3")
    assert await client.get(schema.node_key("turn-eu-3")) is not None
    node.proc.kill()
    killed = time.monotonic()
    await node.wait_exit(5)
    with trio.fail_after(TTL + 2):
        while await client.get(schema.node_key("turn-eu-3")) is not None:
            await trio.sleep(0.1)
    print(f"key gone {time.monotonic() - killed:.1f} s after SIGKILL (TTL {TTL} s)")
