"""`regio router` as a real process against a real etcd: registration, token keys from etcd,
a participant served, drain on SIGTERM (no new joins, existing session continues, exit when
empty) and deregistration."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import KeySet
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
        late = await SignalingClient.connect(url)
        await late.send({"type": "join", "token": token("room", "b", router="rt-1", key=key)})
        assert (await late.recv())["code"] == "draining"
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"  # the existing session continues
        assert process.poll() is None
        await ws.send({"type": "leave"})
        with trio.fail_after(20):
            await process.wait()
        assert process.returncode == 0
        await view.wait_until(lambda: view.node("rt-1") is None, 15)
        await late.close()
        await ws.close()
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        client.close()
        etcd.stop()
