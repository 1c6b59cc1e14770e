"""Keep etcd's view of the rooms this router serves equal to what it actually serves.

A room may span routers (docs/architecture.md §10). The front door writes a router's membership
key ``/regio/v1/rooms/<room>/routers/<node>`` under a short *pending* lease when it sends a
participant here; the router is where participants really arrive and leave, so it has the last
word on both ends:

* a room **opens** here (first participant with a valid token): the room record is held
  (:func:`~control.placement.hold_room`: re-created under a fresh room lease if it expired
  between the join and the connection), and this router's membership key is bound to its own
  lease (:func:`~control.rooms.bind_router`), so it lives as long as this router does, not as
  long as the pending lease;
* while the room has participants here, the router keeps the **room record's lease** alive
  (:meth:`RoomPlacements.refresh`, every third of its TTL). The room key therefore lives while
  any router of the room has participants, plus at most one TTL of grace; a room whose lease
  expired anyway (etcd partition) is held again;
* the record says ``eea`` and this router is not in the EEA (a token from before the record
  changed): residency wins, the participants are sent away with ``wrong_router`` (close 4003)
  and rejoin through the front door, which gives them an EEA router. Counted as ``refused``;
* a room **closes** here (its last participant left): this router's membership is deleted.

A router serving part of a spanning room is never "elsewhere": other routers of the room are
peers, not competitors. etcd being unreachable never stops a room (the media plane does not
wait on etcd): the failure is logged and counted, and every hosted room is held again when the
registration gets a new lease (``router.cluster``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from control.etcd import EtcdClient, EtcdError
from control.jurisdictions import DEFAULT_FAIL_CLOSED as EEA
from control.logs import get_logger
from control.placement import PENDING_TTL, PlacementError, hold_room
from control.rooms import bind_router, leave_room
from control.schema import RoomRouterRecord, SchemaError
from router.session import RoomNotice
from router.session import messages as m
from router.session.stats import SessionStats

log = get_logger("router.rooms")

Evict = Callable[[str, str, str], int]
"""``evict(room, code, text)``: send a room's participants away (see ``Hub.evict_room``)."""

MOVED_TEXT = "this room may not be served by this router; join again through the front door"


class RoomPlacements:
    """Applies the core's room notices to etcd, one at a time, in order."""

    def __init__(
        self,
        client: EtcdClient,
        node_id: str,
        region: str,
        jurisdiction: str,
        lease: Callable[[], int],
        evict: Evict,
        stats: SessionStats,
        *,
        room_ttl: int = PENDING_TTL,
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.region = region
        self.jurisdiction = jurisdiction
        self.lease = lease
        self.evict = evict
        self.stats = stats
        self.room_ttl = room_ttl
        self.held: dict[str, tuple[RoomNotice, int]] = {}
        """Rooms served here: the notice that opened each, and its room record's lease."""

    async def follow(self, notices: trio.MemoryReceiveChannel[RoomNotice]) -> None:
        """Run for the process's life (notices come from the hub's flush)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.refresh_forever)
            async for notice in notices:
                if notice.opened:
                    await self.opened(notice)
                else:
                    await self.closed(notice.room)
            nursery.cancel_scope.cancel()

    async def opened(self, notice: RoomNotice) -> str:
        """Hold the record of a room that just opened here and bind our membership."""
        lease = self.lease()
        self.held[notice.room] = (notice, 0)
        if not lease:
            # Not registered right now: the new lease's reclaim holds every served room.
            outcome = "deferred"
        else:
            try:
                outcome = await self._hold(notice, lease)
            except (EtcdError, PlacementError, SchemaError) as exc:
                log.warning("could not record a room served here: %s", exc)
                outcome = "failed"
        self.stats.room_claims[outcome] += 1
        return outcome

    async def _hold(self, notice: RoomNotice, lease: int) -> str:
        held = await hold_room(self.client, notice.room, self.node_id, self.region,
                               notice.policy, notice.mode, ttl=self.room_ttl)
        if held.record.policy == "eea" and self.jurisdiction != EEA:
            self.held.pop(notice.room, None)
            gone = self.evict(notice.room, m.E_WRONG_ROUTER, MOVED_TEXT)
            log.warning("an eea room opened on a router outside the EEA; %d participant(s) "
                        "sent to rejoin", gone)
            return "refused"
        if notice.room not in self.held:
            return "closed"  # it closed while we were writing: closed() removes the key
        self.held[notice.room] = (notice, held.lease)
        member = RoomRouterRecord(notice.room, self.node_id, self.region, self.jurisdiction,
                                  time.time())
        wrote = await bind_router(self.client, member, lease)
        if notice.room not in self.held:
            # Closed while we were binding: take the membership back out.
            await leave_room(self.client, notice.room, self.node_id)
            return "closed"
        if held.created:
            return "created"
        return "joined" if wrote else "held"

    async def closed(self, room: str) -> None:
        self.held.pop(room, None)
        try:
            await leave_room(self.client, room, self.node_id)
        except (EtcdError, SchemaError) as exc:
            log.warning("could not remove this router from a room: %s", exc)

    async def refresh(self) -> int:
        """Keep alive the record lease of every room served here; hold again any that expired.
        Returns how many had to be held again."""
        again = 0
        for room, (notice, room_lease) in list(self.held.items()):
            try:
                alive = room_lease and await self.client.keepalive(room_lease) > 0
                if not alive and self.lease() and room in self.held:
                    again += 1
                    outcome = await self._hold(notice, self.lease())
                    self.stats.room_claims[f"re-{outcome}"] += 1
            except (EtcdError, PlacementError, SchemaError) as exc:
                log.warning("could not keep a room record alive: %s", exc)
        return again

    async def refresh_forever(self) -> None:
        while True:
            await trio.sleep(self.room_ttl / 3)
            await self.refresh()

    async def reclaim(self, lease: int) -> None:
        """After the registration got a new lease: bind every served room to it."""
        for room, (notice, _) in list(self.held.items()):
            try:
                outcome = await self._hold(notice, lease)
            except (EtcdError, PlacementError, SchemaError) as exc:
                log.warning("could not re-record a room served here: %s", exc)
                outcome = "failed"
            if room in self.held or outcome == "refused":
                self.stats.room_claims[f"re-{outcome}"] += 1


__all__ = ["MOVED_TEXT", "RoomPlacements"]
