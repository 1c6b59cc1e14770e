"""Room placement: which router hosts a room, decided once, atomically, by whoever asks first.

Several front doors may see the first join of one room at the same moment. Each proposes the
least-loaded allowed router and tries a single create-if-absent transaction; exactly one
succeeds and everyone else reads back the winner, so all joins agree on one router. The room key
is bound to the hosting router's lease (guarded on that lease in the same transaction, so a
stale view cannot bind a room to a dead lease): the room disappears with its router.
Draining routers are never proposed; a room already placed on one stays there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import trio

from control import schema
from control.etcd import Compare, Delete, EtcdClient, EtcdUnavailable, Get, Put
from control.logs import get_logger
from control.schema import NodeRecord, RoomRecord
from control.view import ClusterView

log = get_logger("control.placement")


class PlacementError(Exception):
    """A room could not be placed."""


class NoRouterAvailable(PlacementError):
    """No router in the allowed regions accepts new rooms (the front door answers 503)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a room lives and whether this call created the placement."""

    room: RoomRecord
    created: bool


async def get_room(client: EtcdClient, room: str) -> RoomRecord | None:
    """The room's current placement, if any."""
    kv = await client.get(schema.room_key(room))
    return RoomRecord.decode(kv.value) if kv is not None else None


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
) -> Placement:
    """Place ``room`` on a router in ``regions`` (all regions if None), or return where it is.

    ``regions`` is the residency decision, made by the caller (the front door) from the
    client's jurisdiction and the room policy; placement never widens it. ``prefer`` names
    the router the caller chose, tried first while it still accepts rooms. A router whose
    record claims a jurisdiction other than its region's is never used: a misconfigured node
    must not become a residency breach.
    """
    key = schema.room_key(room)
    allowed = None if regions is None else list(regions)
    for _ in range(attempts):
        candidates = _consistent(view, view.available("router", regions=allowed))
        if prefer is not None:
            candidates.sort(key=lambda n: n.node_id != prefer)
        if not candidates:
            existing = await get_room(client, room)
            if existing is not None:
                return Placement(existing, created=False)
            raise NoRouterAvailable(
                f"no router accepts rooms in {', '.join(allowed) if allowed else 'any region'}"
            )
        choice = candidates[0]
        node_kv = view.node_kv(choice.node_id)
        if node_kv is None or not node_kv.lease:
            await trio.sleep(retry_delay)
            continue
        node_key = schema.node_key(choice.node_id)
        record = RoomRecord(room, choice.node_id, choice.region, policy, time.time(), mode)
        try:
            result = await client.txn(
                [
                    Compare(key, "version", "==", 0),
                    Compare(node_key, "version", ">", 0),
                    Compare(node_key, "lease", "==", node_kv.lease),
                ],
                [Put(key, record.encode(), node_kv.lease)],
                [Get(key)],
            )
        except EtcdUnavailable:
            # Uncertain: if it was applied, the next attempt reads it back as the placement.
            await trio.sleep(retry_delay)
            continue
        if result.succeeded:
            log.info("room placed on %s in %s", choice.node_id, choice.region)
            return Placement(record, created=True)
        existing_kvs = result.ranges[0] if result.ranges else ()
        if existing_kvs:
            return Placement(RoomRecord.decode(existing_kvs[0].value), created=False)
        # The chosen router's lease changed under us: our view is behind. Let it catch up.
        await trio.sleep(retry_delay)
    raise PlacementError(f"could not place room after {attempts} attempts")


def _consistent(view: ClusterView, nodes: list[NodeRecord]) -> list[NodeRecord]:
    topology = view.topology()
    if topology is None:
        return []
    return [
        n
        for n in nodes
        if n.region in topology.regions
        and topology.regions[n.region].jurisdiction == n.jurisdiction
    ]


async def release_room(client: EtcdClient, room: str, router: str) -> bool:
    """Delete the room's placement if ``router`` still hosts it (the room ended)."""
    key = schema.room_key(room)
    kv = await client.get(key)
    if kv is None or RoomRecord.decode(kv.value).router != router:
        return False
    result = await client.txn([Compare(key, "mod", "==", kv.mod_revision)], [Delete(key)])
    return result.succeeded


ClaimOutcome = Literal["created", "rebound", "held", "elsewhere"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What :func:`claim_room` found: the placement as it now stands, and what was done.

    ``created``: the key was absent and now names ``router`` under ``lease``; ``rebound``: it
    named ``router`` under an older lease and is now bound to ``lease``; ``held``: it already
    named ``router`` under ``lease``; ``elsewhere``: it names another router (left untouched).
    """

    room: RoomRecord
    outcome: ClaimOutcome


async def claim_room(client: EtcdClient, room: str, router: str, lease: int, region: str,
                     policy: str = "eea", mode: str = "sfu", *, attempts: int = 8) -> Claim:
    """Make ``room``'s placement name ``router`` under its current ``lease``, unless another
    router holds it.

    A router calls this when it opens a room itself (first participant with a valid token) and
    for every room it still hosts after its lease was replaced. Without it, a room re-created on
    a restarted router would stay bound to the dead process's lease, vanish when that lease
    expires, and the next joiner could be placed on another router (a split room). Create-if-
    absent, then a rebind guarded on the key's mod revision, so a concurrent placement by a front
    door is never overwritten.
    """
    key = schema.room_key(room)
    for _ in range(attempts):
        record = RoomRecord(room, router, region, policy, time.time(), mode)
        result = await client.txn(
            [Compare(key, "version", "==", 0)], [Put(key, record.encode(), lease)], [Get(key)]
        )
        if result.succeeded:
            return Claim(record, "created")
        kvs = result.ranges[0] if result.ranges else ()
        if not kvs:
            continue  # deleted between the compare and the read: try creating again
        kv = kvs[0]
        existing = RoomRecord.decode(kv.value)
        if existing.router != router:
            return Claim(existing, "elsewhere")
        if kv.lease == lease:
            return Claim(existing, "held")
        rebound = await client.txn(
            [Compare(key, "mod", "==", kv.mod_revision)], [Put(key, kv.value, lease)]
        )
        if rebound.succeeded:
            return Claim(existing, "rebound")
    raise PlacementError(f"could not claim room {room!r} after {attempts} attempts")


async def rebind_rooms(client: EtcdClient, router: str, lease: int, rooms: Iterable[str],
                       region: str, policy: str = "eea", mode: str = "sfu") -> list[str]:
    """After re-registering with a new lease, put back the rooms this router still hosts.

    Returns the rooms that another router took meanwhile (their participants must move).
    """
    lost: list[str] = []
    for room in rooms:
        claim = await claim_room(client, room, router, lease, region, policy, mode)
        if claim.outcome == "elsewhere":
            lost.append(room)
    return lost
