"""Running a front door: etcd views, GeoIP, the join service and its HTTP server (the front
door's own :mod:`~geo.frontdoor.fastserver` by default, Hypercorn on request), under one Trio
loop.

Start-up order matters for residency: the HTTP listener opens only after the cluster view and
the room cache have read etcd once, so the first join is decided on real data. Afterwards the
views keep serving from their caches while etcd is unreachable (existing rooms keep working;
new placements answer 503), and the GeoIP file is re-checked off the event loop, in a worker
thread, so a database reload never pauses a join.
"""

from __future__ import annotations

import functools
import math
import ssl
import sys
from dataclasses import dataclass
from typing import Any

import trio
from hypercorn.trio import serve

from control import schema
from control.etcd import EtcdClient, EtcdConfig, EtcdError
from control.logs import get_logger
from control.placement import (
    PENDING_TTL,
    Assignment,
    Chooser,
    NoRouterAvailable,
    PendingLeases,
    PlacementError,
    RoomState,
    assign_router,
)
from control.rooms import Liveness
from control.sdnotify import SystemdNotifier, run_watchdog
from control.secrets import require_secrets
from control.stopsignals import StopSignals
from control.strict_http import install_strict_hypercorn
from control.topology import Topology, load_topology
from control.view import ClusterView
from geo.client_address import parse_trusted_proxies
from geo.frontdoor.app import FrontdoorApp, operator_app, prometheus_targets, uptime_clock
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.fastserver import FastServer
from geo.frontdoor.health import RouterHealth
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.rooms import RoomCache
from geo.frontdoor.service import JoinService, NoRouterForRoom, PlacementUnavailable
from geo.frontdoor.snapshot import SnapshotCache
from geo.frontdoor.tls import HypercornConfig, check_plain_listen, server_context, split_host_port
from geo.geoip import DEFAULT_DATABASE, GeoIP

log = get_logger("geo.frontdoor")

READY_PREFIX = "regio frontdoor ready"


class EtcdPlacer:
    """Assigns participants to routers through :func:`control.placement.assign_router`,
    failing fast (503) while the view says etcd is unreachable and giving up after
    ``timeout`` seconds. The room cache's picture of the room is the first guess; the
    transaction's guards decide."""

    def __init__(self, client: EtcdClient, view: ClusterView, rooms: RoomCache, timeout: float,
                 pending_ttl: int = PENDING_TTL) -> None:
        self.client = client
        self.view = view
        self.rooms = rooms
        self.timeout = timeout
        self.pending_ttl = max(5, pending_ttl)
        self.leases = PendingLeases(client, self.pending_ttl)

    async def __call__(self, room: str, policy: str, mode: str, choose: Chooser,
                       alive: Liveness) -> Assignment:
        if not self.view.connected:
            raise PlacementUnavailable("etcd is unreachable; only existing rooms can be joined")
        with trio.move_on_after(self.timeout):
            try:
                return await assign_router(
                    self.client, self.view, room, choose, policy=policy, mode=mode,
                    state=self._cached(room), alive=alive, pending_lease=self.leases,
                    attempts=6)
            except NoRouterAvailable as exc:
                raise NoRouterForRoom(str(exc)) from None
            except PlacementError as exc:
                raise PlacementUnavailable(str(exc)) from None
            except EtcdError as exc:
                raise PlacementUnavailable(f"etcd: {type(exc).__name__}") from None
        raise PlacementUnavailable(f"etcd did not answer within {self.timeout:g} s")

    def _cached(self, room: str) -> RoomState | None:
        kv = self.rooms.items.get(schema.room_key(room))
        if kv is None:
            return None  # unknown here: read it (another front door may have created it)
        return RoomState(kv, {m.router: m for m in self.rooms.routers(room)})


@dataclass(slots=True)
class Frontdoor:
    """A running front door's parts (tests and the benchmark reach in)."""

    config: FrontdoorConfig
    service: JoinService
    view: ClusterView
    rooms: RoomCache
    geoip: GeoIP
    health: RouterHealth | None
    app: FrontdoorApp
    urls: list[str]
    metrics_url: str | None = None
    """The ``--metrics-listen`` listener (``/metrics``, ``/v1/prometheus/targets``), if any."""


def build_service(config: FrontdoorConfig, client: EtcdClient, view: ClusterView,
                  rooms: RoomCache, geoip: GeoIP, static_topology: Topology | None,
                  health: RouterHealth | None = None) -> JoinService:
    metrics = FrontdoorMetrics()
    service = JoinService(
        config, geoip, SnapshotCache(view, config.signaling_path, static_topology, health),
        rooms, EtcdPlacer(client, view, rooms, config.placement_timeout, config.pending_ttl),
        metrics,
        trusted=parse_trusted_proxies(config.trusted_proxy),
    )
    metrics.attach(geoip, lambda: {
        "etcd_connected": float(view.connected),
        "view_age_seconds": view.age(),
        "rooms_cached": float(len(rooms)),
        "nodes": float(len(view.nodes())),
        "rate_limit_buckets": float(len(service.limiter)),
        "routers_down": float(len(health.down)) if health is not None else 0.0,
    })
    return service


def health(view: ClusterView, rooms: RoomCache, geoip: GeoIP, service: JoinService
           ) -> dict[str, Any]:
    snapshot = service.snapshots.get()
    connected = view.connected and rooms.connected
    status = "ok" if connected and geoip.info is not None else "degraded"
    if snapshot.topology is None:
        status = "starting"
    return {
        "status": status,
        "etcd_connected": connected,
        "view_age_seconds": round(max(view.age(), rooms.age()), 3),
        "routers": len(snapshot.routers),
        "turns": len(snapshot.turns),
        "rooms_cached": len(rooms),
        "geoip_database": geoip.info.database_type if geoip.info else None,
    }


async def _check_geoip(geoip: GeoIP, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        await trio.to_thread.run_sync(geoip.check_for_update)


async def run_frontdoor(
    config: FrontdoorConfig,
    etcd: EtcdConfig,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Frontdoor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled or (``handle_signals``) SIGTERM/SIGINT."""
    host, port = split_host_port(config.listen)
    tls = bool(config.tls_cert or config.tls_key)
    if tls and not (config.tls_cert and config.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    hconfig = HypercornConfig()
    fast_tls: ssl.SSLContext | None = None
    if tls:
        hconfig.tls_context = server_context(config.tls_cert, config.tls_key)
        hconfig.certfile, hconfig.keyfile = config.tls_cert, config.tls_key
        fast_tls = server_context(config.tls_cert, config.tls_key, alpn=("http/1.1",))
    else:
        check_plain_listen(host)
    hconfig.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hconfig.accesslog = None
    hconfig.errorlog = get_logger("geo.frontdoor.hypercorn")
    hconfig.h11_max_incomplete_size = 16 * 1024
    # Hypercorn closes a keep-alive connection after 1,000 requests by default; a proxy in
    # front of us multiplexes many clients on few connections, so allow far more.
    hconfig.keep_alive_max_requests = 1_000_000
    static = None if config.topology_from_etcd else load_topology(config.topology)
    geoip = GeoIP(config.geoip_db or DEFAULT_DATABASE, check_interval=math.inf)
    if geoip.info is None:
        log.warning("no usable GeoIP database (%s): every client fails closed", geoip.last_error)
    async with EtcdClient(etcd) as client, trio.open_nursery() as nursery:
        view = ClusterView(client)
        rooms = RoomCache(client)
        await nursery.start(view.run)
        require_secrets(view)
        await nursery.start(rooms.run)
        probes: RouterHealth | None = None
        if config.probe_interval > 0:
            probes = RouterHealth(lambda: view.nodes(), interval=config.probe_interval,
                                  failures=config.probe_failures,
                                  timeout=config.probe_timeout,
                                  connect_timeout=config.probe_connect_timeout)
            await nursery.start(probes.run)
        service = build_service(config, client, view, rooms, geoip, static, probes)
        urls: list[str] = []
        app = FrontdoorApp(service, lambda: health(view, rooms, geoip, service))
        nursery.start_soon(_check_geoip, geoip, config.geoip_check_interval)
        shutdown = trio.Event()
        systemd = SystemdNotifier.from_environment()
        if handle_signals:
            signals = StopSignals(drain_on_sigterm=False)
            await nursery.start(signals.run)
            nursery.start_soon(_stop_on, signals, shutdown, systemd)
        metrics_url: str | None = None
        if config.metrics_listen:
            metrics_url = await _start_operator_listener(config.metrics_listen, service,
                                                         shutdown, nursery)
        if config.http_server == "hypercorn":
            urls += await nursery.start(_serve, app, hconfig, shutdown)
        else:
            fast = FastServer(app, ssl_context=fast_tls)
            urls += await nursery.start(functools.partial(fast.serve, host, port))
        shown_metrics = f" metrics={metrics_url}" if metrics_url else ""
        print(f"{READY_PREFIX} url={urls[0]} etcd={etcd.urls}{shown_metrics}", flush=True)
        systemd.ready(f"front door serving on {urls[0]}")
        # The front door serves from its cache through an etcd outage, so a restart would not
        # help there: the watchdog only proves the event loop runs.
        nursery.start_soon(run_watchdog, systemd, lambda: True)
        log.info("front door serving on %s%s", ", ".join(urls),
                 f"; metrics on {metrics_url}" if metrics_url else "")
        task_status.started(Frontdoor(config, service, view, rooms, geoip, probes, app, urls,
                                      metrics_url))
        await shutdown.wait()
        nursery.cancel_scope.cancel()
    geoip.close()


async def _start_operator_listener(listen: str, service: JoinService, shutdown: trio.Event,
                                   nursery: trio.Nursery) -> str:
    """Serve :func:`operator_app` on ``listen`` (Hypercorn, plain HTTP); its URL. Prometheus
    discovery lists this listener as the front door's own target."""
    host, port = split_host_port(listen)
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = get_logger("geo.frontdoor.hypercorn")
    own: list[str] = []
    app = operator_app(service, lambda: prometheus_targets(service, own[0] if own else None))
    binds: list[str] = await nursery.start(_serve, app, config, shutdown)
    own.append(binds[0].split("://", 1)[1])
    return binds[0]


async def _serve(app: Any, hconfig: HypercornConfig, shutdown: trio.Event, *,
                 task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Hypercorn on ``hconfig.bind`` until ``shutdown``; bare-LF request heads get 400."""
    install_strict_hypercorn()
    await serve(app, hconfig, shutdown_trigger=shutdown.wait,
                task_status=task_status)


async def _stop_on(signals: StopSignals, shutdown: trio.Event,
                   systemd: SystemdNotifier) -> None:
    await signals.stop.wait()
    systemd.stopping("finishing requests in flight")
    shutdown.set()


def main(config: FrontdoorConfig, etcd: EtcdConfig) -> int:
    try:
        trio.run(run_frontdoor, config, etcd)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["READY_PREFIX", "EtcdPlacer", "Frontdoor", "main", "run_frontdoor", "uptime_clock"]
