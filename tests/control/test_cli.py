"""The control-plane CLI as operators run it: real processes against real etcd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from control import schema
from control.etcd import EtcdClient, EtcdConfig
from control.localetcd import LocalEtcd, free_ports
from control.schema import NodeRecord
from control.secrets import read_keyset
from control.topology import Topology

from .conftest import REPO, SpawnNode, python_env

TOPOLOGY = REPO / "infra" / "local" / "topology.toml"


async def regio(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    if "--etcd" in argv and "--etcd-timeout" not in argv:
        # A loaded two-core CI machine can take seconds to open the first gRPC channel; the
        # tests check behaviour, not how fast etcd answers.
        argv = (*argv, "--etcd-timeout", "15")
    with trio.fail_after(timeout):
        return await trio.run_process(
            [sys.executable, "-m", "control", *argv],
            capture_stdout=True, capture_stderr=True, check=False, env=python_env(),
            cwd=str(REPO),
        )


async def test_cluster_init_idempotent(etcd: LocalEtcd, client: EtcdClient) -> None:
    first = await regio("cluster", "init", "--etcd", etcd.urls, "--topology", str(TOPOLOGY))
    assert first.returncode == 0, first.stderr
    assert b"topology written" in first.stdout
    kv = await client.get(schema.TOPOLOGY_KEY)
    assert kv is not None
    topology = Topology.from_json(schema.decode_topology(kv.value))
    assert {"eu-central", "eu-north", "us-east"} <= set(topology.regions)
    secrets = {k: await client.get(schema.secrets_key(k)) for k in schema.SECRET_KINDS}
    second = await regio("cluster", "init", "--etcd", etcd.urls, "--topology", str(TOPOLOGY))
    assert second.returncode == 0 and b"topology unchanged" in second.stdout
    kv2 = await client.get(schema.TOPOLOGY_KEY)
    assert kv2 is not None and kv2.mod_revision == kv.mod_revision
    for kind, before in secrets.items():
        after = await client.get(schema.secrets_key(kind))
        assert before is not None and after is not None and after.value == before.value


async def test_cluster_init_malformed_file_writes_nothing(etcd: LocalEtcd, client: EtcdClient,
                                                          tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TOPOLOGY.read_text().replace('routers = 1', 'routers = "MARS"', 2))
    result = await regio("cluster", "init", "--etcd", etcd.urls, "--topology", str(bad))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    line_no = next(i + 1 for i, line in enumerate(bad.read_text().splitlines())
                   if "MARS" in line)  # the first bad field
    assert str(bad) in err and f":{line_no}" in err and "routers" in err
    _, kvs = await client.get_prefix(schema.ROOT)
    assert kvs == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cluster", "status", "--etcd", "ftp://x"], "not an etcd URL"),
        (["cluster", "init", "--etcd", "http://127.0.0.1:1", "--topology", "/nonexistent.toml"],
         "/nonexistent.toml"),
        (["node", "drain", "bad id!", "--etcd", "http://127.0.0.1:1"], "invalid node id"),
        (["secrets", "rotate", "--etcd", "http://127.0.0.1:1", "--overlap", "-5"],
         "--overlap"),
        (["cluster", "status", "--etcd", "https://127.0.0.1:1"], "--etcd-ca"),
        (["cluster", "up", "--topology", str(TOPOLOGY), "--trusted-proxy", "nope"],
         "not a CIDR"),
        (["cluster", "up", "--topology", str(TOPOLOGY), "--kinds", "router,sfu"], "--kinds"),
    ],
)
async def test_bad_cli_input_is_one_clear_line(argv: list[str], message: str) -> None:
    result = await regio(*argv)
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err


async def test_unreachable_etcd_is_one_clear_line() -> None:
    port = free_ports(1)[0]
    result = await regio("cluster", "status", "--etcd", f"http://127.0.0.1:{port}",
                         "--etcd-timeout", "0.5")
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    url = f"http://127.0.0.1:{port}"
    assert err in (f"regio cluster: error: cannot reach etcd at {url} ({url}: unavailable)",
                   f"regio cluster: error: cannot reach etcd at {url} ({url}: deadline_exceeded)")


async def test_status_drain_and_sigterm(etcd: LocalEtcd, client: EtcdClient,
                                        spawn_node: SpawnNode) -> None:
    await regio("cluster", "init", "--etcd", etcd.urls, "--topology", str(TOPOLOGY))
    # Rooms empty 2 s apart once the drain starts: the record stays long enough to be read
    # as draining even when a loaded machine is slow to return from the CLI.
    a = await spawn_node(etcd.urls, "eu-a", "--rooms", "2", "--room-seconds", "2")
    b = await spawn_node(etcd.urls, "eu-b", "--rooms", "1", "--deadline", "1.0")
    us = await spawn_node(etcd.urls, "us-a", "--region", "us-east", "--jurisdiction", "US")

    status = await regio("cluster", "status", "--etcd", etcd.urls, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert [n["node"] for n in data["regions"]["eu-central"]["nodes"]] == ["eu-a", "eu-b"]
    assert data["regions"]["us-east"]["nodes"][0]["state"] == "ready"
    assert data["regions"]["eu-north"]["nodes"] == []
    table = await regio("cluster", "status", "--etcd", etcd.urls)
    assert table.returncode == 0 and b"eu-a" in table.stdout and b"us-east" in table.stdout

    # CLI drain: flag set at once, node keeps its rooms until empty, then exits.
    drain = await regio("node", "drain", "eu-a", "--etcd", etcd.urls)
    assert drain.returncode == 0, drain.stderr
    kv = await client.get(schema.node_key("eu-a"))
    assert kv is not None and NodeRecord.decode(kv.value).draining
    await a.wait_event("draining", 5)
    assert a.events[-1]["event"] != "exit"
    done = await a.wait_event("drained", 20)
    assert done["reason"] == "empty" and done["trigger"] == "etcd"
    await a.wait_event("exit", 5)
    assert await client.get(schema.node_key("eu-a")) is None

    # SIGTERM drain with a deadline: a room never empties, the deadline ends it.
    b.signal(signal.SIGTERM)
    await b.wait_event("draining", 5)
    with trio.fail_after(1.0):  # "at once": well within a second of the signal
        while True:
            kv = await client.get(schema.node_key("eu-b"))
            if kv is not None and NodeRecord.decode(kv.value).draining:
                break
            await trio.sleep(0.02)
    done = await b.wait_event("drained", 10)
    assert done == {"event": "drained", "reason": "deadline", "trigger": "sigterm",
                    "remaining": 1}
    with trio.fail_after(5):
        await b.process.wait()

    missing = await regio("node", "drain", "eu-a", "--etcd", etcd.urls)
    assert missing.returncode == 2 and b"not registered" in missing.stderr
    assert us.process.returncode is None


async def test_secrets_rotate_cli(etcd: LocalEtcd, client: EtcdClient) -> None:
    await regio("cluster", "init", "--etcd", etcd.urls, "--topology", str(TOPOLOGY))
    before = await read_keyset(client, "turn")
    assert before is not None
    token_before = await client.get(schema.secrets_key("token"))
    result = await regio("secrets", "rotate", "--etcd", etcd.urls, "--overlap", "120",
                         "--which", "turn")
    assert result.returncode == 0, result.stderr
    after = await read_keyset(client, "turn")
    assert after is not None
    assert after.current != before.current
    old = after.key(before.current)
    assert old is not None and old.expires_at is not None
    assert 100 < old.expires_at - after.current_key.created_at <= 121
    token_after = await client.get(schema.secrets_key("token"))
    assert token_before is not None and token_after is not None
    assert token_after.value == token_before.value
    both = await regio("secrets", "rotate", "--etcd", etcd.urls)
    assert both.returncode == 0 and b"turn:" in both.stdout and b"token:" in both.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
async def test_cluster_up_ready_then_stop_leaves_nothing(stop_signal: int) -> None:
    env = python_env()
    # Nodes of kinds whose subcommands do not exist yet are stood in for by the test node.
    # This test is about orchestration, so every node is the test node process.
    stand_in = json.dumps(
        [sys.executable, "-m", "tests.control.nodeproc", "--etcd", "{etcd}", "--node-id",
         "{node}", "--region", "{region}", "--ttl", "3"])
    env["REGIO_CLUSTER_UP_ROUTER"] = stand_in
    env["REGIO_CLUSTER_UP_TURN"] = stand_in
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "cluster", "up", "--topology", str(TOPOLOGY),
         "--json", "--drain-deadline", "3", "--kinds", "router,turn"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO),
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[dict[str, object]] = []
    buffer = b""
    try:
        with trio.fail_after(40):
            while not any(line.get("event") == "ready" for line in lines):
                chunk = await process.stdout.receive_some()
                assert chunk, "cluster up exited before ready"
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    lines.append(json.loads(raw))
        ready = next(line for line in lines if line["event"] == "ready")
        assert set(ready) == {"event", "frontdoor", "etcd", "secrets_key", "meeting", "nodes"}
        nodes = ready["nodes"]
        assert isinstance(nodes, list)
        assert sorted((n["kind"], n["region"]) for n in nodes) == [
            (kind, region) for kind in ("router", "turn")
            for region in ("eu-central", "eu-north", "us-east")]
        assert ready["frontdoor"] is None
        assert [line["kind"] for line in lines if line["event"] == "skipped"] == ["frontdoor"]
        etcd_url = ready["etcd"]
        assert isinstance(etcd_url, str)
        client = EtcdClient(EtcdConfig.from_urls(etcd_url, timeout=2.0))
        try:
            _, kvs = await client.get_prefix(schema.NODES_PREFIX)
            assert len(kvs) == 6
            assert await client.get(schema.TOPOLOGY_KEY) is not None
            status = await client.status()
        finally:
            client.close()
        pids = [int(n["pid"]) for n in nodes] + [process.pid]
        etcd_pids = _pids_listening(etcd_url)
        assert etcd_pids, "etcd process must be found by its port"
        data_dir = _data_dir(etcd_pids[0])
        process.send_signal(stop_signal)
        with trio.fail_after(20):
            rc = await process.wait()
        if stop_signal != signal.SIGKILL:
            assert rc == 0
            rest = (await process.stdout.receive_some()).decode() if process.stdout else ""
            assert '"stopped"' in (buffer.decode() + rest)
        assert status
        # Even when `cluster up` itself is killed outright, the kernel takes its children.
        gone_by = trio.current_time() + 5
        while any(_alive(p) for p in pids + etcd_pids) and trio.current_time() < gone_by:
            await trio.sleep(0.05)
        for pid in pids + etcd_pids:
            assert not _alive(pid), f"pid {pid} left behind"
        if stop_signal == signal.SIGKILL:
            shutil.rmtree(data_dir, ignore_errors=True)  # nobody was left to remove it
        else:
            assert not data_dir.exists(), "a clean stop removes etcd's data"
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def _data_dir(pid: int) -> Path:
    """The temporary directory `cluster up` made for etcd (parent of its --data-dir)."""
    for arg in (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0"):
        if arg.startswith(b"--data-dir="):
            return Path(arg.split(b"=", 1)[1].decode()).parent
    raise AssertionError("etcd without --data-dir")


def _pids_listening(url: str) -> list[int]:
    """Pids of processes whose command line names ``url`` (etcd's --listen-client-urls)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--listen-client-urls={url}".encode() in cmdline:
            found.append(int(entry.name))
    return found
