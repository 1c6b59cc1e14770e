"""The front door's own health probes of routers: a dead router leaves the candidates in about
a second, not after its lease TTL.

A router's registration lives on a lease (10 s by default): etcd only forgets a killed router
when the lease expires, and until then every join could be sent to it. Shortening the lease
would put every node's keepalive traffic on etcd a few times a second and make a loaded
machine's pauses look like deaths to the whole cluster. Instead each front door asks the
routers itself: an HTTP ``GET /healthz`` on the signaling listener each router registered,
every ``interval`` seconds (0.5), all routers concurrently. A router that is *down* for this
front door is left out of the join candidates and its room memberships no longer count
(docs/architecture.md §10), so the participant gets another allowed router. One good answer
brings it back.

A SIGKILLed router on a live host refuses connections at once: two refused probes in a row,
at most a second, take it out. A probe that merely gets no answer within ``timeout`` (1 s) is
weaker evidence (a busy machine answers late, and taking a live router out would split its
rooms for nothing), so timeouts take out a router after four failed probes in a row, about 4 s;
the lease bounds everything else. Only this front door's candidates change: etcd and the other
front doors are not touched, so a probe that fails because of the path between this front
door and a router cannot take the router away from anyone else.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Literal

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


ProbeResult = Literal["up", "refused", "timeout"]
"""``up``: a 2xx answer. ``refused``: nothing listens or the connection broke without an answer,
what a killed process looks like on a live host. ``timeout``: no answer in time, what a hung
process, a lost host or merely a very busy one looks like."""


async def probe(host: str, port: int, tls: bool, timeout: float) -> ProbeResult:
    """``GET /healthz`` on the listener, bounded by ``timeout`` seconds."""
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
            ok = head.startswith(b"HTTP/1.") and head[9:10] == b"2"
            return "up" if ok else "refused"
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return "refused"
    return "timeout"


class RouterHealth:
    """Which routers this front door currently finds dead (``down``), probed continuously.

    A router is down after ``failures`` refused probes in a row (a dead process: at most
    ``failures * interval`` seconds), or after ``failures + 2`` failed probes of any kind in a
    row (timeouts of ``timeout`` seconds each: a hung or lost host, about 4 s with the
    defaults). Timeouts need more evidence because a busy machine answers late, and a live
    router wrongly taken out would split its rooms for nothing."""

    def __init__(self, routers: Callable[[], Mapping[str, NodeRecord]], *,
                 interval: float = 0.5, failures: int = 2, timeout: float = 1.0) -> None:
        if interval <= 0 or failures < 1 or timeout <= 0:
            raise ValueError("interval and timeout must be positive, failures at least 1")
        self.routers = routers
        self.interval = interval
        self.failures = failures
        self.timeout = timeout
        self.version = 0
        """Bumped whenever ``down`` changes (snapshots rebuild on it)."""
        self.down: frozenset[str] = frozenset()
        self.down_since: dict[str, float] = {}
        self.probes = 0
        self._refused: dict[str, int] = {}
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
        results: dict[str, ProbeResult] = {}

        async def one(node_id: str, target: tuple[str, int, bool]) -> None:
            results[node_id] = await probe(*target, timeout=self.timeout)

        async with trio.open_nursery() as nursery:
            for node_id, target in targets.items():
                nursery.start_soon(one, node_id, target)
        self.probes += len(results)
        self.apply(results)

    def apply(self, results: Mapping[str, ProbeResult]) -> None:
        """Count one round of results; routers no longer registered are forgotten."""
        for counts in (self._refused, self._failed):
            for node_id in [n for n in counts if n not in results]:
                del counts[node_id]
        for node_id, result in results.items():
            up = result == "up"
            self._failed[node_id] = 0 if up else self._failed.get(node_id, 0) + 1
            self._refused[node_id] = (self._refused.get(node_id, 0) + 1
                                      if result == "refused" else 0)
        down = frozenset(n for n in results
                         if self._refused[n] >= self.failures
                         or self._failed[n] >= self.failures + 2)
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


__all__ = ["HEALTH_PATH", "ProbeResult", "RouterHealth", "probe", "probe_target"]
