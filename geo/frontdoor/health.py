"""The front door's own health probes of routers: a dead router leaves the candidates within
2 s, not after its lease TTL.

A router's registration lives on a lease (10 s by default): etcd only forgets a killed router
when the lease expires, and until then every join could be sent to it. Shortening the lease
would put every node's keepalive traffic on etcd a few times a second and make a loaded
machine's pauses look like deaths to the whole cluster. Instead each front door asks the
routers itself: an HTTP ``GET /healthz`` on the signaling listener each router registered,
every ``interval`` seconds (0.5), every router on its own cadence. A router that is *down* for
this front door is left out of the join candidates and its room memberships no longer count
(docs/architecture.md §10), so the participant gets another allowed router. One good answer
brings it back.

What a failed probe says decides how fast it counts. A SIGKILLed router on a live host refuses
connections at once (``refused``). A lost host (powered off, cut off, its packets dropped)
never completes the TCP handshake; a live host's kernel completes it in microseconds however
busy the router process is, so a handshake missing after ``connect_timeout`` (0.5 s) is as
strong as a refusal (``unreachable``). Two failures in a row ending in either take the router
out: about 1 s for a dead process, about 1.5 s for a lost host. A connection that is made but
gets no answer within ``timeout`` (1 s) is weak evidence (a busy process answers late, and
taking a live router out would split its rooms for nothing), so four such in a row are
needed, about 4 s; the lease bounds everything else. Only this front door's candidates change:
etcd and the other front doors are not touched, so a probe that fails because of the path
between this front door and a router cannot take the router away from anyone else; and when
no router answers at all, none is taken out (this front door is then the likelier culprit).
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


ProbeResult = Literal["up", "refused", "unreachable", "timeout"]
"""``up``: a 2xx answer. ``refused``: nothing listens or the connection broke without an answer,
what a killed process looks like on a live host. ``unreachable``: the TCP handshake did not
complete within the connect timeout, what a lost host (or a dropped path) looks like: a live
host's kernel completes the handshake however busy the router process is. ``timeout``: the
connection was made but no answer came in time, what a hung or merely very busy process looks
like."""

STRONG: frozenset[ProbeResult] = frozenset({"refused", "unreachable"})
"""Results that say the router cannot be doing its job, as opposed to doing it slowly."""

STALL_SLACK = 0.1
"""Seconds by which a connect timeout may fire late before it says more about this front
door's own event loop (stalled, so the handshake may well have completed meanwhile) than about
the router: such a timeout counts as the weak ``timeout``."""


async def probe(host: str, port: int, tls: bool, timeout: float,
                connect_timeout: float | None = None) -> ProbeResult:
    """``GET /healthz`` on the listener, bounded by ``timeout`` seconds; the TCP handshake
    alone by ``connect_timeout`` (default: ``timeout``)."""
    connect_timeout = timeout if connect_timeout is None else min(connect_timeout, timeout)
    with trio.move_on_after(timeout):
        try:
            connect_deadline = trio.current_time() + connect_timeout
            stream: trio.abc.Stream | None = None
            with trio.move_on_at(connect_deadline):
                stream = await trio.open_tcp_stream(host, port)
            if stream is None:
                late = trio.current_time() - connect_deadline
                return "unreachable" if late <= STALL_SLACK else "timeout"
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

    A router is down after ``failures`` failed probes in a row of which the latest was a
    strong one (refused: a dead process; unreachable: a lost host), or after ``failures + 2``
    failed probes of any kind in a row (answers that time out: a hung process). Each router is
    probed on its own cadence (every ``interval`` seconds, or as soon as its previous probe
    ends if that took longer), so a slow router never delays the verdict on another. With the
    defaults a dead process is out within about 1 s and a lost host within about 1.5 s (at
    most ``interval + failures * connect_timeout``, or ``timeout + connect_timeout`` when the
    host died while answering a probe); a live router that merely answers late needs four
    timeouts in a row, about 4 s, because taking it out would split its rooms for nothing.
    When every router fails at once, none is taken out (``blind``): a front door that reaches
    no router is more likely cut off itself, and its leases still bound a real outage."""

    def __init__(self, routers: Callable[[], Mapping[str, NodeRecord]], *,
                 interval: float = 0.5, failures: int = 2, timeout: float = 1.0,
                 connect_timeout: float = 0.5) -> None:
        if interval <= 0 or failures < 1 or timeout <= 0 or connect_timeout <= 0:
            raise ValueError("interval and timeouts must be positive, failures at least 1")
        self.routers = routers
        self.interval = interval
        self.failures = failures
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.version = 0
        """Bumped whenever ``down`` changes (snapshots rebuild on it)."""
        self.down: frozenset[str] = frozenset()
        self.down_since: dict[str, float] = {}
        self.probes = 0
        self.blind = False
        """True while every probed router fails its probes (then none is taken out)."""
        self._failing: frozenset[str] = frozenset()
        """Routers whose probes say down, before the ``blind`` rule."""
        self._failed: dict[str, int] = {}
        self._last: dict[str, ProbeResult] = {}
        self._probing: set[str] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Every ``interval``: forget routers that left the registry and start a prober for
        each new one (it ends when its router leaves)."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                started = trio.current_time()
                targets = self._targets()
                self.forget(set(targets))
                for node_id in targets.keys() - self._probing:
                    self._probing.add(node_id)
                    nursery.start_soon(self._probe_router, node_id)
                await trio.sleep_until(started + self.interval)

    def _targets(self) -> dict[str, tuple[str, int, bool]]:
        targets: dict[str, tuple[str, int, bool]] = {}
        for node_id, record in self.routers().items():
            if record.kind == "router" and (target := probe_target(record)) is not None:
                targets[node_id] = target
        return targets

    async def _probe_router(self, node_id: str) -> None:
        """One router's probes: every ``interval``, or at once when a probe took longer (a
        timed-out probe is followed by the next at once, so the verdict is not delayed)."""
        try:
            while (target := self._targets().get(node_id)) is not None:
                started = trio.current_time()
                result = await probe(*target, timeout=self.timeout,
                                     connect_timeout=self.connect_timeout)
                if node_id not in self._targets():
                    break
                self.probes += 1
                self.record(node_id, result)
                await trio.sleep_until(started + self.interval)
        finally:
            self._probing.discard(node_id)

    def record(self, node_id: str, result: ProbeResult) -> None:
        """Count one probe's result for one router."""
        self._count(node_id, result)
        self._update()

    def forget(self, registered: set[str]) -> None:
        """Drop the counts of routers no longer registered (a router that comes back under
        the same id starts afresh)."""
        gone = [n for n in self._failed if n not in registered]
        for node_id in gone:
            del self._failed[node_id]
            self._last.pop(node_id, None)
        if gone:
            self._update()

    def _count(self, node_id: str, result: ProbeResult) -> None:
        self._failed[node_id] = 0 if result == "up" else self._failed.get(node_id, 0) + 1
        self._last[node_id] = result

    def _is_down(self, node_id: str) -> bool:
        failed = self._failed.get(node_id, 0)
        return ((failed >= self.failures and self._last[node_id] in STRONG)
                or failed >= self.failures + 2
                or (node_id in self._failing and failed > 0))  # only an answer brings it back

    def _update(self) -> None:
        down = self._failing = frozenset(n for n in self._failed if self._is_down(n))
        if down and down == self._failed.keys():
            # No router answers at all: this front door is more likely cut off or stalled
            # itself than every router dead at once, and taking them all out would refuse
            # every join. The leases decide then.
            if not self.blind:
                log.warning("no router answers this front door's health probes: probes "
                            "ignored until one does (check this front door's network)")
            self.blind = True
            down = frozenset()
        else:
            self.blind = False
        if down != self.down:
            for node_id in down - self.down:
                self.down_since[node_id] = time.time()
                log.warning("router %s stopped answering health probes (%s): no joins go there",
                            node_id, self._last[node_id])
            for node_id in self.down - down:
                self.down_since.pop(node_id, None)
                if node_id in self._failed:
                    log.info("router %s answers health probes again", node_id)
            self.down = down
            self.version += 1


__all__ = ["HEALTH_PATH", "STRONG", "ProbeResult", "RouterHealth", "probe", "probe_target"]
