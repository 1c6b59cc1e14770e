"""Every node process stops cleanly on SIGTERM/SIGINT, also when the signal is repeated.

Real processes (``regio turn``, ``regio router``, ``regio frontdoor``; clustered ones against a
real etcd): the first SIGTERM drains, a second SIGTERM or a SIGINT stops at once. A clean stop
is exit status 0, no traceback on stderr, and (clustered) the node's record gone from etcd at
once rather than when its lease expires.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.frontdoor_cluster import LocalFrontdoorCluster, Proc, spawn
from control import schema
from control.etcd import EtcdClient
from control.localetcd import free_ports

from .conftest import REPO, python_env

TERM, INT = signal.SIGTERM, signal.SIGINT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFrontdoorCluster]:
    local = LocalFrontdoorCluster(Path(tmp_path_factory.mktemp("shutdown")))
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _signal_and_wait(proc: Proc, signals: tuple[int, ...], timeout: float = 30.0) -> str:
    """Send ``signals`` back to back to the process (not its group: the node itself must
    cope), wait for it to exit, and return its stderr log."""
    try:
        for signum in signals:
            os.kill(proc.popen.pid, signum)
        proc.popen.wait(timeout)
    finally:
        proc.stop(signal.SIGKILL)
    return proc.log_path.read_text(errors="replace")


def _assert_clean(proc: Proc, log: str) -> None:
    assert proc.popen.returncode == 0, f"exit {proc.popen.returncode}: {log[-3000:]}"
    assert "Traceback" not in log and "RuntimeError" not in log, log[-3000:]


def _standalone_turn(tmp: Path) -> Proc:
    port, relay = free_ports(2)
    proc = spawn("turn", [sys.executable, "-m", "control", "turn", "--region", "eu-central",
                          "--auth-secret", "s3cret", "--listen", f"127.0.0.1:{port}",
                          "--relay-ports", f"{relay}-{relay}"], tmp)
    proc.wait_line("regio turn ready")
    return proc


@pytest.mark.parametrize("signals", [(TERM,), (TERM, TERM, TERM), (INT,), (TERM, INT)],
                         ids=["term", "term-x3", "int", "term-int"])
def test_standalone_turn_idle_stops_cleanly(tmp_path: Path, signals: tuple[int, ...]) -> None:
    proc = _standalone_turn(tmp_path)
    _assert_clean(proc, _signal_and_wait(proc, signals))


@pytest.mark.parametrize("signals", [(TERM,), (TERM, TERM, INT)], ids=["term", "repeated"])
def test_standalone_router_stops_cleanly(tmp_path: Path, signals: tuple[int, ...]) -> None:
    port = free_ports(1)[0]
    proc = spawn("router", [sys.executable, "-m", "control", "router", "--workers", "1",
                            "--region", "eu-central",
                            "--token-key", "k1:secret", "--listen", "127.0.0.1",
                            "--udp-port", "0", "--signaling", f"127.0.0.1:{port}"], tmp_path)
    proc.wait_line('{"event": "ready"', timeout=60)
    _assert_clean(proc, _signal_and_wait(proc, signals))


def _registered(cluster: LocalFrontdoorCluster, node_id: str) -> bool:
    async def read(client: EtcdClient) -> bool:
        return await client.get(schema.node_key(node_id)) is not None
    result: bool = cluster.run(read)
    return result


def test_clustered_turn_repeated_sigterm_deregisters(cluster: LocalFrontdoorCluster) -> None:
    proc, _ = cluster.add_turn("eu-central", node_id="shutdown-turn", lease_ttl=30)
    proc.wait_line("regio turn ready", timeout=60)
    assert _registered(cluster, "shutdown-turn")
    _assert_clean(proc, _signal_and_wait(proc, (TERM, TERM, TERM)))
    assert not _registered(cluster, "shutdown-turn")


def test_clustered_router_repeated_sigterm_deregisters(cluster: LocalFrontdoorCluster) -> None:
    # A drain deadline far beyond the test's timeout: only the second SIGTERM can end it.
    router = cluster.add_router("eu-central", node_id="shutdown-router", lease_ttl=30,
                                drain_deadline=600)
    assert _registered(cluster, "shutdown-router")
    _assert_clean(router.proc, _signal_and_wait(router.proc, (TERM, TERM)))
    assert not _registered(cluster, "shutdown-router")


@pytest.mark.parametrize("signals", [(TERM, TERM), (INT, TERM, INT)], ids=["term", "mixed"])
def test_frontdoor_stops_cleanly(cluster: LocalFrontdoorCluster,
                                 signals: tuple[int, ...]) -> None:
    proc, _ = cluster.add_frontdoor("frontdoor-shutdown")
    _assert_clean(proc, _signal_and_wait(proc, signals))


@pytest.mark.parametrize("kind", ["turn", "router"])
def test_port_in_use_is_one_clear_line(tmp_path: Path, kind: str) -> None:
    """The router and TURN commands share their runner: a taken port is one line, exit 2."""
    import socket as socket_module

    taken = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        if kind == "turn":
            argv = ["turn", "--region", "eu-central", "--auth-secret", "s",
                    "--listen", f"127.0.0.1:{port}", "--relay-ports", "50000-50010"]
        else:
            argv = ["router", "--workers", "1",
                    "--region", "eu-central", "--token-key", "k1:secret",
                    "--listen", "127.0.0.1", "--udp-port", str(port)]
        done = subprocess.run([sys.executable, "-m", "control", *argv], capture_output=True,
                              text=True, timeout=60, env=python_env(), cwd=str(REPO))
    finally:
        taken.close()
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"regio {kind}: error: cannot listen"), done.stderr
    assert "Traceback" not in done.stderr
