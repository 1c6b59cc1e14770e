"""Real-etcd fixtures for the control-plane tests: no mocked etcd anywhere.

Every test gets its own etcd process(es) on free loopback ports and a temporary data
directory, so tests stay independent and can run beside anything else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from control.etcd import EtcdClient
from control.localetcd import LocalEtcd

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs real etcd processes: mark them so CI can select them."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.etcd)


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[LocalEtcd]:
    cluster = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def etcd3(tmp_path: Path) -> AsyncIterator[LocalEtcd]:
    cluster = LocalEtcd(3, base_dir=tmp_path / "etcd3")
    await cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def client(etcd: LocalEtcd) -> AsyncIterator[EtcdClient]:
    c = EtcdClient(etcd.config(timeout=1.0))
    try:
        yield c
    finally:
        c.close()


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeProc:
    """A ``tests.control.nodeproc`` subprocess and the JSON events it printed."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()

    @property
    def pid(self) -> int:
        return self.process.pid

    async def pump(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
                self._changed.set()
                self._changed = trio.Event()
        self._changed.set()

    async def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                for event in self.events:
                    if event["event"] == name:
                        return event
                if self.process.returncode is not None and self._drained():
                    raise AssertionError(f"node exited without {name!r}: {self.events}")
                await self._changed.wait()

    def _drained(self) -> bool:
        return self.process.stdout is None or self._changed.is_set()

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e["event"] == name)

    def signal(self, sig: int) -> None:
        if self.process.returncode is None:
            os.killpg(self.process.pid, sig)


SpawnNode = Callable[..., Awaitable[NodeProc]]


@pytest.fixture
async def spawn_node(nursery: trio.Nursery) -> AsyncIterator[SpawnNode]:
    procs: list[NodeProc] = []

    async def spawn(etcd_urls: str, node_id: str, *extra: str, wait: bool = True) -> NodeProc:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.control.nodeproc", "--etcd", etcd_urls,
             "--node-id", node_id, *extra],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=python_env(),
            cwd=str(REPO),
            start_new_session=True,
        )
        node = NodeProc(process)
        procs.append(node)
        nursery.start_soon(node.pump)
        if wait:
            await node.wait_event("registered")
        return node

    try:
        yield spawn
    finally:
        for node in procs:
            if node.process.returncode is None:
                node.signal(signal.SIGKILL)
                await node.process.wait()


async def wait_one_ttl(client: EtcdClient, ttl: int, timeout: float = 30.0) -> None:
    """Wait until a lease of ``ttl`` seconds, granted now and never renewed, has expired.

    The positive point before a check that nothing expired: by then etcd has expired every
    lease of at most that TTL that nobody renewed since this call, measured by etcd's own lease
    clock (a loaded machine delays both alike). The marker lives outside the cluster prefix,
    so no view sees it."""
    lease = await client.grant(ttl)
    key = f"/regio-test/ttl-marker/{lease:x}"
    await client.put(key, b"", lease)
    with trio.fail_after(timeout):
        while await client.get(key) is not None:
            await trio.sleep(0.1)
