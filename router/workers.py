"""``regio router --workers N``: one router process per core, each a router in miniature.

A worker is a whole ``regio router`` process: its own UDP port (advertised in its own ICE
candidates), its own signaling and metrics listeners, its own registration in etcd as a router
of the node's region with node id ``<node>-w<k>`` and a share of the node's ``--capacity``
(the shares add up to it). Nothing else in the cluster needs to know about workers
(docs/architecture.md §9): the front door places participants on workers by load like on any
router, a room that outgrows its worker spans workers the way rooms span routers (§10), and the
trunks that join routers join workers.

This module is only the supervisor, a thin Trio driver: it starts the workers with the same
command line (ports shifted per worker), prints each worker's ready line and then one line for
the node, restarts a worker that died (same node id and ports; its participants rejoin through
the front door), and on SIGTERM or SIGINT passes the signal to every worker, so the node drains
its workers together. A worker that exits cleanly (drained by ``regio node drain NODE``, which
drains every ``NODE-w<k>``) is not restarted; the node exits when every worker has.

The default is one worker per core this process may use (``os.sched_getaffinity``): a router
process is one Trio loop on one core. Without etcd (``--token-key``) the workers are standalone
routers too, and whoever reads the node's ready line (a benchmark, a test) places rooms on
them. Under systemd the supervisor is the unit's main process: it says READY once every worker
is ready and feeds the watchdog while it runs; the workers do not talk to systemd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from control.logs import get_logger
from control.sdnotify import SystemdNotifier, run_watchdog
from router.config import RouterConfig

log = get_logger("router.workers")

NODE_PLACEHOLDER = "{node}"
"""In ``--trunk-cert``/``--trunk-key`` paths: replaced by each worker's node id."""

RESTART_DELAY = 0.5
"""Seconds before a worker that died is started again (a crash loop stays slow)."""


_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


#: The most worker processes one node runs: each is a whole router (~60 MB, its own ports).
MAX_WORKERS = 64


def default_workers() -> int:
    """One worker per core this process may run on (at least one, at most MAX_WORKERS)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(MAX_WORKERS, max(1, cores))


def worker_environment() -> dict[str, str]:
    """The workers' environment: the node's, less systemd's notification variables (the
    supervisor is the unit's main process and speaks for the node)."""
    return {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARIABLES}


def _shift(host_port: str, offset: int) -> str:
    """``HOST:PORT`` with PORT moved by ``offset`` (port 0, any free port, stays 0)."""
    host, _, port = host_port.rpartition(":")
    number = int(port)
    return f"{host}:{number + offset if number else 0}"


def worker_overrides(config: RouterConfig, base_id: str, index: int, count: int) -> list[str]:
    """The flags that make worker ``index`` of ``count`` distinct: node id, ports, capacity.

    ``--port P`` (the ``cluster up`` form: media P, signaling P+1, metrics P+2) becomes
    ``P + 3*index``; explicit ports move by ``index``; port 0 stays "any free port"."""
    share = config.capacity // count + (1 if index < config.capacity % count else 0)
    node_id = f"{base_id}-w{index}"
    flags = ["--workers", "1", "--node-id", node_id, "--capacity", str(share)]
    if config.trunk_cert:
        # One trunk certificate per worker: it must name the worker's own node id.
        flags += ["--trunk-cert", config.trunk_cert.replace(NODE_PLACEHOLDER, node_id),
                  "--trunk-key", config.trunk_key.replace(NODE_PLACEHOLDER, node_id)]
    if config.trunk_port:
        flags += ["--trunk-port", str(config.trunk_port + index)]
    if config.port:
        flags += ["--port", str(config.port + 3 * index)]
        return flags
    if config.udp_port:
        flags += ["--udp-port", str(config.udp_port + index)]
    if config.signaling:
        flags += ["--signaling", _shift(config.signaling, index)]
    if config.metrics:
        flags += ["--metrics", _shift(config.metrics, index)]
    return flags


def base_node_id(config: RouterConfig) -> str:
    """The node's id; workers are ``<id>-w<k>`` (at most 64 characters in all)."""
    suffix = config.port or config.udp_port or os.getpid()
    return (config.node_id or f"router-{config.region}-{suffix}")[:60]


@dataclass
class Worker:
    index: int
    argv: list[str]
    process: trio.Process | None = None
    ready: dict[str, object] = field(default_factory=dict)
    restarts: int = 0


class Supervisor:
    """Runs the workers of one node until they all exit after a shutdown signal."""

    def __init__(self, argv: Sequence[str], config: RouterConfig, count: int) -> None:
        if count < 1:
            raise ValueError("--workers must be at least 1")
        self.base_id = base_node_id(config)
        self.workers = [
            Worker(k, [sys.executable, "-m", "control", *argv,
                       *worker_overrides(config, self.base_id, k, count)])
            for k in range(count)
        ]
        self.stopping = False
        self.all_ready = trio.Event()
        self.notifier = SystemdNotifier.from_environment()
        self._environment = worker_environment()

    async def run(self) -> int:
        async with trio.open_nursery() as outer:
            outer.start_soon(self._signals)
            async with trio.open_nursery() as nursery:
                for worker in self.workers:
                    nursery.start_soon(self._keep, worker)
                await self.all_ready.wait()
                if not self.stopping:
                    pids = [w.process.pid if w.process else None for w in self.workers]
                    print(json.dumps({"event": "ready", "node": self.base_id,
                                      "workers": [w.ready for w in self.workers],
                                      "pids": pids}), flush=True)
                    self.notifier.ready(f"{len(self.workers)} workers ready")
                    # Pings come from this loop while it runs, through the drain too.
                    outer.start_soon(run_watchdog, self.notifier, lambda: True)
            outer.cancel_scope.cancel()  # every worker has exited after a shutdown signal
        self.notifier.close()
        return 0

    async def _keep(self, worker: Worker) -> None:
        """Run one worker; start it again if it dies while the node is not stopping."""
        while not self.stopping:
            process = await trio.lowlevel.open_process(
                worker.argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=self._environment)
            worker.process = process
            assert process.stdout is not None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._relay, worker, process.stdout)
                code = await process.wait()
            worker.process = None
            if self.stopping or code == 0:
                # Shut down, or drained (`regio node drain`) and empty: a finished worker
                # stays finished; the node exits once every worker has.
                return
            worker.restarts += 1
            log.warning("worker %d exited with %s; starting it again", worker.index, code)
            await trio.sleep(RESTART_DELAY)

    async def _relay(self, worker: Worker, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                sys.stdout.buffer.write(line + b"\n")
                sys.stdout.flush()
                self._note_ready(worker, line)

    def _note_ready(self, worker: Worker, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict) and event.get("event") == "ready":
            worker.ready = event
            if all(w.ready for w in self.workers):
                self.all_ready.set()

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self.stopping:
                    self.notifier.stopping("draining every worker")
                self.stopping = True
                self.all_ready.set()
                for worker in self.workers:
                    if worker.process is not None and worker.process.returncode is None:
                        worker.process.send_signal(signum)


def run_workers(argv: Sequence[str], config: RouterConfig, count: int) -> int:
    """The ``regio router --workers N`` entry point (N > 1)."""
    return trio.run(Supervisor(argv, config, count).run)


__all__ = ["MAX_WORKERS", "NODE_PLACEHOLDER", "Supervisor", "base_node_id", "default_workers",
           "run_workers", "worker_environment", "worker_overrides"]
