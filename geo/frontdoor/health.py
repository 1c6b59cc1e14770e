"""The front door's own health probes of routers: a dead router leaves the candidates in about
a second, not after its lease TTL.

A router's registration lives on a lease (10 s by default): etcd only forgets a killed router
when the lease expires, and until then every join could be sent to it. Shortening the lease
would put every node's keepalive traffic on etcd a few times a second and make a loaded
machine's pauses look like deaths to the whole cluster. Instead each front door asks the
routers itself: an HTTP ``GET /healthz`` on the signaling listener each router registered,
every ``interval`` seconds, all routers concurrently, each probe bounded by ``interval``. After
``failures`` failed probes in a row a router is *down* for this front door: it is left out of
the join candidates and its room memberships no longer count (docs/architecture.md §10), so
the participant gets another allowed router. One good answer brings it back.

A SIGKILLed router refuses connections at once, so it is down after ``failures`` probes,
``failures * interval`` seconds at most (1 s with the defaults); a hung or unreachable one after
``failures`` timeouts, about the same. Only the front door's own candidates change: etcd and the
other front doors are not touched, so a probe that fails because of the path between this
front door and a router cannot take the router away from anyone else.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping

import trio

from control.logs import get_logger
from control.schema import NodeRecord

log = get_logger("geo.frontdoor.health")

HEALTH_PATH = "/healthz"


def probe_target(record: NodeRecord) -> tuple[str, int, bool] | None:
    """(host, port, tls) of a router's signaling listener, or None if it registered none."""
    for protocol in ("ws", "wss"):
        for address in record.addresses:
            if address.protocol == protocol:
                return address.host, address.port, protocol == "wss"
    return None


def _insecure_context() -> ssl.SSLContext:
    # A liveness probe of an address taken from etcd: only the answer matters, not the name.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def probe(host: str, port: int, tls: bool, timeout: float) -> bool:
    """True if the listener answers ``GET /healthz`` with a 2xx status within ``timeout``."""
    with trio.move_on_after(timeout):
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            if tls:
                stream = trio.SSLStream(stream, _insecure_context(), server_hostname=host)
            async with stream:
                request = (f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {host}\r\n"
                           "Connection: close\r\n\r\n")
                await stream.send_all(request.encode())
                head = b""
                while b"\r\n" not in head and len(head) < 64:
                    chunk = await stream.receive_some(64)
                    if not chunk:
                        break
                    head += chunk
            return head.startswith(b"HTTP/1.") and head[9:10] == b"2"
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
    return False


class RouterHealth:
    """Which routers this front door currently finds dead (``down``), probed continuously."""

    def __init__(self, routers: Callable[[], Mapping[str, NodeRecord]], *,
                 interval: float = 0.5, failures: int = 2) -> None:
        if interval <= 0 or failures < 1:
            raise ValueError("interval must be positive and failures at least 1")
        self.routers = routers
        self.interval = interval
        self.failures = failures
        self.version = 0
        """Bumped whenever ``down`` changes (snapshots rebuild on it)."""
        self.down: frozenset[str] = frozenset()
        self.down_since: dict[str, float] = {}
        self.probes = 0
        self._failed: dict[str, int] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        task_status.started()
        while True:
            started = trio.current_time()
            await self.probe_all()
            await trio.sleep_until(started + self.interval)

    async def probe_all(self) -> None:
        """One round: every router probed concurrently, ``down`` updated once."""
        targets: dict[str, tuple[str, int, bool]] = {}
        for node_id, record in self.routers().items():
            if record.kind == "router" and (target := probe_target(record)) is not None:
                targets[node_id] = target
        results: dict[str, bool] = {}

        async def one(node_id: str, target: tuple[str, int, bool]) -> None:
            results[node_id] = await probe(*target, timeout=self.interval)

        async with trio.open_nursery() as nursery:
            for node_id, target in targets.items():
                nursery.start_soon(one, node_id, target)
        self.probes += len(results)
        self.apply(results)

    def apply(self, results: Mapping[str, bool]) -> None:
        """Count one round of results; routers no longer registered are forgotten."""
        for node_id in list(self._failed):
            if node_id not in results:
                del self._failed[node_id]
        for node_id, ok in results.items():
            self._failed[node_id] = 0 if ok else self._failed.get(node_id, 0) + 1
        down = frozenset(n for n, count in self._failed.items() if count >= self.failures)
        if down != self.down:
            for node_id in down - self.down:
                self.down_since[node_id] = time.time()
                log.warning("router %s stopped answering health probes: no joins go there",
                            node_id)
            for node_id in self.down - down:
                self.down_since.pop(node_id, None)
                log.info("router %s answers health probes again", node_id)
            self.down = down
            self.version += 1


__all__ = ["HEALTH_PATH", "RouterHealth", "probe", "probe_target"]
