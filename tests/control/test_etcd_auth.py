"""etcd with authentication enabled (issue 15 #9): a real etcd, users and roles made with
``etcdctl``, and the client, the CLI and a real node authenticating with user and password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from control import schema
from control.etcd import EtcdClient, EtcdError
from control.localetcd import LocalEtcd, free_ports
from control.secrets import ensure_secrets, read_keyset
from control.view import open_view

from .conftest import REPO, python_env

ROOT_PASSWORD = "root-pw-for-tests"
USER, PASSWORD = "regio", "regio-pw-for-tests"
TOPOLOGY = REPO / "infra" / "local" / "topology.toml"


def _etcdctl(etcd: LocalEtcd, *args: str, user: str | None = None) -> None:
    cmd = ["etcdctl", "--endpoints", etcd.urls, *args]
    if user is not None:
        cmd[1:1] = ["--user", user]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "ETCDCTL_API": "3"})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
async def auth_etcd(etcd: LocalEtcd) -> LocalEtcd:
    """Auth enabled; user ``regio`` may read and write ``/regio/`` only."""
    _etcdctl(etcd, "user", "add", f"root:{ROOT_PASSWORD}")
    _etcdctl(etcd, "user", "grant-role", "root", "root")
    _etcdctl(etcd, "role", "add", "regio")
    _etcdctl(etcd, "role", "grant-permission", "regio", "--prefix=true", "readwrite", "/regio/")
    _etcdctl(etcd, "user", "add", f"{USER}:{PASSWORD}")
    _etcdctl(etcd, "user", "grant-role", USER, "regio")
    _etcdctl(etcd, "auth", "enable")
    return etcd


async def test_user_and_password_reach_an_auth_enabled_etcd(
        auth_etcd: LocalEtcd, nursery: trio.Nursery) -> None:
    async with EtcdClient(auth_etcd.config(user=USER, password=PASSWORD)) as client:
        stored = await ensure_secrets(client)
        assert await read_keyset(client, "turn") == stored["turn"]
        lease = await client.grant(5)
        await client.put(schema.node_key("auth-node"), b"{}", lease=lease)
        view = await open_view(client, nursery)  # a watch through the token as well
        assert view.keyset("token") == stored["token"]
        # Outside the role's prefix: refused by etcd, as a precise error.
        with pytest.raises(EtcdError, match="permission denied"):
            await client.put("/elsewhere", b"x")
    async with EtcdClient(auth_etcd.config()) as anonymous:
        with pytest.raises(EtcdError, match=r"user name is empty|permission denied"):
            await anonymous.get(schema.TOPOLOGY_KEY)
    async with EtcdClient(auth_etcd.config(user=USER, password="wrong")) as wrong:
        with pytest.raises(EtcdError, match="authentication failed"):
            await wrong.get(schema.TOPOLOGY_KEY)


async def test_cli_and_turn_node_with_etcd_auth(auth_etcd: LocalEtcd, tmp_path: Path) -> None:
    password_file = tmp_path / "etcd-password"
    password_file.write_text(PASSWORD + "\n")
    auth = ["--etcd", auth_etcd.urls, "--etcd-user", USER,
            "--etcd-password-file", str(password_file), "--etcd-timeout", "15"]

    async def regio(*argv: str) -> subprocess.CompletedProcess[bytes]:
        with trio.fail_after(60):
            return await trio.run_process([sys.executable, "-m", "control", *argv],
                                          capture_stdout=True, capture_stderr=True,
                                          check=False, env=python_env(), cwd=str(REPO))

    init = await regio("cluster", "init", *auth, "--topology", str(TOPOLOGY))
    assert init.returncode == 0, init.stderr
    refused = await regio("cluster", "status", "--etcd", auth_etcd.urls, "--etcd-timeout", "15")
    assert refused.returncode == 2 and b"Traceback" not in refused.stderr
    assert len(refused.stderr.decode().strip().splitlines()) == 1, refused.stderr

    port, relay = free_ports(2)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "turn", *auth, "--region", "eu-central",
         "--node-id", "auth-turn", "--listen", f"127.0.0.1:{port}",
         "--relay-ports", f"{relay}-{relay}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=python_env(), cwd=str(REPO))
    try:
        assert process.stdout is not None
        with trio.fail_after(60):
            line = b""
            while b"\n" not in line:
                chunk = await process.stdout.receive_some()
                assert chunk, "regio turn exited before its ready line"
                line += chunk
        assert line.startswith(b"regio turn ready"), line
        async with EtcdClient(auth_etcd.config(user=USER, password=PASSWORD)) as client:
            assert await client.get(schema.node_key("auth-turn")) is not None
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                assert await process.wait() == 0
            assert await client.get(schema.node_key("auth-turn")) is None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
