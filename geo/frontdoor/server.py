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

from control.etcd import EtcdClient, EtcdConfig, EtcdError
from control.logs import get_logger
from control.placement import NoRouterAvailable, PlacementError, place_room
from control.schema import RoomRecord
from control.secrets import require_secrets
from control.stopsignals import StopSignals
from control.topology import Topology, load_topology
from control.view import ClusterView
from geo.client_address import parse_trusted_proxies
from geo.frontdoor.app import FrontdoorApp, prometheus_targets, uptime_clock
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.fastserver import FastServer
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.rooms import RoomCache
from geo.frontdoor.service import JoinService, NoRouterForRoom, PlacementUnavailable
from geo.frontdoor.snapshot import SnapshotCache
from geo.frontdoor.tls import HypercornConfig, check_plain_listen, server_context, split_host_port
from geo.geoip import DEFAULT_DATABASE, GeoIP

log = get_logger("geo.frontdoor")

READY_PREFIX = "regio frontdoor ready"


class EtcdPlacer:
    """Places new rooms through :func:`control.placement.place_room`, failing fast (503)
    while the view says etcd is unreachable and giving up after ``timeout`` seconds."""

    def __init__(self, client: EtcdClient, view: ClusterView, timeout: float) -> None:
        self.client = client
        self.view = view
        self.timeout = timeout

    async def __call__(self, room: str, region: str, policy: str, mode: str = "sfu",
                       prefer: str | None = None) -> RoomRecord:
        if not self.view.connected:
            raise PlacementUnavailable("etcd is unreachable; only existing rooms can be joined")
        with trio.move_on_after(self.timeout):
            try:
                placement = await place_room(self.client, self.view, room, regions=[region],
                                             policy=policy, mode=mode, prefer=prefer,
                                             attempts=4, retry_delay=0.05)
            except NoRouterAvailable as exc:
                raise NoRouterForRoom(str(exc)) from None
            except PlacementError as exc:
                raise PlacementUnavailable(str(exc)) from None
            except EtcdError as exc:
                raise PlacementUnavailable(f"etcd: {type(exc).__name__}") from None
            return placement.room
        raise PlacementUnavailable(f"etcd did not answer within {self.timeout:g} s")


@dataclass(slots=True)
class Frontdoor:
    """A running front door's parts (tests and the benchmark reach in)."""

    config: FrontdoorConfig
    service: JoinService
    view: ClusterView
    rooms: RoomCache
    geoip: GeoIP
    app: FrontdoorApp
    urls: list[str]


def build_service(config: FrontdoorConfig, client: EtcdClient, view: ClusterView,
                  rooms: RoomCache, geoip: GeoIP, static_topology: Topology | None
                  ) -> JoinService:
    metrics = FrontdoorMetrics()
    service = JoinService(
        config, geoip, SnapshotCache(view, config.signaling_path, static_topology), rooms,
        EtcdPlacer(client, view, config.placement_timeout), metrics,
        trusted=parse_trusted_proxies(config.trusted_proxy),
    )
    metrics.attach(geoip, lambda: {
        "etcd_connected": float(view.connected),
        "view_age_seconds": view.age(),
        "rooms_cached": float(len(rooms)),
        "nodes": float(len(view.nodes())),
        "rate_limit_buckets": float(len(service.limiter)),
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
        service = build_service(config, client, view, rooms, geoip, static)
        urls: list[str] = []
        app = FrontdoorApp(
            service,
            lambda: health(view, rooms, geoip, service),
            lambda: prometheus_targets(service, urls[0].split("://", 1)[1] if urls else None),
        )
        nursery.start_soon(_check_geoip, geoip, config.geoip_check_interval)
        shutdown = trio.Event()
        if handle_signals:
            signals = StopSignals(drain_on_sigterm=False)
            await nursery.start(signals.run)
            nursery.start_soon(_set_on, signals.stop, shutdown)
        if config.http_server == "hypercorn":
            urls += await nursery.start(_serve, app, hconfig, shutdown)
        else:
            fast = FastServer(app, ssl_context=fast_tls)
            urls += await nursery.start(functools.partial(fast.serve, host, port))
        print(f"{READY_PREFIX} url={urls[0]} etcd={etcd.urls}", flush=True)
        log.info("front door serving on %s", ", ".join(urls))
        task_status.started(Frontdoor(config, service, view, rooms, geoip, app, urls))
        await shutdown.wait()
        nursery.cancel_scope.cancel()
    geoip.close()


async def _serve(app: FrontdoorApp, hconfig: HypercornConfig, shutdown: trio.Event, *,
                 task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    await serve(app, hconfig, shutdown_trigger=shutdown.wait,  # type: ignore[arg-type]
                task_status=task_status)


async def _set_on(source: trio.Event, target: trio.Event) -> None:
    await source.wait()
    target.set()


def main(config: FrontdoorConfig, etcd: EtcdConfig) -> int:
    try:
        trio.run(run_frontdoor, config, etcd)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


__all__ = ["READY_PREFIX", "EtcdPlacer", "Frontdoor", "main", "run_frontdoor", "uptime_clock"]
