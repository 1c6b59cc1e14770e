"""Room placement: which routers serve a room, decided per participant, atomically.

A room may span routers (docs/architecture.md §10): its record ``/regio/v1/rooms/<room>``
fixes policy and mode for the room's life, and one key per router serving it,
``/regio/v1/rooms/<room>/routers/<node>``, lists its routers. The front door decides, for each
participant, which router serves them (``choose``, built from :mod:`geo.selection`: the nearest
router the participant's own jurisdiction and the room's policy allow, a router already in the
room preferred within a region); this module makes that decision stick:

* **One transaction per change.** Adding a router writes the membership key and re-writes the
  room record in one transaction guarded on the room record's mod revision (create-if-absent
  for a new room) and on the chosen router's node key and lease. Every addition to one room is
  therefore serialised through the room record: two front doors racing cannot both add a
  router on a stale picture; the loser re-reads and decides again on what the winner wrote, so
  concurrent front doors agree (one router per region until it is loaded).
* **Residency is never widened.** The policy comes from the stored record once it exists, and
  a router whose jurisdiction disagrees with its region's, or that is not in the EEA for an
  ``eea`` room, is refused here again whatever ``choose`` said.
* **Squatting expires.** What the front door writes is bound to a short *pending* lease
  (:data:`PENDING_TTL`), not to a router's lease: a placement nobody connects to is gone within
  that time. A router binds its own membership key to its own lease once a participant
  connected there and keeps the room record's lease alive while it has participants
  (:mod:`router.rooms`), so the room key lives while the room has participants plus at most
  one pending TTL of grace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import trio

from control import schema
from control.etcd import Compare, EtcdClient, EtcdUnavailable, Get, KeyValue, Put
from control.jurisdictions import DEFAULT_FAIL_CLOSED as EEA
from control.logs import get_logger
from control.rooms import Liveness, live_in, parse_room_key
from control.schema import NodeRecord, RoomRecord, RoomRouterRecord, SchemaError
from control.view import ClusterView

log = get_logger("control.placement")

PENDING_TTL = 30
"""Seconds a placement nobody connected to survives (the front door's pending lease)."""


class PlacementError(Exception):
    """A room could not be placed."""


class NoRouterAvailable(PlacementError):
    """No router the rules allow accepts the participant (the front door answers 503)."""


@dataclass(frozen=True, slots=True)
class RoomState:
    """A room's record and routers as read at one revision (or from a watch cache)."""

    record_kv: KeyValue | None = None
    members: dict[str, RoomRouterRecord] = field(default_factory=dict)

    @property
    def record(self) -> RoomRecord | None:
        return RoomRecord.decode(self.record_kv.value) if self.record_kv is not None else None


@dataclass(frozen=True, slots=True)
class Assignment:
    """The router serving one participant, and what this call wrote."""

    room: RoomRecord
    router: RoomRouterRecord
    created_room: bool
    added_router: bool


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a room lives (its first router) and whether this call created it."""

    room: RoomRecord
    created: bool


Chooser = Callable[[str, Sequence[RoomRouterRecord]], NodeRecord | None]
"""``choose(policy, live_members)``: the router for this participant under the room's
``policy`` (a member, or a router to add), or None when the rules allow none."""


def room_state(room: str, kvs: Iterable[KeyValue]) -> RoomState:
    """Decode the keys of one room (others, e.g. of ``room2``, are skipped)."""
    record_kv: KeyValue | None = None
    members: dict[str, RoomRouterRecord] = {}
    for kv in kvs:
        parsed = parse_room_key(kv.key)
        if parsed is None or parsed.room != room:
            continue
        if parsed.router is None:
            record_kv = kv
            continue
        try:
            member = RoomRouterRecord.decode(kv.value)
        except SchemaError as exc:
            log.warning("ignoring unreadable room router record: %s", exc)
            continue
        if member.router == parsed.router:
            members[member.router] = member
    return RoomState(record_kv, members)


async def read_room(client: EtcdClient, room: str) -> RoomState:
    """The room's record and routers in one range read (one revision)."""
    _, kvs = await client.get_prefix(schema.room_key(room))
    return room_state(room, kvs)


async def get_room(client: EtcdClient, room: str) -> RoomRecord | None:
    """The room's record, if any."""
    kv = await client.get(schema.room_key(room))
    return RoomRecord.decode(kv.value) if kv is not None else None


def residency_ok(view: ClusterView, node: NodeRecord, policy: str) -> bool:
    """The last word on a router for a room: consistent with the topology, and in the EEA
    for an ``eea`` room; an unknown policy allows nothing."""
    topology = view.topology()
    if topology is None or node.kind != "router":
        return False
    region = topology.regions.get(node.region)
    if region is None or region.jurisdiction != node.jurisdiction:
        return False
    if policy == "eea":
        return node.jurisdiction == EEA
    return policy == "nearest"


async def assign_router(
    client: EtcdClient,
    view: ClusterView,
    room: str,
    choose: Chooser,
    *,
    policy: str = "eea",
    mode: str = "sfu",
    state: RoomState | None = None,
    alive: Liveness | None = None,
    pending_ttl: int = PENDING_TTL,
    pending_lease: Callable[[], Awaitable[int]] | None = None,
    attempts: int = 8,
    retry_delay: float = 0.05,
) -> Assignment:
    """Give a participant of ``room`` a router: a live member, or a new one added atomically.

    ``state`` is what the caller already knows (its watch cache); it is only trusted as far as
    the transaction's guards confirm it, and re-read from etcd when they fail. ``policy`` and
    ``mode`` apply only if this call creates the room. ``pending_lease`` supplies the lease
    to write under (:class:`PendingLeases` shares one per second); by default a fresh lease of
    ``pending_ttl`` seconds is granted.
    """
    alive = alive or live_in(view)
    room_key = schema.room_key(room)
    lease = 0
    for _ in range(attempts):
        if state is None:
            state = await read_room(client, room)
        record = state.record
        effective = record.policy if record is not None else policy
        live = [m for m in state.members.values() if alive(m.router)]
        node = choose(effective, live)
        if node is None:
            raise NoRouterAvailable(f"no router accepts participants of this {effective} room")
        if not residency_ok(view, node, effective):
            raise NoRouterAvailable(f"router {node.node_id} may not serve a {effective} room")
        if record is not None and node.node_id in state.members:
            return Assignment(record, state.members[node.node_id], False, False)
        node_kv = view.node_kv(node.node_id)
        if node_kv is None or not node_kv.lease:
            state = None
            await trio.sleep(retry_delay)
            continue
        if not lease:
            # One pending lease per call, reused by retries; unused, it expires with no keys.
            lease = await (pending_lease() if pending_lease is not None
                           else client.grant(pending_ttl))
        now = time.time()
        member = RoomRouterRecord(room, node.node_id, node.region, node.jurisdiction, now)
        member_key = schema.room_router_key(room, node.node_id)
        node_key = schema.node_key(node.node_id)
        guards = [Compare(node_key, "version", ">", 0),
                  Compare(node_key, "lease", "==", node_kv.lease),
                  Compare(member_key, "version", "==", 0)]
        if record is None or state.record_kv is None:
            stored = RoomRecord(room, node.node_id, node.region, policy, now, mode)
            guards.append(Compare(room_key, "version", "==", 0))
            room_put = Put(room_key, stored.encode(), lease)
        else:
            stored = record
            guards.append(Compare(room_key, "mod", "==", state.record_kv.mod_revision))
            room_put = Put(room_key, state.record_kv.value, state.record_kv.lease)
        try:
            result = await client.txn(guards, [room_put, Put(member_key, member.encode(), lease)],
                                      [Get(room_key, prefix=True)])
        except EtcdUnavailable:
            # Uncertain: if it was applied, the re-read finds the member and returns it.
            state = None
            await trio.sleep(retry_delay)
            continue
        if result.succeeded:
            log.info("room %s: router %s in %s added (%s)", "created" if record is None
                     else "grown", node.node_id, node.region, effective)
            return Assignment(stored, member, record is None, True)
        fresh = room_state(room, result.ranges[0] if result.ranges else ())
        if fresh == state or (fresh.record_kv is None and not fresh.members):
            # The room did not change: the node guard failed (our view of that router is
            # behind). Give the view a moment to catch up.
            await trio.sleep(retry_delay)
        state = fresh
    raise PlacementError(f"could not place a participant after {attempts} attempts")


class PendingLeases:
    """One pending lease shared by every placement of a short window (``reuse`` seconds).

    Granting a lease is an etcd round trip; a front door creating many rooms would pay it per
    room. Sharing one lease per second costs nothing in safety: a key written under it expires
    between ``ttl - reuse`` and ``ttl`` seconds later unless a router took it over.
    """

    def __init__(self, client: EtcdClient, ttl: int = PENDING_TTL, reuse: float = 1.0) -> None:
        self.client = client
        self.ttl = ttl
        self.reuse = min(reuse, ttl / 4)
        self._lease = 0
        self._granted = -math.inf
        self._lock = trio.Lock()

    async def __call__(self) -> int:
        async with self._lock:
            if trio.current_time() - self._granted >= self.reuse:
                self._lease = await self.client.grant(self.ttl)
                self._granted = trio.current_time()
            return self._lease


def least_loaded(view: ClusterView, regions: Iterable[str] | None = None,
                 prefer: str | None = None) -> Chooser:
    """A simple chooser: a live member in ``regions`` if there is one with room, else the
    least-loaded available router there (``prefer`` first). Used where no client location is
    known (tools, tests); the front door chooses with :mod:`geo.selection`."""
    allowed = None if regions is None else set(regions)

    def choose(policy: str, members: Sequence[RoomRouterRecord]) -> NodeRecord | None:
        candidates = [n for n in view.available("router", regions=allowed)
                      if residency_ok(view, n, policy)]
        names = {m.router for m in members}
        candidates.sort(key=lambda n: (n.node_id not in names, n.node_id != prefer))
        return candidates[0] if candidates else None

    return choose


async def place_room(
    client: EtcdClient,
    view: ClusterView,
    room: str,
    *,
    regions: Iterable[str] | None = None,
    policy: str = "eea",
    mode: str = "sfu",
    prefer: str | None = None,
    attempts: int = 8,
    retry_delay: float = 0.1,
    pending_ttl: int = PENDING_TTL,
) -> Placement:
    """Place ``room`` on a router in ``regions`` (all regions if None), or return where it is."""
    assignment = await assign_router(
        client, view, room, least_loaded(view, regions, prefer), policy=policy, mode=mode,
        attempts=attempts, retry_delay=retry_delay, pending_ttl=pending_ttl)
    return Placement(assignment.room, assignment.created_room)


# -- the router's side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldRoom:
    """A room record as a router serving it sees it: the record and the lease it lives on."""

    record: RoomRecord
    lease: int
    created: bool


async def hold_room(client: EtcdClient, room: str, router: str, region: str, policy: str,
                    mode: str, *, ttl: int = PENDING_TTL, attempts: int = 8) -> HeldRoom:
    """The room's record, created under a fresh lease of ``ttl`` seconds if it is absent.

    A router calls this when a participant connects (the record may have expired between the
    join and the connection, or with a long etcd outage) and keeps the returned lease alive
    while it has participants of the room.
    """
    key = schema.room_key(room)
    lease = 0
    for _ in range(attempts):
        kv = await client.get(key)
        if kv is not None:
            return HeldRoom(RoomRecord.decode(kv.value), kv.lease, False)
        if not lease:
            lease = await client.grant(ttl)
        record = RoomRecord(room, router, region, policy, time.time(), mode)
        result = await client.txn([Compare(key, "version", "==", 0)],
                                  [Put(key, record.encode(), lease)])
        if result.succeeded:
            return HeldRoom(record, lease, True)
    raise PlacementError(f"could not hold room {room!r} after {attempts} attempts")


__all__ = [
    "PENDING_TTL",
    "Assignment",
    "Chooser",
    "HeldRoom",
    "NoRouterAvailable",
    "PendingLeases",
    "Placement",
    "PlacementError",
    "RoomState",
    "assign_router",
    "get_room",
    "hold_room",
    "least_loaded",
    "place_room",
    "read_room",
    "residency_ok",
    "room_state",
]
