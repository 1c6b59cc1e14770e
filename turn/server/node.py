"""A whole TURN node process: data plane, metrics, and (with etcd) registration, secrets, drain.

Standalone (``--auth-secret``) it is a drop-in for coturn's ``use-auth-secret``. With etcd it
registers as kind ``turn`` in its region under a lease of ``--lease-ttl`` seconds, takes the
TURN REST secrets from the cluster view (every key valid in the rotation overlap is accepted,
and a rotation is seen through the view's watch, no restart), and drains on SIGTERM or
``regio node drain``.

Load in etcd: the node record (``control.schema.NodeRecord``) has one ``load`` field in the
unit of ``capacity``. For a TURN node that unit is allocations: capacity is the allocation
quota (``--total-quota``) and load the number of active allocations, published at most once a
second. Relayed packets per second are another unit: they go into the record's
``load_detail`` (``relayed_pps``, written with the load, so at most once a second) for
``regio cluster status``, and precisely into metrics (``regio_turn_relayed_packets_total`` by
direction), which is where an autoscaler should read them.

Draining answers a new Allocate with 508 Insufficient Capacity: RFC 8656 defines 508 as "no
capacity for this allocation right now", browsers then try their next ICE server, and it does
not blame the client's credentials (401/441) or policy (403). 486 is a per-user quota and 300
needs an ALTERNATE-SERVER we do not pick yet. Refresh, permissions and channels keep working
until each allocation expires or the drain deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from control.logs import get_logger
from control.sdnotify import SystemdNotifier, run_watchdog
from control.stopsignals import StopSignals
from turn.server.config import TurnConfig
from turn.server.peer_policy import parse_endpoint
from turn.server.server import TurnServer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = get_logger("turn.node")


def _serve_metrics(server: TurnServer, spec: str) -> tuple[Any, CollectorRegistry]:
    """The ``/metrics`` + ``/healthz`` HTTP server (a thread) and its registry, to which more
    collectors may be added."""
    from turn.server.metrics import registry_for
    from turn.server.status_http import start_status_server

    host, port = parse_endpoint(spec)
    registry = registry_for(server.core, server.config.region)
    httpd = start_status_server(host, port, registry, lambda: health(server))
    bound = httpd.server_address[:2]
    server.addresses.metrics = (str(bound[0]), int(bound[1]))
    server.add_denied_endpoint(str(bound[0]), int(bound[1]))
    return httpd, registry


def health(server: TurnServer) -> dict[str, object]:
    """``/healthz``: read from the HTTP thread (plain attribute reads, like the collector)."""
    core = server.core
    return {"status": "ok" if server.healthy() else "failing", "region": server.config.region,
            "draining": core.draining, "allocations": len(core.allocations),
            "quota": server.config.total_quota}


def ready_line(server: TurnServer) -> str:
    a = server.addresses
    parts = [f"region={server.config.region}"]
    parts += [f"udp={h}:{p}" for h, p in a.udp]
    parts += [f"tcp={h}:{p}" for h, p in a.tcp]
    parts += [f"tls={h}:{p}" for h, p in a.tls]
    if a.metrics:
        parts.append(f"metrics={a.metrics[0]}:{a.metrics[1]}")
    parts.append(f"relay={server.pool.ip[4]}:{server.config.relay_ports}")
    return "regio turn ready " + " ".join(parts)


async def run_standalone(config: TurnConfig) -> int:
    """Serve until SIGTERM (drain, then stop) or SIGINT / a second SIGTERM (stop now)."""
    signals = StopSignals()
    async with trio.open_nursery() as nursery:
        await nursery.start(signals.run)
        server: TurnServer = await nursery.start(TurnServer(config).run)
        httpd = _serve_metrics(server, config.metrics)[0] if config.metrics else None
        print(ready_line(server), flush=True)
        log.info("%s", ready_line(server))
        systemd = SystemdNotifier.from_environment()
        systemd.ready(f"turn serving in {config.region} (standalone)")
        nursery.start_soon(run_watchdog, systemd, server.healthy)
        await signals.drain.wait()
        systemd.stopping(f"draining: {len(server.core.allocations)} allocations left")
        server.drain()
        log.info("draining: %d allocations left, deadline %.0f s",
                 len(server.core.allocations), config.drain_deadline)
        outcome = await signals.until_stopped_or(lambda: not server.core.allocations,
                                                 config.drain_deadline)
        log.info("drain ended (%s, %d allocations left)", outcome, len(server.core.allocations))
        if httpd is not None:
            httpd.shutdown()
        nursery.cancel_scope.cancel()
    return 0


async def run_clustered(config: TurnConfig, etcd_config: object) -> int:
    """Serve with etcd: register, follow secrets, drain on SIGTERM or the etcd flag."""
    from control.drain import DrainConfig, DrainController
    from control.etcd import EtcdClient, EtcdConfig
    from control.registry import NodeRegistration, RegistryConfig, new_record
    from control.schema import NodeAddress
    from control.secrets import require_secrets
    from control.view import open_view

    assert isinstance(etcd_config, EtcdConfig)
    async with EtcdClient(etcd_config) as client, trio.open_nursery() as nursery:
        signals = StopSignals()
        await nursery.start(signals.run)
        view = await open_view(client, nursery)
        require_secrets(view, ("turn",))
        static = tuple(config.auth_secret)

        def secrets() -> Sequence[str]:
            keyset = view.keyset("turn")
            keys = [] if keyset is None else [
                k.secret for k in sorted(keyset.valid_keys(time.time()).values(),
                                         key=lambda k: k.kid != keyset.current)
            ]
            return [*keys, *static]

        topology = view.topology()
        region = topology.regions.get(config.region) if topology is not None else None
        jurisdiction = region.jurisdiction if region is not None else "unknown"
        if region is None:
            log.warning("region %s is not in the stored topology", config.region)
        server: TurnServer = await nursery.start(TurnServer(config, secrets=secrets).run)
        httpd, registry = _serve_metrics(server, config.metrics) if config.metrics else (None, None)
        a = server.addresses
        addresses = (
            *(NodeAddress("udp", h, p) for h, p in a.udp),
            *(NodeAddress("tcp", h, p) for h, p in a.tcp),
            *(NodeAddress("tls", h, p) for h, p in a.tls),
            *((NodeAddress("metrics", *a.metrics),) if a.metrics else ()),
        )
        port = a.udp[0][1] if a.udp else 0
        node_id = config.node_id or f"turn-{config.region}-{port}"
        record = new_record(node_id, "turn", config.region, jurisdiction, addresses=addresses,
                            capacity=config.total_quota)
        registration = NodeRegistration(client, record, RegistryConfig(ttl=config.lease_ttl))
        if registry is not None:
            from control.registry_metrics import RegistrationCollector

            registry.register(RegistrationCollector(registration))
        await nursery.start(registration.run)
        drain = DrainController(registration, lambda: len(server.core.allocations),
                                DrainConfig(deadline=config.drain_deadline), signals=signals)

        async def publish_load() -> None:
            stats = server.core.stats
            last = stats.packets_to_peers + stats.packets_from_peers
            while True:
                relayed = stats.packets_to_peers + stats.packets_from_peers
                registration.set_load(len(server.core.allocations),
                                      {"relayed_pps": float(relayed - last)})
                last = relayed
                if drain.draining and not server.core.draining:
                    server.drain()
                await trio.sleep(1.0)

        systemd = SystemdNotifier.from_environment()

        async def follow_drain() -> None:
            await drain.started.wait()
            server.drain()
            systemd.stopping(f"draining: {len(server.core.allocations)} allocations left")

        nursery.start_soon(publish_load)
        nursery.start_soon(follow_drain)
        print(ready_line(server) + f" node={node_id}", flush=True)
        systemd.ready(f"turn {node_id} serving in {config.region}")
        nursery.start_soon(run_watchdog, systemd,
                           lambda: server.healthy() and registration.state != "fenced")
        outcome = await drain.run()
        log.info("drain finished (%s, %d left, trigger %s)", outcome.reason, outcome.remaining,
                 outcome.trigger)
        await registration.deregister()
        if httpd is not None:
            httpd.shutdown()
        nursery.cancel_scope.cancel()
    return 0


__all__ = ["ready_line", "run_clustered", "run_standalone"]
