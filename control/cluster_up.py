"""``regio cluster up``: a whole local multi-region cluster on 127.0.0.1, and its teardown.

It starts a one-member etcd, writes the topology and secrets, starts every node the topology
asks for (``routers``/``turns`` per region) and the front door, waits until each node is
registered and the front door accepts connections, then reports where things are. SIGINT or
SIGTERM drains the nodes (each gets SIGTERM and drains itself), then stops every process group
it started, etcd last, so nothing is left behind.

Node processes are started through their own ``regio <kind>`` subcommand. The contract they
follow (the later router/TURN/front-door issues implement it)::

    regio router    --etcd URL --node-id ID --region REGION --host 127.0.0.1 --port PORT
    regio turn      --etcd URL --node-id ID --region REGION --listen 127.0.0.1:PORT
    regio frontdoor --etcd URL --host 127.0.0.1 --port PORT --metrics-listen 127.0.0.1:PORT+1
                    [--trusted-proxy CIDR ...]

Each node gets a block of :data:`PORTS_PER_NODE` ports starting at PORT. A kind whose
subcommand does not exist yet is skipped with a printed note. ``$REGIO_CLUSTER_UP_<KIND>``
(a JSON list with ``{etcd}``, ``{node}``, ``{region}``, ``{host}``, ``{port}``, ``{secrets_key}``
placeholders) overrides the command of a kind, for tests and custom builds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from control.bootstrap import init_cluster
from control.cluster_ca import create_ca, issue_node_certificate
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd, die_with_parent, free_ports
from control.logs import get_logger
from control.secretbox import write_key_file
from control.topology import Topology
from control.view import open_view

log = get_logger("control.cluster_up")

PORTS_PER_NODE = 10
DEMO_TURN_CONFIG = Path(__file__).resolve().parents[1] / "infra" / "local" / "turn-demo.toml"
"""TURN settings only a loopback demo cluster may use (see the file's header)."""
HOST = "127.0.0.1"
NODE_KINDS = ("router", "turn")
FRONTDOOR = "frontdoor"


@dataclass(frozen=True, slots=True)
class ClusterUpConfig:
    """What ``regio cluster up`` starts and how."""

    topology: Topology
    base_port: int | None = None
    """etcd on base_port (client) and base_port+1 (peer); the front door on base_port+10;
    nodes from base_port+100 in blocks of ten. None: free ports picked at start."""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs whose X-Forwarded-For the front door believes."""
    json: bool = False
    """Print machine-readable JSON lines instead of prose."""
    ready_timeout: float = 60.0
    """Seconds to wait for every node to register before giving up."""
    drain_deadline: float = 10.0
    """Seconds nodes get to drain on shutdown before their process groups are killed."""
    etcd_binary: str | None = None
    """etcd binary to run (default: Debian's /usr/bin/etcd)."""
    kinds: frozenset[str] | None = None
    """Which of router, turn, frontdoor to start (None: every available one)."""


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One process to start."""

    node_id: str
    kind: str
    region: str | None
    port: int


@dataclass(slots=True)
class Running:
    """A started process."""

    plan: NodePlan
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass(slots=True)
class ClusterState:
    etcd: LocalEtcd | None = None
    running: list[Running] = field(default_factory=list)


def available_kinds() -> set[str]:
    """The node kinds whose ``regio <kind>`` subcommand exists (or is overridden)."""
    from control.cli import build_parser

    parser = build_parser()
    choices: set[str] = set()
    for action in parser._actions:
        if isinstance(action.choices, dict):
            choices |= set(action.choices)
    kinds = {k for k in (*NODE_KINDS, FRONTDOOR) if k in choices}
    kinds |= {k for k in (*NODE_KINDS, FRONTDOOR) if _override(k) is not None}
    return kinds


def _override(kind: str) -> list[str] | None:
    raw = os.environ.get(f"REGIO_CLUSTER_UP_{kind.upper()}")
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"REGIO_CLUSTER_UP_{kind.upper()} must be a JSON list of strings")
    return value


def plan_nodes(topology: Topology, first_port: int | None, kinds: set[str]) -> list[NodePlan]:
    """Every node the topology asks for, in region order, with its port block."""
    wanted: list[tuple[str, str, str]] = []
    for region in sorted(topology.regions.values(), key=lambda r: r.name):
        for kind, count in (("router", region.routers), ("turn", region.turns)):
            if kind in kinds:
                wanted += [(f"{region.name}-{kind}-{i + 1}", kind, region.name)
                           for i in range(count)]
    if first_port is None:
        ports = free_ports(len(wanted))
    else:
        ports = [first_port + PORTS_PER_NODE * i for i in range(len(wanted))]
    return [
        NodePlan(node_id, kind, region, port)
        for (node_id, kind, region), port in zip(wanted, ports, strict=True)
    ]


def command_for(plan: NodePlan, etcd_url: str, trusted: tuple[str, ...], *,
                host: str = HOST, peers: str = "127.0.0.0/8", secrets_key: str = "") -> list[str]:
    """The command starting ``plan`` on ``host``; TURN may relay to ``peers`` (a CIDR)."""
    values = {"etcd": etcd_url, "node": plan.node_id, "region": plan.region or "",
              "host": host, "port": str(plan.port), "secrets_key": secrets_key}
    override = _override(plan.kind)
    if override is not None:
        return [part.format(**values) for part in override]
    cmd = [sys.executable, "-m", "control", plan.kind, "--etcd", etcd_url]
    if secrets_key:
        cmd += ["--secrets-key", secrets_key]
    if plan.kind == "turn":
        # The demo-only TURN settings (relaying to loopback) live in their own, labelled file;
        # a lab on namespace hosts relays inside its own subnet instead.
        cmd += ["--config", str(DEMO_TURN_CONFIG),
                "--listen", f"{host}:{plan.port}", "--metrics", f"{host}:{plan.port + 1}"]
        if peers != "127.0.0.0/8":
            cmd += ["--allow-peer", peers]
    else:
        cmd += ["--host", host, "--port", str(plan.port)]
    if plan.kind == "router":
        # One process per planned router: the plan gives each its own three ports, and a
        # local cluster already runs several routers on one machine.
        cmd += ["--workers", "1"]
    if plan.kind == FRONTDOOR:
        cmd += ["--metrics-listen", f"{HOST}:{plan.port + 1}"]
        for cidr in trusted:
            cmd += ["--trusted-proxy", cidr]
    else:
        cmd += ["--node-id", plan.node_id, "--region", plan.region or ""]
    return cmd


class ClusterUp:
    """Runs a local cluster until a signal (or ``stop``) arrives."""

    def __init__(self, config: ClusterUpConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self.state = ClusterState()
        self.stop_requested = trio.Event()
        self.trunk_dir: Path | None = None
        self.secrets_key = ""

    def note(self, text: str, **event: object) -> None:
        if self.config.json:
            if event:
                self.out(json.dumps(event))
        else:
            self.out(text)

    async def run(self) -> int:
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_signals, signals)
                    await self._start(nursery)
                    await self.stop_requested.wait()
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._shutdown()
        return 0

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            self.note(f"received {signal.Signals(signum).name}: draining and stopping",
                      event="stopping", signal=signal.Signals(signum).name)
            self.stop_requested.set()
            return

    # Hooks `regio cluster up --hosts` (control.cluster_hosts) overrides.
    async def start_etcd(self) -> LocalEtcd:
        """Start etcd (here: one member on loopback) and return it running."""
        etcd = LocalEtcd(1, binary=self.config.etcd_binary, base_port=self.config.base_port)
        self.state.etcd = etcd
        await etcd.start()
        return etcd

    def plan_all(self, kinds: set[str]) -> list[NodePlan]:
        """Every node process to start, the front door (if any) last."""
        base = self.config.base_port
        plans = plan_nodes(self.config.topology, None if base is None else base + 100, kinds)
        if FRONTDOOR in kinds:
            port = free_ports(1)[0] if base is None else base + 10
            plans.append(NodePlan(FRONTDOOR, FRONTDOOR, None, port))
        return plans

    def node_command(self, plan: NodePlan, etcd_url: str) -> list[str]:
        """The command line of one planned process (without the parent-death wrapper)."""
        return command_for(plan, etcd_url, self.config.trusted_proxies,
                           secrets_key=self.secrets_key) + self.trunk_flags(plan)

    def trunk_flags(self, plan: NodePlan) -> list[str]:
        """A router's trunk certificate from the local cluster's own CA (issued on demand)."""
        if self.trunk_dir is None or plan.kind != "router" or _override("router") is not None:
            return []
        creds = issue_node_certificate(self.trunk_dir, plan.node_id, self.trunk_dir / "nodes")
        return ["--trunk-cert", str(creds.cert), "--trunk-key", str(creds.key),
                "--trunk-ca", str(creds.ca)]

    def frontdoor_url(self, plan: NodePlan) -> str:
        # Local clusters run without certificates: the front door serves plain HTTP on
        # loopback (it refuses plain HTTP anywhere else).
        return f"http://{HOST}:{plan.port}"

    def frontdoor_address(self, plan: NodePlan) -> tuple[str, int]:
        return HOST, plan.port

    async def on_ready(self, ready: dict[str, object]) -> None:
        """Called once every node registered, before the ready report is printed."""

    async def _start(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        etcd = await self.start_etcd()
        etcd_url = etcd.urls
        # The cluster CA of router trunks: its key stays in this state directory, never etcd.
        self.trunk_dir = Path(etcd.base_dir) / "trunk-ca"
        create_ca(self.trunk_dir)
        self.note(f"etcd running at {etcd_url} (pids {', '.join(map(str, etcd.pids))})")
        # The secrets key of this local cluster: outside etcd, readable only by us.
        self.secrets_key = str(write_key_file(etcd.base_dir / "secrets.key"))
        self.note(f"secrets key {self.secrets_key}")
        client = EtcdClient(etcd.config(secrets_key=self.secrets_key))
        nursery.start_soon(_close_at_exit, client)
        await init_cluster(client, cfg.topology)
        self.note(f"topology ({len(cfg.topology.regions)} regions) and secrets written")

        kinds = available_kinds()
        for kind in (*NODE_KINDS, FRONTDOOR):
            if cfg.kinds is not None and kind not in cfg.kinds:
                kinds.discard(kind)
                self.note(f"note: not starting {kind} nodes (--kinds)",
                          event="skipped", kind=kind, reason="not in --kinds")
            elif kind not in kinds:
                self.note(f"note: `regio {kind}` is not available yet; starting no {kind} nodes",
                          event="skipped", kind=kind, reason="subcommand not available")
        plans = self.plan_all(kinds)
        frontdoor = next((p for p in plans if p.kind == FRONTDOOR), None)
        logdir = etcd.base_dir / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        for plan in plans:
            await self._spawn(plan, etcd_url, logdir)
        view = await open_view(client, nursery)
        node_ids = {p.node_id for p in plans if p.kind in NODE_KINDS}
        try:
            with trio.fail_after(cfg.ready_timeout):
                await view.wait_until(lambda: node_ids <= set(view.nodes()),
                                      cfg.ready_timeout)
                if frontdoor is not None:
                    await _wait_port(*self.frontdoor_address(frontdoor))
        except trio.TooSlowError:
            missing = sorted(node_ids - set(view.nodes()))
            self.note(f"error: not ready after {cfg.ready_timeout} s (missing: {missing})",
                      event="error", message="not ready", missing=missing)
            self.stop_requested.set()
            return
        nursery.start_soon(self._watch_exits)
        fd_url = self.frontdoor_url(frontdoor) if frontdoor else None
        meeting = f"{fd_url}/r/demo" if fd_url else None
        nodes = [{"node": r.plan.node_id, "kind": r.plan.kind, "region": r.plan.region,
                  "pid": r.process.pid} for r in self.state.running if r.plan.kind in NODE_KINDS]
        ready: dict[str, object] = {"event": "ready", "frontdoor": fd_url, "etcd": etcd_url,
                                    "secrets_key": self.secrets_key, "meeting": meeting,
                                    "nodes": nodes}
        await self.on_ready(ready)
        if cfg.json:
            self.out(json.dumps(ready))
        else:
            self.out(f"ready: front door {fd_url or '(not available yet)'}, etcd {etcd_url}, "
                     f"{len(nodes)} nodes, secrets key {self.secrets_key}")
            for n in nodes:
                self.out(f"  {n['kind']:<7} {n['node']:<28} pid {n['pid']}")
            if meeting:
                self.out(f"meeting page: {meeting}  (open it in two browser tabs; "
                         "?name=Ada, ?size=small, ?relay=1, ?policy=eea)")
            self.out("press Ctrl-C to drain and stop")

    async def _spawn(self, plan: NodePlan, etcd_url: str, logdir: Path) -> None:
        log_path = logdir / f"{plan.node_id}.log"
        # Popen on the main thread (not trio's worker threads): die_with_parent is tied to
        # the forking thread's lifetime.
        with open(log_path, "ab") as logf:
            process = subprocess.Popen(
                die_with_parent(self.node_command(plan, etcd_url)),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.state.running.append(Running(plan, process, log_path))

    async def _watch_exits(self) -> None:
        reported: set[int] = set()
        while True:
            for r in self.state.running:
                if r.process.poll() is not None and r.process.pid not in reported:
                    reported.add(r.process.pid)
                    self.note(f"warning: {r.plan.node_id} exited with {r.process.returncode} "
                              f"(log: {r.log_path})", event="exited", node=r.plan.node_id,
                              code=r.process.returncode)
            await trio.sleep(0.5)

    async def _shutdown(self) -> None:
        running = [r for r in self.state.running if r.process.poll() is None]
        for r in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.process.pid, signal.SIGTERM)
        with trio.move_on_after(self.config.drain_deadline):
            while any(r.process.poll() is None for r in running):
                await trio.sleep(0.05)
        for r in self.state.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(r.process.pid, signal.SIGKILL)
            if r.process.poll() is None:
                await trio.to_thread.run_sync(r.process.wait)
        if self.state.etcd is not None:
            etcd = self.state.etcd
            await trio.to_thread.run_sync(etcd.stop)
        self.note("stopped: every node and etcd are down", event="stopped")


async def _close_at_exit(client: EtcdClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        client.close()


async def _wait_port(host: str, port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            await trio.sleep(0.1)
            continue
        await stream.aclose()
        return
