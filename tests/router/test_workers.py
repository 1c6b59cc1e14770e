"""``regio router --workers 2`` against real etcd: each worker a router in miniature.

Real etcd, one real supervisor process with two real worker processes: both register as
routers of the node's region with their own ports and a share of the capacity; a participant
joins one worker with a token naming it; a worker killed with SIGKILL is started again under the
same node id; SIGTERM to the node drains every worker and the node exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from control import schema
from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import NodeRecord, SecretKey
from control.secrets import read_keyset
from control.topology import load_topology
from router.signaling.client import SignalingClient
from tests.control.conftest import python_env
from tests.router.synth import token

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.etcd


async def _nodes(client: EtcdClient) -> dict[str, tuple[NodeRecord, int]]:
    _, kvs = await client.get_prefix(schema.NODES_PREFIX)
    records = ((NodeRecord.decode(kv.value), kv.lease) for kv in kvs)
    return {r.node_id: (r, lease) for r, lease in records}


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (started from any of its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _worker_pid(supervisor: int, node_id: str) -> int:
    for pid in _children(supervisor):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if node_id.encode() in argv:
            return pid
    raise AssertionError(f"no worker {node_id} under {supervisor}")


async def _start_node(etcd_urls: str) -> tuple[trio.Process, list[dict[str, Any]]]:
    """``regio router --workers 2`` as node ``wk``; returns it and its ready lines."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "router", "--etcd", etcd_urls, "--region",
         "eu-central", "--node-id", "wk", "--listen", "127.0.0.1", "--udp-port", "0",
         "--signaling", "127.0.0.1:0", "--lease-ttl", "2", "--capacity", "11",
         "--drain-deadline", "2", "--workers", "2"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=python_env(), cwd=str(REPO),
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(60):
        while b'"workers"' not in buffer:
            buffer += await process.stdout.receive_some(4096)
    return process, [json.loads(x) for x in buffer.decode().splitlines() if x.startswith("{")]


async def test_workers_register_restart_and_drain_together(tmp_path: Path) -> None:
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    process = None
    try:
        await init_cluster(client, load_topology(REPO / "infra/local/topology.toml"))
        keyset = await read_keyset(client, "token")
        assert keyset is not None
        process, lines = await _start_node(etcd.urls)
        node = next(e for e in lines if "workers" in e)
        assert node["node"] == "wk"
        workers = {w["node"]: w for w in node["workers"]}
        assert set(workers) == {"wk-w0", "wk-w1"}
        assert len({w["udp"] for w in workers.values()}) == 2, "one UDP port per worker"
        nodes = await _nodes(client)
        assert {n: r.region for n, (r, _) in nodes.items()} == {"wk-w0": "eu-central",
                                                                "wk-w1": "eu-central"}
        assert sum(r.capacity for r, _ in nodes.values()) == 11, "the node's capacity, shared"

        ws = await SignalingClient.connect(workers["wk-w1"]["signaling"])
        await ws.send({"type": "join", "token": token("room", "a", router="wk-w1",
                                                      key=keyset.current_key)})
        await ws.recv_type("joined")

        # A worker dies: the supervisor starts it again under the same node id.
        old_lease = nodes["wk-w0"][1]
        victim = _worker_pid(process.pid, "wk-w0")
        os.kill(victim, signal.SIGKILL)
        with trio.fail_after(60):
            while True:
                now = (await _nodes(client)).get("wk-w0")
                if now is not None and now[1] != old_lease and victim not in _children(
                        process.pid):
                    break
                await trio.sleep(0.2)
        # SIGTERM drains every worker together; the node exits 0 and leaves etcd.
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            code = await process.wait()
        assert code == 0
        with trio.fail_after(10):
            while await _nodes(client):
                await trio.sleep(0.2)
        await ws.close()
    finally:
        if process is not None and process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        client.close()
        etcd.stop()


async def test_draining_the_node_drains_every_worker(tmp_path: Path) -> None:
    """``regio node drain wk`` (the node's id, not a worker's) drains both workers; drained
    workers are not restarted and the node exits 0."""
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    process = None
    try:
        await init_cluster(client, load_topology(REPO / "infra/local/topology.toml"))
        process, _ = await _start_node(etcd.urls)
        result = await trio.run_process(
            [sys.executable, "-m", "control", "node", "drain", "wk", "--etcd", etcd.urls,
             "--wait", "--timeout", "60"],
            capture_stdout=True, capture_stderr=True, env=python_env(), cwd=str(REPO),
            check=False)
        assert result.returncode == 0, result.stderr
        assert b"wk-w0" in result.stdout and b"wk-w1" in result.stdout
        with trio.fail_after(60):
            assert await process.wait() == 0
        assert not await _nodes(client)
    finally:
        if process is not None and process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        client.close()
        etcd.stop()


def test_workers_with_trunks_need_one_certificate_each(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A worker is its own router on trunks too: its certificate must name ``<node>-w<k>``,
    so a single certificate for the node is refused, and a ``{node}`` path template is
    checked for every worker."""
    from control.cli import main
    from control.cluster_ca import create_ca, issue_node_certificate

    create_ca(tmp_path / "ca")
    issue_node_certificate(tmp_path / "ca", "wk-w0", tmp_path / "nodes")
    common = ["router", "--etcd", "http://127.0.0.1:1", "--region", "eu-central",
              "--node-id", "wk", "--workers", "2", "--trunk-ca", str(tmp_path / "ca" / "ca.pem")]
    single = [*common, "--trunk-cert", str(tmp_path / "nodes" / "wk-w0.pem"),
              "--trunk-key", str(tmp_path / "nodes" / "wk-w0.key")]
    assert main(single) == 2
    assert "{node}" in capsys.readouterr().err
    template = [*common, "--trunk-cert", str(tmp_path / "nodes" / "{node}.pem"),
                "--trunk-key", str(tmp_path / "nodes" / "{node}.key")]
    assert main(template) == 2, "wk-w1 has no certificate"
    assert "wk-w1" in capsys.readouterr().err


def test_workers_default_to_the_cores_this_process_may_use() -> None:
    """Issue 13 item 4: ``regio router`` without ``--workers`` runs one worker per core; the
    local cluster's routers ask for one process each (their plan gives each its own ports)."""
    from control.cli import build_parser
    from control.cluster_up import NodePlan, command_for
    from router.cli import build_config
    from router.workers import default_workers

    assert default_workers() == len(os.sched_getaffinity(0))
    common = ["router", "--region", "eu-central", "--token-key", "k1:c2VjcmV0",
              "--listen", "127.0.0.1"]
    assert build_config(build_parser().parse_args(common)).workers == default_workers()
    assert build_config(build_parser().parse_args([*common, "--workers", "0"])).workers == \
        default_workers()
    assert build_config(build_parser().parse_args([*common, "--workers", "3"])).workers == 3
    plan = command_for(NodePlan("r1", "router", "eu-central", 17000), "http://127.0.0.1:2379", ())
    assert build_config(build_parser().parse_args(plan[3:])).workers == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "-1"], "--workers must be 1-64 (or 0: one per core)"),
        (["--workers", "1000"], "--workers must be 1-64"),
        # --port P: worker k takes P+3k..P+3k+2.
        (["--workers", "4", "--port", "65528"], "--port: 4 workers would need ports up to 65539"),
        (["--workers", "3", "--udp-port", "65534"], "--udp-port: 3 workers would need"),
        (["--workers", "2", "--signaling", "127.0.0.1:65535"], "--signaling: 2 workers"),
        (["--workers", "2", "--trunk-port", "65535"], "--trunk-port: 2 workers"),
    ],
)
def test_nonsense_worker_counts_and_ports_are_refused(extra: list[str], message: str) -> None:
    """Bad input gets a precise error before any worker starts (1,000 workers once started)."""
    from control.cli import build_parser
    from control.clierror import CliError
    from router.cli import build_config

    common = ["router", "--region", "eu-central", "--token-key", "k1:c2VjcmV0",
              "--listen", "127.0.0.1"]
    with pytest.raises(CliError, match=re.escape(message)):
        build_config(build_parser().parse_args([*common, *extra]))
    # The last worker's ports (65529-65531) exist: allowed.
    assert build_config(build_parser().parse_args(
        [*common, "--workers", "4", "--port", "65520"])).workers == 4


async def test_standalone_workers_serve_on_their_own_ports_and_stop_together() -> None:
    """Without etcd (``--token-key``) a node's workers are standalone routers: the node's
    ready line lists each (its own UDP and signaling port, ``<node>-w<k>``) with its pid,
    a participant joins a worker with a token naming it, and SIGTERM stops them all."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "router", "--region", "eu-central", "--node-id", "sw",
         "--token-key", "k1:c2VjcmV0c2VjcmV0c2VjcmV0", "--listen", "127.0.0.1",
         "--udp-port", "0", "--signaling", "127.0.0.1:0", "--drain-deadline", "2",
         "--workers", "2"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=python_env(), cwd=str(REPO),
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        buffer = b""
        with trio.fail_after(60):
            while b'"workers"' not in buffer:
                buffer += await process.stdout.receive_some(4096)
        node = next(json.loads(x) for x in buffer.decode().splitlines() if '"workers"' in x)
        workers = {w["node"]: w for w in node["workers"]}
        assert set(workers) == {"sw-w0", "sw-w1"}
        assert len({w["udp"] for w in workers.values()}) == 2
        assert len({w["signaling"] for w in workers.values()}) == 2
        assert len(set(node["pids"])) == 2 and set(node["pids"]) <= set(_children(process.pid))
        key = SecretKey("k1", "c2VjcmV0c2VjcmV0c2VjcmV0", 0.0, None)
        ws = await SignalingClient.connect(workers["sw-w1"]["signaling"])
        await ws.send({"type": "join", "token": token("room", "a", router="sw-w1", key=key)})
        await ws.recv_type("joined")
        await ws.close()
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
