"""The systemd notification client against real unix datagram sockets, then real node
processes (``regio router``, ``regio turn``, ``regio frontdoor``) started the way systemd starts a
``Type=notify`` unit: ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` in the environment."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from control import schema
from control.bootstrap import init_cluster
from control.drain import request_drain
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.sdnotify import SystemdNotifier, run_watchdog, socket_address, watchdog_interval
from control.topology import load_topology

REPO = Path(__file__).resolve().parents[2]


class NotifySocket:
    """A bound ``AF_UNIX`` datagram socket playing systemd's side."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(name))

    def messages(self) -> list[dict[str, str]]:
        """Every datagram waiting now, parsed into its assignments."""
        self.sock.setblocking(False)
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    async def next(self, timeout: float = 60.0) -> dict[str, str]:
        with trio.fail_after(timeout):
            tsock = trio.socket.from_stdlib_socket(self.sock)
            data = await tsock.recv(4096)
        return dict(line.split("=", 1) for line in data.decode().split("\n"))

    async def wait_for(self, key: str, timeout: float = 60.0) -> list[dict[str, str]]:
        """Messages up to and including the first carrying ``key``."""
        seen = []
        with trio.fail_after(timeout):
            while True:
                seen.append(await self.next())
                if key in seen[-1]:
                    return seen


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    yield ns
    ns.sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    ns = NotifySocket(f"@regio-test-notify-{secrets.token_hex(6)}")
    yield ns
    ns.sock.close()


def test_addresses_and_intervals() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@x/y") == b"\0x/y"
    for bad in ("", "@", "relative/path", "vsock:2:1234"):
        with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
            socket_address(bad)
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}, 7) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "7"}, 7) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({}, 7) is None
    off = SystemdNotifier.from_environment({})
    assert not off.enabled and not off.ready() and off.sent == 0
    bad = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1"})
    assert not bad.enabled


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_datagrams_reach_the_socket(which: str, request: pytest.FixtureRequest) -> None:
    ns: NotifySocket = request.getfixturevalue(which)
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": ns.name,
                                                 "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_interval == 2.0
    assert notifier.ready("serving\nin eu")
    assert notifier.watchdog()
    assert notifier.stopping("draining: 3 left")
    assert ns.messages() == [
        {"READY": "1", "STATUS": "serving in eu"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "draining: 3 left"},
    ]
    notifier.close()


def test_a_vanished_socket_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    assert not notifier.ready() and not notifier.watchdog()
    assert notifier.failures == 2 and notifier.sent == 0


async def test_watchdog_pings_only_while_healthy(abstract_socket: NotifySocket) -> None:
    """Virtual time (the pings come from trio.sleep), real datagrams."""
    notifier = SystemdNotifier(socket_address(abstract_socket.name), interval=1.0)
    health = {"ok": True}
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_watchdog, notifier, lambda: health["ok"])
            await trio.sleep(4.5)
            assert abstract_socket.messages() == [{"WATCHDOG": "1"}] * 5
            health["ok"] = False
            await trio.sleep(10)
            assert abstract_socket.messages() == [
                {"STATUS": "unhealthy: watchdog pings withheld"}]
            health["ok"] = True
            await trio.sleep(2.2)  # pings at 15 and 16
            assert abstract_socket.messages() == [{"WATCHDOG": "1"}] * 2
            nursery.cancel_scope.cancel()

    # A nested run: the outer test's clock is real, the watchdog's is virtual.
    await trio.to_thread.run_sync(lambda: trio.run(scenario, clock=clock))


def _env(ns: NotifySocket, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(NOTIFY_SOCKET=ns.name, WATCHDOG_USEC="200000", **extra)
    return env


async def _lifecycle(ns: NotifySocket, args: list[str], env: dict[str, str],
                     stop: Callable[[trio.Process], Awaitable[None]] | None = None) -> None:
    """READY once serving, WATCHDOG pings from its loop, STOPPING when told to stop (SIGTERM
    unless ``stop`` does something else), then exit 0."""
    with tempfile.TemporaryFile() as errors:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "control", *args], env=env,
            stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        try:
            ready = (await ns.wait_for("READY"))[-1]
            assert ready["STATUS"]
            pings = 0
            while pings < 3:
                message = await ns.next()
                assert set(message) == {"WATCHDOG"}
                pings += 1
            if stop is None:
                process.send_signal(signal.SIGTERM)
            else:
                await stop(process)
            stopping = (await ns.wait_for("STOPPING"))[-1]
            assert stopping["STOPPING"] == "1"
            with trio.fail_after(60):
                code = await process.wait()
            errors.seek(0)
            assert code == 0, errors.read().decode(errors="replace")[-2000:]
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def test_router_process_speaks_sd_notify(abstract_socket: NotifySocket) -> None:
    await _lifecycle(abstract_socket, [
        "router", "--workers", "1",
        "--region", "eu-central", "--token-key", "k1:c2VjcmV0c2VjcmV0c2VjcmV0",
        "--listen", "127.0.0.1", "--udp-port", "0", "--signaling", "127.0.0.1:0",
        "--drain-deadline", "5"], _env(abstract_socket))


async def test_router_node_with_workers_speaks_sd_notify(abstract_socket: NotifySocket) -> None:
    """``regio router`` defaults to one worker per core, so under systemd the supervisor is the
    unit's main process: it says READY once every worker is, pings the watchdog, says STOPPING
    on SIGTERM; the workers say nothing (any of theirs would break the sequence checked)."""
    await _lifecycle(abstract_socket, [
        "router", "--workers", "2",
        "--region", "eu-central", "--token-key", "k1:c2VjcmV0c2VjcmV0c2VjcmV0",
        "--listen", "127.0.0.1", "--udp-port", "0", "--signaling", "127.0.0.1:0",
        "--drain-deadline", "5"], _env(abstract_socket))


async def test_turn_process_speaks_sd_notify(path_socket: NotifySocket) -> None:
    await _lifecycle(path_socket, [
        "turn", "--region", "eu-central", "--auth-secret", "s3cret",
        "--listen", "127.0.0.1:0", "--drain-deadline", "5"], _env(path_socket))


async def test_frontdoor_process_speaks_sd_notify(tmp_path: Path,
                                                  path_socket: NotifySocket) -> None:
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    try:
        await _lifecycle(path_socket, [
            "frontdoor", "--etcd", etcd.urls, "--listen", "127.0.0.1:0",
            "--no-topology-from-etcd", "--topology", str(REPO / "infra/local/topology.toml")],
            _env(path_socket))
    finally:
        etcd.stop()


async def test_clustered_router_notifies_ready_after_registering_and_stopping_on_etcd_drain(
        tmp_path: Path, abstract_socket: NotifySocket) -> None:
    """The path the systemd unit runs: READY only once registered; a drain asked through etcd
    (``regio node drain``) is announced as STOPPING like SIGTERM's."""
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    await etcd.start()
    client = EtcdClient(etcd.config(timeout=2.0))
    try:
        await init_cluster(client, load_topology(REPO / "infra/local/topology.toml"))

        async def registered_when_ready(process: trio.Process) -> None:
            # READY came first: by now the node must be in etcd.
            assert await client.get(schema.node_key("router-sd-1")) is not None
            record = await request_drain(client, "router-sd-1")
            assert record.kind == "router"

        await _lifecycle(abstract_socket, [
            "router", "--workers", "1",
            "--region", "eu-central", "--etcd", etcd.urls, "--node-id", "router-sd-1",
            "--listen", "127.0.0.1", "--udp-port", "0", "--signaling", "127.0.0.1:0"],
            _env(abstract_socket), stop=registered_when_ready)
    finally:
        client.close()
        etcd.stop()
