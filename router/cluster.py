"""The clustered router: etcd registration (kind ``router``), token keys from the cluster view,
placement upkeep, and drain on SIGTERM or ``regio node drain``.

Placement is honoured through the token: the front door places a room (etcd transaction bound to
this router's lease) and signs a join token naming this node; the core refuses tokens naming
another node. The router keeps placements true (:mod:`router.rooms`): it claims a room's key
under its current lease when the room opens here, releases it when the room empties, and after
its lease was replaced (etcd lost it) it re-binds the rooms it still hosts; a room that another
router took meanwhile is a stray here, and its participants are sent to rejoin.
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
from control.secrets import require_secrets
from control.stopsignals import StopSignals
from control.view import ClusterView, open_view
from router.config import RouterConfig
from router.node import RouterNode
from router.rooms import MOVED_TEXT
from router.session.messages import E_WRONG_ROUTER

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
        record = new_record(node.node_id, "router", config.region, jurisdiction,
                            addresses=node.node_addresses(), capacity=config.capacity)
        registration = NodeRegistration(client, record, RegistryConfig(ttl=config.lease_ttl))
        events = registration.events()
        await nursery.start(registration.run)
        drain = DrainController(registration, lambda: node.core.participant_count,
                                DrainConfig(deadline=config.drain_deadline,
                                            handle_sigterm=handle_sigterm),
                                signals=signals)
        nursery.start_soon(node.follow_rooms, client, lambda: _live_lease(registration))
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
                for room in lost:  # the copies here are strays: send them where the room is
                    node.hub.evict_room(room, E_WRONG_ROUTER, MOVED_TEXT)
                    node.core.stats.room_claims["elsewhere"] += 1


__all__ = ["run_clustered"]
