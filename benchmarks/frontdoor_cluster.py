"""A local front-door cluster in subprocesses: etcd, nodes and ``regio frontdoor``.

Shared by ``regio bench frontdoor`` and the front door's integration tests. Nodes are either
real processes (``regio router`` via :meth:`LocalFrontdoorCluster.add_router`, ``regio turn``
via :meth:`LocalFrontdoorCluster.add_turn`) or bare registry records kept alive by
:mod:`benchmarks.frontdoor_nodes` (:meth:`LocalFrontdoorCluster.add_nodes`; the benchmark
measures the front door, not the nodes, so records are enough there). Everything is a
subprocess started in its own session and stopped by pid (never by name), so nothing leaks
when a test or a benchmark fails halfway. Synchronous on purpose: it is driven from pytest
fixtures and from a benchmark's main, neither of which owns a Trio loop for the cluster's life.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from control.bootstrap import init_cluster
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd, free_ports
from control.secretbox import ENV_VAR as SECRETS_ENV
from control.secretbox import write_key_file
from control.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY_FILE = REPO / "infra" / "local" / "topology.toml"


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(slots=True)
class Proc:
    """A started subprocess, its log file and the lines it printed on stdout."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    lines: list[str] = field(default_factory=list)

    def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        """The first stdout line starting with ``prefix`` (raises if the process dies)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.popen.stdout.fileno()
        for line in self.lines:
            if line.startswith(prefix):
                return line
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    if line.startswith(prefix):
                        return line
            elif self.popen.poll() is not None:
                break
        raise RuntimeError(f"{self.name} gave no {prefix!r} line (exit {self.popen.poll()}); "
                           f"log {self.log_path}: {self.log_tail()}")

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Signal the process group, then SIGKILL it after ``grace`` seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def spawn(name: str, argv: list[str], logdir: Path, *, cpu: int | None = None,
          env: dict[str, str] | None = None) -> Proc:
    logdir.mkdir(parents=True, exist_ok=True)
    log_path = logdir / f"{name}.log"
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        argv = ["taskset", "-c", str(cpu), *argv]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                 stdin=subprocess.DEVNULL, env={**python_env(), **(env or {})},
                                 cwd=str(REPO),
                                 start_new_session=True)
    return Proc(name, popen, log_path)


def free_port_block(count: int = 3, attempts: int = 50) -> int:
    """A port P with UDP P and TCP P+1 .. P+count-1 free a moment ago on 127.0.0.1 (the
    ``--host/--port`` block of ``regio router``: media UDP, signaling, metrics)."""
    for _ in range(attempts):
        first = free_ports(1)[0]
        if first + count - 1 > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(udp)
            udp.bind(("127.0.0.1", first))
            for port in range(first + 1, first + count):
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(tcp)
                tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return first
    raise RuntimeError(f"no block of {count} free ports found")


@dataclass(slots=True)
class RouterProc:
    """A running ``regio router``: its process and what its ready line announced."""

    proc: Proc
    node_id: str
    region: str
    port: int
    signaling_url: str
    metrics_url: str
    udp: str


def node_spec(node_id: str, kind: str, region: str, jurisdiction: str,
              addresses: list[tuple[str, str, int]], capacity: int = 1000) -> str:
    return json.dumps({"node_id": node_id, "kind": kind, "region": region,
                       "jurisdiction": jurisdiction, "addresses": addresses,
                       "capacity": capacity})


def record_nodes(topology: Topology, regions: list[str], *, routers: int = 1, turns: int = 1,
                 metrics: bool = True) -> list[str]:
    """Node specs for ``regions``: routers with a wss (and metrics) address, TURN nodes with
    udp, tcp and tls listeners. Ports are placeholders: nobody connects to them."""
    specs: list[str] = []
    port = 20000
    for region in regions:
        jurisdiction = topology.regions[region].jurisdiction
        for i in range(routers):
            port += 10
            addresses = [("wss", "127.0.0.1", port)]
            if metrics:
                addresses.append(("metrics", "127.0.0.1", port + 1))
            specs.append(node_spec(f"{region}-router-{i + 1}", "router", region, jurisdiction,
                                   addresses))
        for i in range(turns):
            port += 10
            specs.append(node_spec(f"{region}-turn-{i + 1}", "turn", region, jurisdiction,
                                   [("udp", "127.0.0.1", port), ("tcp", "127.0.0.1", port),
                                    ("tls", "127.0.0.1", port + 1)]))
    return specs


class LocalFrontdoorCluster:
    """etcd, topology and secrets; then nodes, TURN processes and front doors on demand."""

    def __init__(self, base_dir: Path, topology: Topology | None = None) -> None:
        self.base_dir = base_dir
        self.topology = topology or load_topology(TOPOLOGY_FILE)
        self.etcd = LocalEtcd(1, base_dir=base_dir / "etcd")
        self.procs: list[Proc] = []
        self.logdir = base_dir / "logs"
        # Secrets are sealed in etcd (docs/architecture.md): the cluster's key file, the
        # caller's if it set one, else a new one of this cluster's own.
        self.secrets_key = os.environ.get(SECRETS_ENV) or str(
            write_key_file(base_dir / "secrets.key"))
        self.env = {SECRETS_ENV: self.secrets_key}

    def start(self) -> None:
        trio.run(self._start)

    async def _start(self) -> None:
        await self.etcd.start()
        async with EtcdClient(self.etcd.config(secrets_key=self.secrets_key)) as client:
            await init_cluster(client, self.topology)

    @property
    def etcd_url(self) -> str:
        return self.etcd.urls

    def add_nodes(self, name: str, specs: list[str], ttl: int = 10) -> Proc:
        proc = spawn(name, [sys.executable, "-m", "benchmarks.frontdoor_nodes", "--etcd",
                            self.etcd_url, "--ttl", str(ttl), *specs], self.logdir, env=self.env)
        self.procs.append(proc)
        proc.wait_line('{"event": "registered"')
        return proc

    def add_turn(self, region: str, *, node_id: str | None = None,
                 lease_ttl: int | None = None) -> tuple[Proc, int]:
        """A real ``regio turn`` node in ``region`` (udp+tcp on one port, metrics); wait for
        ``regio turn ready`` on the returned process before relying on its registration."""
        port, metrics, relay_low = free_ports(3)
        node_id = node_id or f"{region}-turn-real"
        argv = [
            sys.executable, "-m", "control", "turn", "--etcd", self.etcd_url,
            "--region", region, "--node-id", node_id,
            "--listen", f"127.0.0.1:{port}", "--tcp-listen", f"127.0.0.1:{port}",
            "--metrics", f"127.0.0.1:{metrics}", "--relay-ports", f"{relay_low}-{relay_low}",
            "--drain-deadline", "1",
        ]
        if lease_ttl is not None:
            argv += ["--lease-ttl", str(lease_ttl)]
        proc = spawn(f"turn-{node_id}", argv, self.logdir, env=self.env)
        self.procs.append(proc)
        return proc, port

    def add_router(self, region: str, *, node_id: str | None = None, lease_ttl: int = 10,
                   drain_deadline: float = 30.0, timeout: float = 60.0,
                   attempts: int = 3) -> RouterProc:
        """A real ``regio router`` in ``region``, started the way ``regio cluster up`` starts
        one (``--host 127.0.0.1 --port P``: media UDP on P, ws signaling on P+1, metrics on
        P+2), returned once its ready line says it is registered in etcd.

        The port block is probed free just before the start; should another process take a
        port in between, the router exits before its ready line and is started again on a
        fresh block (``attempts`` times).
        """
        node_id = node_id or f"{region}-router-1"
        for attempt in range(attempts):
            port = free_port_block(3)
            name = f"router-{node_id}" + (f"-retry{attempt}" if attempt else "")
            proc = spawn(name, [
                sys.executable, "-m", "control", "router", "--workers", "1",
                "--etcd", self.etcd_url,
                "--region", region, "--node-id", node_id, "--host", "127.0.0.1",
                "--port", str(port), "--lease-ttl", str(lease_ttl),
                "--drain-deadline", str(drain_deadline),
            ], self.logdir, env=self.env)
            self.procs.append(proc)
            try:
                line = proc.wait_line('{"event": "ready"', timeout=timeout)
            except RuntimeError:
                exited = proc.popen.poll() is not None
                proc.stop()
                tail = proc.log_tail(4000)
                if exited and attempt + 1 < attempts and (
                        "cannot listen" in tail or "Address already in use" in tail):
                    continue
                raise
            ready = json.loads(line)
            return RouterProc(proc, ready["node"], region, port, ready["signaling"],
                              ready["metrics"], ready["udp"])
        raise AssertionError("unreachable")

    def add_frontdoor(self, name: str, *extra: str, port: int | None = None,
                      cpu: int | None = None) -> tuple[Proc, str]:
        port = port or free_ports(1)[0]
        proc = spawn(name, [sys.executable, "-m", "control", "frontdoor", "--etcd",
                            self.etcd_url, "--listen", f"127.0.0.1:{port}", *extra],
                     self.logdir, cpu=cpu, env=self.env)
        self.procs.append(proc)
        line = proc.wait_line("regio frontdoor ready")
        url = line.split("url=", 1)[1].split()[0]
        return proc, url

    def etcd_dump(self) -> list[tuple[str, bytes]]:
        """Every key and value in etcd (privacy scans)."""
        async def dump() -> list[tuple[str, bytes]]:
            async with EtcdClient(self.etcd.config(secrets_key=self.secrets_key)) as client:
                _, kvs = await client.get_prefix("/")
                return [(kv.key, kv.value) for kv in kvs]
        return trio.run(dump)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(client, *args)`` against etcd in a fresh Trio loop."""
        async def go() -> Any:
            async with EtcdClient(self.etcd.config(secrets_key=self.secrets_key)) as client:
                return await fn(client, *args)
        return trio.run(go)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.etcd.stop()
