"""Keep etcd's room placements equal to the rooms this router actually hosts.

The front door places a room (a key bound to the router's lease) before the first join, but the
router is where rooms really open and close, so it has the last word on both ends:

* a room **opens** here (first participant with a valid token): :func:`~control.placement.
  claim_room` makes the key exist and name this router under its *current* lease. Without that,
  a room re-created after a restart (same node id, new process, new lease) stays bound to the
  dead process's lease; when that lease expires the key goes, and the next joiner may be placed
  on another router of the region: a split room;
* the key names **another router** (the token was issued before a re-placement, e.g. while this
  router was away longer than its lease): the room here is the stray copy. Its participants are
  sent away with ``wrong_router`` (close 4003) and rejoin through the front door, which sends
  them where everyone else is. Counted as ``elsewhere`` in ``regio_router_room_claims``;
* a room **closes** here: its key is released if it still names this router.

etcd being unreachable never stops a room (the media plane does not wait on etcd): the failure
is logged and counted, and the rooms are claimed again when the registration gets a new lease
(``router.cluster``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from control.etcd import EtcdClient, EtcdError
from control.logs import get_logger
from control.placement import PlacementError, claim_room, release_room
from control.schema import SchemaError, room_router_key
from router.session import RoomNotice
from router.session import messages as m
from router.session.stats import SessionStats

log = get_logger("router.rooms")

Evict = Callable[[str, str, str], int]
"""``evict(room, code, text)``: send a room's participants away (see ``Hub.evict_room``)."""

MOVED_TEXT = "this room is hosted by another router now; join again through the front door"


class RoomPlacements:
    """Applies the core's room notices to etcd, one at a time, in order."""

    def __init__(
        self,
        client: EtcdClient,
        node_id: str,
        region: str,
        lease: Callable[[], int],
        evict: Evict,
        stats: SessionStats,
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.region = region
        self.lease = lease
        self.evict = evict
        self.stats = stats

    async def follow(self, notices: trio.MemoryReceiveChannel[RoomNotice]) -> None:
        """Run for the process's life (notices come from the hub's flush)."""
        async for notice in notices:
            if notice.opened:
                await self.opened(notice)
            else:
                await self.closed(notice.room)

    async def opened(self, notice: RoomNotice) -> str:
        """Claim the placement of a room that just opened here; returns the outcome."""
        lease = self.lease()
        if not lease:
            # Not registered right now: the new lease's rebind claims every hosted room.
            outcome = "deferred"
        else:
            try:
                claim = await claim_room(
                    self.client,
                    notice.room,
                    self.node_id,
                    lease,
                    self.region,
                    notice.policy,
                    notice.mode,
                )
                outcome = claim.outcome
            except (EtcdError, PlacementError, SchemaError) as exc:
                log.warning("could not claim a room placement: %s", exc)
                outcome = "failed"
            else:
                if outcome == "elsewhere" and await self._listed(notice.room):
                    outcome = "spanning"  # the room spans routers and lists this one (§10)
                if outcome == "elsewhere":
                    self.moved(notice.room, claim.room.router)
        self.stats.room_claims[outcome] += 1
        return outcome

    async def _listed(self, room: str) -> bool:
        """Whether the room's router set (docs/architecture.md §10) names this router."""
        try:
            return await self.client.get(room_router_key(room, self.node_id)) is not None
        except EtcdError as exc:
            log.warning("could not read a room's router set: %s", exc)
            return False

    def moved(self, room: str, router: str) -> None:
        """The room belongs to ``router``: send the stray copy's participants there."""
        gone = self.evict(room, m.E_WRONG_ROUTER, MOVED_TEXT)
        log.warning(
            "a room opened here is placed on %s; %d participant(s) sent to rejoin", router, gone
        )

    async def closed(self, room: str) -> None:
        try:
            await release_room(self.client, room, self.node_id)
        except (EtcdError, SchemaError) as exc:
            log.warning("could not release a room placement: %s", exc)


__all__ = ["MOVED_TEXT", "RoomPlacements"]
