"""The clustered router: etcd registration (kind ``router``), token keys from the cluster view,
placement upkeep, and drain on SIGTERM or ``regio node drain``.

Placement is honoured through the token: the front door assigns each participant a router (an
etcd transaction adding the router to the room, docs/architecture.md §10) and signs a join token
naming this node; the core refuses tokens naming another node. The router keeps its membership
true (:mod:`router.rooms`): bound to its own lease when a room opens here, removed when its
share of the room empties, and bound again after its lease was replaced (etcd lost it).
"""

from __future__ import annotations

from pathlib import Path

import trio

from control.drain import DrainConfig, DrainController
from control.etcd import EtcdClient, EtcdConfig
from control.logs import get_logger
from control.registry import (
    NodeRegistration,
    Registered,
    RegistryConfig,
    RegistryEvent,
    new_record,
)
from control.registry_metrics import RegistrationCollector
from control.schema import NodeAddress
from control.sdnotify import SystemdNotifier, run_watchdog
from control.secrets import require_secrets
from control.stopsignals import StopSignals
from control.view import ClusterView, open_view
from router.config import RouterConfig
from router.node import RouterNode, settle_heap
from router.trunk.metrics import TrunkCollector
from router.trunk.quic import TrunkIdentity
from router.trunk.service import TrunkService

log = get_logger("router.cluster")

LOAD_INTERVAL = 1.0


def jurisdiction_of(view: ClusterView, region: str) -> str:
    topology = view.topology()
    if topology is None or region not in topology.regions:
        raise LookupError(f"region {region!r} is not in the cluster topology")
    return topology.regions[region].jurisdiction


async def run_clustered(config: RouterConfig, etcd: EtcdConfig, *,
                        handle_sigterm: bool = True,
                        task_status: trio.TaskStatus[RouterNode] = trio.TASK_STATUS_IGNORED,
                        ) -> int:
    """Serve as a cluster member until drained (or cancelled)."""
    async with EtcdClient(etcd) as client, trio.open_nursery() as nursery:
        signals = StopSignals() if handle_sigterm else None
        if signals is not None:
            await nursery.start(signals.run)
        view = await open_view(client, nursery)
        require_secrets(view, ("token",))
        jurisdiction = jurisdiction_of(view, config.region)
        node = RouterNode(config, lambda: view.keyset("token"))
        await node.start(nursery)
        addresses = node.node_addresses()
        if config.trunk_cert:
            trunks = _trunk_service(config, node, view, client, jurisdiction)
            await nursery.start(trunks.run)
            public = config.public_ip or config.listen
            addresses += (NodeAddress("quic", public, trunks.address[1]),)
            node.addresses.extra["trunks"] = trunks
            if node.metrics_registry is not None:
                node.metrics_registry.register(TrunkCollector(trunks, config.region))
        record = new_record(node.node_id, "router", config.region, jurisdiction,
                            addresses=addresses, capacity=config.capacity)
        registration = NodeRegistration(client, record, RegistryConfig(ttl=config.lease_ttl))
        if config.trunk_cert:
            trunks.lease = lambda: _live_lease(registration)
        if node.metrics_registry is not None:
            node.metrics_registry.register(RegistrationCollector(registration))
        events = registration.events()
        await nursery.start(registration.run)
        drain = DrainController(registration, lambda: node.core.participant_count,
                                DrainConfig(deadline=config.drain_deadline,
                                            handle_sigterm=handle_sigterm),
                                signals=signals)
        nursery.start_soon(node.follow_rooms, client, lambda: _live_lease(registration),
                           jurisdiction)
        nursery.start_soon(_publish_load, node, registration)
        nursery.start_soon(_reclaim_on_new_lease, node, events)
        settle_heap()
        print(node.addresses.ready_line(), flush=True)
        log.info("router %s ready in %s", node.node_id, config.region)
        systemd = SystemdNotifier.from_environment()
        systemd.ready(f"router {node.node_id} serving in {config.region}")
        nursery.start_soon(run_watchdog, systemd,
                           lambda: node.healthy() and registration.state != "fenced")
        task_status.started(node)

        async def follow_drain() -> None:
            await drain.started.wait()
            node.begin_drain()
            systemd.stopping(f"draining: {node.core.participant_count} participants left")

        nursery.start_soon(follow_drain)
        outcome = await drain.run()
        log.info("drain finished (%s, %d left, trigger %s)", outcome.reason, outcome.remaining,
                 outcome.trigger)
        await node.finish()
        await registration.deregister()
        nursery.cancel_scope.cancel()
    return 0


def _trunk_service(config: RouterConfig, node: RouterNode, view: ClusterView,
                   client: EtcdClient, jurisdiction: str) -> TrunkService:
    if not (config.trunk_key and config.trunk_ca):
        raise ValueError("--trunk-cert needs --trunk-key and --trunk-ca")
    identity = TrunkIdentity.load(Path(config.trunk_cert), Path(config.trunk_key),
                                  Path(config.trunk_ca))
    return TrunkService(node, identity, view, client, jurisdiction,
                        (config.listen, config.trunk_port))


def _live_lease(registration: NodeRegistration) -> int:
    """The lease to bind room keys to, or 0 while the registration has none it trusts."""
    return registration.lease if registration.state == "registered" else 0


async def _publish_load(node: RouterNode, registration: NodeRegistration) -> None:
    """Load in the registry's unit (participants; capacity is participants too), with the
    forwarded packet rate beside it for operators."""
    last_out = node.core.stats.packets_out
    while True:
        await trio.sleep(LOAD_INTERVAL)
        out = node.core.stats.packets_out
        pps = max(0, out - last_out) / LOAD_INTERVAL
        last_out = out
        registration.set_load(node.core.participant_count, {"forwarded_pps": round(pps, 1)})


async def _reclaim_on_new_lease(node: RouterNode,
                                events: trio.MemoryReceiveChannel[RegistryEvent]) -> None:
    async for event in events:
        if isinstance(event, Registered) and event.reregistered and node.placements:
            await node.placements.reclaim(event.lease)


__all__ = ["run_clustered"]
