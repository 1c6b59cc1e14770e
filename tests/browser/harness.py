"""The browser tests' world: a loopback-only network namespace, a whole local cluster started by
``regio cluster up``, and Chromium from Debian driven by playwright.

Network namespace: when we are root and ``ip netns`` works, :func:`enter_netns` creates a
namespace with only ``lo`` up and moves *this thread* into it with ``setns(2)``. Everything
the test process starts afterwards (the cluster, playwright's driver, Chromium) and every socket
it opens lives there, so the suite provably uses nothing but loopback. When namespaces are not
available (not root, no ``ip``, a container without CAP_SYS_ADMIN), the detection says why and
the tests run on the host's loopback instead. :func:`leave_netns` switches back and deletes it.

Cluster: one ``regio cluster up --json`` per test module, its ``TMPDIR`` pointed into the test's
own directory so the cluster's etcd data and logs are somewhere the chat test can grep. TURN
nodes get a metrics listener (port + 1) and ``--allow-peer 127.0.0.0/8`` through
``$REGIO_CLUSTER_UP_TURN``: peers on loopback are relay candidates of the other participant.
Everything is stopped by process group, never by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control.localetcd import die_with_parent

CLONE_NEWNET = 0x40000000
REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "infra" / "local" / "topology.toml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
EEA_REGIONS = frozenset({"eu-central", "eu-north"})


# -- network namespace ------------------------------------------------------------------------


@dataclass(slots=True)
class Netns:
    """Where the tests run: ``name`` is the namespace, or None with ``reason`` for the host."""

    name: str | None
    reason: str
    _host_fd: int | None = None

    @property
    def active(self) -> bool:
        return self.name is not None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def enter_netns(prefix: str = "regio-browser") -> Netns:
    """Create a loopback-only namespace and move this thread into it, or say why not."""
    if os.environ.get("REGIO_BROWSER_NETNS", "1") == "0":
        return Netns(None, "disabled by REGIO_BROWSER_NETNS=0")
    if sys.platform != "linux":
        return Netns(None, "not Linux")
    if os.geteuid() != 0:
        return Netns(None, "not root")
    if shutil.which("ip") is None:
        return Netns(None, "no `ip` command (iproute2)")
    name = f"{prefix}-{os.getpid()}"
    added = _ip("netns", "add", name)
    if added.returncode != 0:
        return Netns(None, f"`ip netns add` failed: {added.stderr.strip()}")
    host_fd: int | None = None
    try:
        up = _ip("-n", name, "link", "set", "lo", "up")
        if up.returncode != 0:
            raise OSError(f"cannot bring lo up: {up.stderr.strip()}")
        host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        ns_fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(ns_fd)
        finally:
            os.close(ns_fd)
        interfaces = sorted(n for _, n in socket.if_nameindex())
        if interfaces != ["lo"]:
            raise OSError(f"namespace has interfaces {interfaces}, expected only lo")
        with socket.create_server(("127.0.0.1", 0)) as probe:
            probe.getsockname()
    except OSError as exc:
        if host_fd is not None:
            with contextlib.suppress(OSError):
                _setns(host_fd)
            os.close(host_fd)
        _ip("netns", "del", name)
        return Netns(None, f"namespace unusable: {exc}")
    return Netns(name, "loopback-only network namespace", host_fd)


def leave_netns(ns: Netns) -> None:
    """Back to the host namespace; the namespace is deleted (its processes must be gone).

    Fails if another thread of this process is still inside it: setns(2) moves only the calling
    thread, and a leftover thread (a cached Trio worker, say) would start later tests'
    subprocesses in a deleted namespace where nothing they look for is listening.
    """
    if ns.name is None or ns._host_fd is None:
        return
    inside = os.readlink("/proc/thread-self/ns/net")
    _setns(ns._host_fd)
    os.close(ns._host_fd)
    ns._host_fd = None
    _ip("netns", "del", ns.name)
    stuck = [tid for tid in os.listdir(f"/proc/{os.getpid()}/task")
             if _thread_netns(tid) == inside]
    if stuck:
        raise RuntimeError(f"threads {stuck} are still in the test network namespace")


def _thread_netns(tid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{os.getpid()}/task/{tid}/ns/net")
    except OSError:
        return None


# -- processes --------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _option(argv: list[str], name: str) -> str | None:
    for i, part in enumerate(argv[:-1]):
        if part == name:
            return argv[i + 1]
    return None


# -- the cluster ------------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    node: str
    kind: str
    region: str
    pid: int
    argv: list[str]

    @property
    def port(self) -> int:
        """The base port ``regio cluster up`` gave the node (TURN: its UDP listener)."""
        if self.kind == "turn":
            listen = _option(self.argv, "--listen") or ":0"
            return int(listen.rsplit(":", 1)[1])
        return int(_option(self.argv, "--port") or 0)

    @property
    def metrics_url(self) -> str:
        port = self.port + (1 if self.kind == "turn" else 2)
        return f"http://127.0.0.1:{port}/metrics"


@dataclass(slots=True)
class Cluster:
    """A running ``regio cluster up`` and what the tests need to know about it."""

    process: subprocess.Popen[str]
    frontdoor: str
    etcd: str
    nodes: dict[str, Node]
    tmpdir: Path
    output: list[str] = field(default_factory=list)
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def routers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "router"]

    def turns(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "turn"]

    def room_url(self, room: str, **query: str) -> str:
        from urllib.parse import urlencode

        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.frontdoor}/r/{room}{suffix}"

    def turn_relayed_packets(self) -> dict[str, float]:
        """``regio_turn_relayed_packets`` summed over directions, per TURN node."""
        out: dict[str, float] = {}
        for node in self.turns():
            with urllib.request.urlopen(node.metrics_url, timeout=5) as response:
                text = response.read().decode()
            out[node.node] = sum(
                float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("regio_turn_relayed_packets")
                and not line.startswith("regio_turn_relayed_packets_created")
            )
        return out

    def etcd_dump(self) -> str:
        """Every key and value in etcd, as text."""
        result = subprocess.run(
            ["etcdctl", f"--endpoints={self.etcd}", "get", "", "--prefix"],
            capture_output=True, text=True, timeout=15, check=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return result.stdout

    def etcd_barrier(self) -> None:
        """Write and read back a key: once etcd committed it (WAL synced), every write it
        accepted before is on disk too."""
        env = {**os.environ, "ETCDCTL_API": "3"}
        key = f"/regio-test/barrier/{time.monotonic_ns()}"
        for args in (["put", key, "1"], ["get", key], ["del", key]):
            subprocess.run(["etcdctl", f"--endpoints={self.etcd}", *args], capture_output=True,
                           text=True, timeout=15, check=True, env=env)

    def kill_node(self, node_id: str) -> Node:
        """SIGKILL a node's process group (a crash, as far as everyone else can tell)."""
        node = self.nodes[node_id]
        _killpg(node.pid, signal.SIGKILL)
        if not wait_gone(node.pid, 10):
            raise RuntimeError(f"{node_id} (pid {node.pid}) did not die")
        return node

    def restart_node(self, node_id: str) -> Node:
        """Start a replacement of a dead node with the same command line (same id, same ports),
        as a supervisor (systemd, Kubernetes) would."""
        node = self.nodes[node_id]
        if _alive(node.pid):
            raise RuntimeError(f"{node_id} is still running")
        log = self.tmpdir / f"{node_id}.replacement.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                die_with_parent(node.argv), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                env=_cluster_env(self.tmpdir),
            )
        self.extra.append(process)
        replacement = Node(node.node, node.kind, node.region, process.pid, list(node.argv))
        self.nodes[node_id] = replacement
        return replacement

    def stop(self) -> None:
        """SIGTERM ``cluster up`` (it drains and stops its nodes), then make sure by pid."""
        for p in self.extra:
            _killpg(p.pid, signal.SIGTERM)
        _killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for p in self.extra:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        for node in self.nodes.values():
            if _alive(node.pid) and _cmdline(node.pid) == node.argv:
                _killpg(node.pid, signal.SIGKILL)
                wait_gone(node.pid, 5)


def _turn_command() -> list[str]:
    # The metrics port is the node's port + 1 (inside its block of ten); str.format fills
    # {host}/{port}, the shell does the arithmetic.
    python = sys.executable
    script = (
        f"exec {python} -m control turn --etcd {{etcd}} --secrets-key {{secrets_key}} "
        "--listen {host}:{port} "
        "--node-id {node} --region {region} --metrics {host}:$(({port}+1)) "
        "--allow-peer 127.0.0.0/8"
    )
    return ["sh", "-c", script]


def _cluster_env(tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIO_CLUSTER_UP_")}
    env["TMPDIR"] = str(tmpdir)
    env["REGIO_CLUSTER_UP_TURN"] = json.dumps(_turn_command())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_cluster(tmpdir: Path, *, trusted_proxy: str = "127.0.0.1/32",
                  timeout: float = 90.0) -> Cluster:
    """``regio cluster up --json`` with the local topology; returns once it printed ready."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "control", "cluster", "up", "--topology", str(TOPOLOGY),
           "--json", "--drain-deadline", "3", "--trusted-proxy", trusted_proxy]
    stderr = open(tmpdir / "cluster-up.stderr", "ab")  # noqa: SIM115  (closed by the child)
    process = subprocess.Popen(
        die_with_parent(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
        text=True, start_new_session=True, cwd=REPO, env=_cluster_env(tmpdir),
    )
    stderr.close()
    assert process.stdout is not None
    output: list[str] = []
    ready: dict[str, Any] | None = None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while ready is None:
            left = deadline - time.monotonic()
            if left <= 0 or process.poll() is not None:
                raise RuntimeError(f"cluster up did not get ready: {output}")
            if not selector.select(min(left, 1.0)):
                continue
            line = process.stdout.readline()
            if not line:
                continue
            output.append(line.rstrip())
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "ready":
                    ready = event
                elif event.get("event") == "error":
                    raise RuntimeError(f"cluster up failed: {event}")
    except BaseException:
        _killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        _killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        selector.close()

    def drain_output() -> None:  # keep reading so the pipe never fills
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())

    threading.Thread(target=drain_output, daemon=True).start()
    nodes = {
        n["node"]: Node(n["node"], n["kind"], n["region"], n["pid"], _node_argv(n["pid"]))
        for n in ready["nodes"]
    }
    return Cluster(process, ready["frontdoor"], ready["etcd"], nodes, tmpdir, output)


def _node_argv(pid: int) -> list[str]:
    argv = _cmdline(pid)
    if not argv:
        raise RuntimeError(f"node pid {pid} is gone already")
    return argv


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "EEA_REGIONS",
    "Cluster",
    "Netns",
    "Node",
    "enter_netns",
    "leave_netns",
    "start_cluster",
]
