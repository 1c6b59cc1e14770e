"""The clustered router: etcd registration (kind ``router``), token keys from the cluster view,
placement upkeep, and drain on SIGTERM or ``regio node drain``.

Placement is honoured through the token: the front door places a room (etcd transaction bound to
this router's lease) and signs a join token naming this node; the core refuses tokens naming
another node. The router keeps placements true: it releases a room's key when the room empties
here, and after its lease was replaced (etcd lost it) it re-binds the rooms it still hosts.
"""

from __future__ import annotations

import trio

from control.drain import DrainConfig, DrainController
from control.etcd import EtcdClient, EtcdConfig
from control.logs import get_logger
from control.placement import rebind_rooms
from control.registry import (
    NodeRegistration,
    Registered,
    RegistryConfig,
    RegistryEvent,
    new_record,
)
from control.view import ClusterView, open_view
from router.config import RouterConfig
from router.node import RouterNode

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
        view = await open_view(client, nursery)
        jurisdiction = jurisdiction_of(view, config.region)
        node = RouterNode(config, lambda: view.keyset("token"))
        await node.start(nursery)
        record = new_record(node.node_id, "router", config.region, jurisdiction,
                            addresses=node.node_addresses(), capacity=config.capacity)
        registration = NodeRegistration(client, record, RegistryConfig(ttl=config.lease_ttl))
        events = registration.events()
        await nursery.start(registration.run)
        drain = DrainController(registration, lambda: node.core.participant_count,
                                DrainConfig(deadline=config.drain_deadline,
                                            handle_sigterm=handle_sigterm))
        nursery.start_soon(node.follow_rooms, client)
        nursery.start_soon(_publish_load, node, registration)
        nursery.start_soon(_rebind_on_new_lease, node, client, events, config.region)
        print(node.addresses.ready_line(), flush=True)
        log.info("router %s ready in %s", node.node_id, config.region)
        task_status.started(node)

        async def follow_drain() -> None:
            await drain.started.wait()
            node.begin_drain()

        nursery.start_soon(follow_drain)
        outcome = await drain.run()
        log.info("drain finished (%s, %d left, trigger %s)", outcome.reason, outcome.remaining,
                 outcome.trigger)
        await node.finish()
        await registration.deregister()
        nursery.cancel_scope.cancel()
    return 0


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


async def _rebind_on_new_lease(
    node: RouterNode,
    client: EtcdClient,
    events: trio.MemoryReceiveChannel[RegistryEvent],
    region: str,
) -> None:
    async for event in events:
        if isinstance(event, Registered) and event.reregistered:
            rooms = {name: (room.policy, room.mode) for name, room in node.core.rooms.items()}
            for policy, mode in set(rooms.values()):
                lost = await rebind_rooms(client, node.node_id, event.lease,
                                          [r for r, pm in rooms.items() if pm == (policy, mode)],
                                          region, policy, mode)
                if lost:
                    log.warning("%d rooms were placed elsewhere while our lease was lost",
                                len(lost))


__all__ = ["run_clustered"]
