"""The Trio side of trunks in a clustered router: the QUIC port, room membership from etcd,
dialling, lease-expiry teardown, and the hand-off between the trunk cores and the session core.

Every router keeps a trunk to every live router (control and probes are cheap; media flows
only for shared rooms), so any of them can serve as a relay and the link map is complete.
One UDP socket (the ``quic`` address registered in etcd) carries every trunk's control
connection through :class:`~router.trunk.endpoint.TrunkEndpoint`; trunk media uses the
router's media port (the mux hands it to :meth:`TrunkBridge.receive_media`). A tick (10 per
second) dials missing trunks, closes those whose peer left the cluster view (its lease expired),
reconciles announcements, sends due probes and re-chooses each flow's path; every change is
followed by the hub's flush so participants hear about remote tracks at once.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable

import trio

from control.etcd import EtcdClient, EtcdError
from control.logs import get_logger
from control.rooms import RoomMembership, live_in
from control.schema import (
    AuditHop,
    LinkRecord,
    NodeRecord,
    RoomAuditRecord,
    link_key,
    room_audit_key,
)
from control.view import ClusterView
from router.node import RouterNode
from router.session.forwarder_adapter import ForwarderPlane
from router.transport.udp_driver import UdpDriver
from router.trunk.bridge import TrunkBridge
from router.trunk.endpoint import TrunkEndpoint, dials
from router.trunk.messages import Hello
from router.trunk.paths import LinkState
from router.trunk.quic import TrunkIdentity
from router.trunk.session import (
    Address,
    TrunkClosed,
    TrunkConfig,
    TrunkControl,
    TrunkRefused,
    TrunkUp,
)

log = get_logger("router.trunk")

TICK = 0.1
CACHE_EXPIRY = 5.0
"""Seconds between sweeps of the per-trunk packet caches (an idle flow goes within two)."""


def address_of(record: NodeRecord, protocol: str) -> Address | None:
    for a in record.addresses:
        if a.protocol == protocol:
            return (a.host, a.port)
    return None


def room_routers_of(membership: RoomMembership, view: ClusterView
                    ) -> Callable[[str], frozenset[str]]:
    """``room -> live routers`` (§10 keys; a router that is not live in the view is ignored)."""
    alive = live_in(view)

    def routers(room: str) -> frozenset[str]:
        return frozenset(r.router for r in membership.routers(room, alive))

    return routers


class TrunkService:
    """Trunks of one router process (see the module docstring)."""

    def __init__(self, node: RouterNode, identity: TrunkIdentity, view: ClusterView,
                 client: EtcdClient, jurisdiction: str, listen: tuple[str, int],
                 config: TrunkConfig | None = None) -> None:
        plane = node.core.media
        if not isinstance(plane, ForwarderPlane):
            raise RuntimeError("trunks need the full forwarder (router.forwarding)")
        self.node = node
        self.view = view
        self.client = client
        self.sock = socket.socket(socket.AF_INET6 if ":" in listen[0] else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.address: Address = self.sock.getsockname()[:2]
        self.endpoint = TrunkEndpoint(identity, Hello(node.node_id, node.config.region,
                                                      jurisdiction),
                                      self._is_registered, config)
        self.rooms_cache = RoomMembership(client)
        self.room_routers = room_routers_of(self.rooms_cache, view)
        self.bridge = TrunkBridge(node.core, plane, node.mux.outbox,  # type: ignore[arg-type]
                                  self.room_routers, random.Random(), local=node.node_id)
        node.mux.trunk_media = self.bridge.receive_media
        node.mux.trunk_envelope = self.bridge.receive_envelope
        self.driver = UdpDriver(self.sock, self.endpoint, self._after_batch)
        self.loss_aware = node.config.trunk_paths != "direct"
        self.lease: Callable[[], int] = lambda: 0
        self._caches_swept = 0.0
        """The registration's live lease (0: none); link records are bound to it."""

    def _is_registered(self, node_id: str) -> bool:
        record = self.view.node(node_id)
        return record is not None and record.kind == "router"

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.rooms_cache.run)
            nursery.start_soon(self.driver.run)
            nursery.start_soon(self.publish_links)
            nursery.start_soon(self.publish_audit)
            task_status.started()
            while True:
                await trio.sleep(TICK)
                self.tick(trio.current_time())

    def tick(self, now: float) -> None:
        """Dial what the rooms need, drop peers that left the cluster, reconcile."""
        me = self.node.node_id
        nodes = self.view.nodes()
        # Every live router: any of them may carry a room's media as a relay, and the link map
        # needs each one probed.
        wanted = {n for n, r in nodes.items() if r.kind == "router" and n != me}
        for peer in sorted(wanted):
            record = nodes.get(peer)
            if record is None or not dials(me, peer) or self.endpoint.session_for(peer):
                continue
            if any(s.expected_peer == peer and not s.closed
                   for s in self.endpoint.sessions.values()):
                continue  # dialling already
            addr = address_of(record, "quic")
            if addr is not None:
                self.endpoint.connect(peer, addr, now)
        for peer, leg in list(self.bridge.legs.items()):
            if peer not in nodes:
                log.info("trunk to %s torn down: its lease expired", peer)
                leg.session.close("peer left the cluster (lease expired)")
        self.endpoint.collect_all()
        self._handle_events(now)
        self.bridge.sync(now)
        self.bridge.probe(now)
        if now - self._caches_swept >= CACHE_EXPIRY:
            self._caches_swept = now
            self.bridge.expire_caches()
        if self.loss_aware:
            self.bridge.update_paths(self.link_map(),
                                     {n: r.jurisdiction for n, r in nodes.items()}, now)
        else:  # no jurisdictions known: no relay is admitted, every flow stays direct
            self.bridge.update_paths({}, {}, now)
        self._flush()

    def link_map(self) -> dict[tuple[str, str], LinkState]:
        """The cluster's link map from the watch cache, with this router's own fresher
        figures on top."""
        links = {pair: LinkState(r.loss, r.rtt_ms, r.jitter_ms)
                 for pair, r in self.view.links().items()}
        links.update(self.bridge.own_links(trio.current_time()))
        return links

    async def publish_links(self, interval: float = 1.0) -> None:
        """One LinkRecord per directed link to a trunk peer, under this router's lease."""
        while True:
            await trio.sleep(interval)
            lease = self.lease()
            if not lease:
                continue
            for peer, leg in list(self.bridge.legs.items()):
                figures = leg.prober.figures() if leg.prober is not None else None
                if figures is None:
                    continue
                record = LinkRecord(self.node.node_id, peer, figures.loss, figures.rtt_ms,
                                    figures.jitter_ms, figures.samples, time.time())
                try:
                    await self.client.put(link_key(self.node.node_id, peer), record.encode(),
                                          lease)
                except EtcdError as exc:
                    log.warning("could not publish link figures: %s", exc)
                    break

    def audit_record(self, room: str) -> RoomAuditRecord | None:
        """This router's audit of a room spanning routers, or None if it spans no trunk."""
        routers = self.room_routers(room)
        legs = [leg for peer, leg in self.bridge.legs.items() if peer in routers]
        if not legs:
            return None
        me = self.node.node_id
        nodes = self.view.nodes()
        own = AuditHop(me, self.node.config.region, self.endpoint.local.jurisdiction)

        def hop(node_id: str) -> AuditHop:
            if node_id == me:
                return own
            record = nodes.get(node_id)
            leg = self.bridge.legs.get(node_id)
            if record is not None:
                return AuditHop(node_id, record.region, record.jurisdiction)
            if leg is not None:
                return AuditHop(node_id, leg.region, leg.jurisdiction)
            return AuditHop(node_id, "unknown", "unknown")

        paths = sorted({hops for leg in legs for hops in leg.paths_used})
        return RoomAuditRecord(room, me, own.region, own.jurisdiction,
                               tuple(tuple(hop(n) for n in hops) for hops in paths), time.time())

    async def publish_audit(self, interval: float = 2.0) -> None:
        """Keep each spanning room's audit record in etcd while the room lives here."""
        written: dict[str, tuple[object, ...]] = {}
        while True:
            await trio.sleep(interval)
            try:
                await self.sync_audit(written)
            except EtcdError as exc:
                log.warning("could not update room audit records: %s", exc)

    async def sync_audit(self, written: dict[str, tuple[object, ...]]) -> None:
        """One pass: write a room's record when what it says or the lease changed; delete the
        records of rooms that ended here. ``written``: room -> ``(paths, lease)`` in etcd.

        Records are bound to this router's lease, so a router that dies without cleaning up
        leaves nothing behind beyond its TTL: the audit answers for live rooms and etcd does
        not grow with every room ever held (the logs keep the history)."""
        lease = self.lease()
        me = self.node.node_id
        for room in [r for r in written if r not in self.node.core.rooms]:
            await self.client.delete(room_audit_key(room, me))
            del written[room]
        if not lease:
            return  # not registered (yet, or again): nothing to bind the records to
        for room in list(self.node.core.rooms):
            record = self.audit_record(room)
            if record is None or written.get(room) == (record.paths, lease):
                continue
            await self.client.put(room_audit_key(room, me), record.encode(), lease)
            written[room] = (record.paths, lease)

    def _after_batch(self) -> None:
        self._handle_events(trio.current_time())

    def _handle_events(self, now: float) -> None:
        events = self.endpoint.events()
        for session, event in events:
            if isinstance(event, TrunkUp):
                record = self.view.node(event.peer)
                media = address_of(record, "udp") if record is not None else None
                if media is None:
                    session.close("peer has no media address")
                    continue
                log.info("trunk to %s (%s, %s) is up", event.peer, event.region,
                         event.jurisdiction)
                self.bridge.leg_up(session, media, now)
            elif isinstance(event, TrunkControl):
                if session.peer_node is not None:
                    self.bridge.on_message(session.peer_node, event.message, now)
            elif isinstance(event, TrunkRefused):
                log.warning("trunk refused (%s): %s", event.reason, event.detail)
            elif isinstance(event, TrunkClosed):
                log.warning("trunk to %s closed: %s", session.peer_node, event.reason)
                leg = self.bridge.legs.get(session.peer_node or "")
                if leg is not None and leg.session is session:
                    self.bridge.leg_down(leg.peer, now)
        if events:
            self._flush()

    def _flush(self) -> None:
        self.node.hub.after_change()
        self.node.driver.notify()
        self.driver.notify()


__all__ = ["TrunkService", "address_of", "room_routers_of"]
