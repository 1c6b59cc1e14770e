"""Room membership: which routers serve a room that spans routers (docs/architecture.md §10).

Every router serving participants of a room has one key ``/regio/v1/rooms/<room>/routers/<node>``
(:class:`~control.schema.RoomRouterRecord`). The front door writes it when it assigns a
participant to that router (:mod:`control.placement`); the router binds it to its own lease once
a participant connects and deletes it when its share of the room empties (:mod:`router.rooms`).

Readers never trust a key alone: a record naming a router that is not live in the cluster view
(its node key gone with its lease, or marked down by the reader) is ignored, so a dead router
drops out of every room as soon as the reader's view says so. This module is the one place
that rule lives, for the front door and for the routers' trunk manager alike:

* :func:`room_routers` reads a room's live routers once (one etcd range read);
* :class:`RoomMembership` is a watch cache of the room tree (every room, or one room's
  ``routers/`` prefix) with typed, decoded indexes and the same
  read-at-R-then-watch-from-R+1 rules as the cluster view (:class:`control.view.WatchCache`);
  ``subscribe()`` delivers every change, ``wait_until`` waits for a condition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from control import schema
from control.etcd import Compare, EtcdClient, EtcdError, Put
from control.logs import get_logger
from control.schema import RoomRecord, RoomRouterRecord, SchemaError
from control.view import ClusterView, ViewChange, ViewConfig, WatchCache

log = get_logger("control.rooms")

ROUTERS_SEGMENT = "/routers/"

Liveness = Callable[[str], bool]
"""``alive(node_id)``: whether a router may be counted as serving a room right now."""


def live_in(view: ClusterView) -> Liveness:
    """Liveness from a cluster view: the router's node key exists (its lease is alive)."""

    def alive(node_id: str) -> bool:
        node = view.node(node_id)
        return node is not None and node.kind == "router"

    return alive


@dataclass(frozen=True, slots=True)
class RoomKey:
    """What a key under ``/regio/v1/rooms/`` names: a room record, or one router of a room."""

    room: str
    router: str | None
    """None for the room record itself."""


def parse_room_key(key: str) -> RoomKey | None:
    """Split a key of the room tree; None for anything that is neither form."""
    if not key.startswith(schema.ROOMS_PREFIX):
        return None
    rest = key[len(schema.ROOMS_PREFIX):]
    room, sep, node = rest.partition(ROUTERS_SEGMENT)
    try:
        schema.check_room(room)
        if sep:
            schema.check_node_id(node)
    except SchemaError:
        return None
    return RoomKey(room, node if sep else None)


def filter_live(records: Iterable[RoomRouterRecord], alive: Liveness | None
                ) -> list[RoomRouterRecord]:
    """The records whose router is live (all of them without a liveness test), by node id."""
    return sorted((r for r in records if alive is None or alive(r.router)),
                  key=lambda r: r.router)


async def room_routers(client: EtcdClient, room: str, view: ClusterView | None = None, *,
                       alive: Liveness | None = None) -> list[RoomRouterRecord]:
    """The routers serving ``room`` now, by node id: one range read of its ``routers/`` prefix.

    With ``view`` (or ``alive``) records of routers that are not live are left out, as every
    reader must (docs/architecture.md §10). Unreadable records are skipped and logged.
    """
    if alive is None and view is not None:
        alive = live_in(view)
    _, kvs = await client.get_prefix(schema.room_routers_prefix(room))
    records: list[RoomRouterRecord] = []
    for kv in kvs:
        try:
            records.append(RoomRouterRecord.decode(kv.value))
        except SchemaError as exc:
            log.warning("ignoring unreadable room router record: %s", exc)
    return filter_live(records, alive)


async def bind_router(client: EtcdClient, record: RoomRouterRecord, lease: int) -> bool:
    """Make ``record``'s key exist and be bound to ``lease`` (the router's own lease, once a
    participant connected there): created if absent, re-bound if it carried another lease (the
    front door's short pending lease, or a previous process's). Returns True if it wrote.

    Guarded on the key's mod revision, so it never overwrites a concurrent change blindly;
    a lost race is retried by reading again.
    """
    key = schema.room_router_key(record.room, record.router)
    for _ in range(8):
        kv = await client.get(key)
        if kv is not None and kv.lease == lease:
            return False
        guard = (Compare(key, "version", "==", 0) if kv is None
                 else Compare(key, "mod", "==", kv.mod_revision))
        value = record.encode() if kv is None else kv.value
        result = await client.txn([guard], [Put(key, value, lease)])
        if result.succeeded:
            return True
    raise EtcdError(f"could not bind router {record.router} to room {record.room}")


async def leave_room(client: EtcdClient, room: str, node: str) -> bool:
    """Delete ``node``'s membership of ``room`` (its share of the room ended)."""
    _, deleted = await client.delete(schema.room_router_key(room, node))
    return deleted > 0


class RoomMembership(WatchCache):
    """A watch cache of room records and room routers, decoded once per change.

    ``RoomMembership(client)`` follows every room (the front door); ``RoomMembership.of_room(
    client, room)`` follows one room's ``routers/`` prefix only (a router's trunk manager).
    Liveness is a reader's concern, so queries take it as an argument.
    """

    def __init__(self, client: EtcdClient, prefix: str = schema.ROOMS_PREFIX,
                 config: ViewConfig | None = None) -> None:
        if not prefix.startswith(schema.ROOMS_PREFIX):
            raise ValueError(f"{prefix!r} is not inside the room tree")
        super().__init__(client, prefix, config)
        self._rooms: dict[str, RoomRecord] = {}
        self._routers: dict[str, dict[str, RoomRouterRecord]] = {}

    @classmethod
    def of_room(cls, client: EtcdClient, room: str, config: ViewConfig | None = None
                ) -> RoomMembership:
        return cls(client, schema.room_routers_prefix(room), config)

    def _on_changes(self, changes: list[ViewChange]) -> None:
        for change in changes:
            parsed = parse_room_key(change.key)
            if parsed is None:
                continue
            if parsed.router is None:
                self._apply_room(parsed.room, change)
            else:
                self._apply_router(parsed.room, parsed.router, change)

    def _apply_room(self, room: str, change: ViewChange) -> None:
        if change.kv is None:
            self._rooms.pop(room, None)
            return
        try:
            record = RoomRecord.decode(change.kv.value)
        except SchemaError as exc:
            log.warning("ignoring unreadable room record: %s", exc)
            self._rooms.pop(room, None)
            return
        self._rooms[room] = record

    def _apply_router(self, room: str, node: str, change: ViewChange) -> None:
        members = self._routers.setdefault(room, {})
        record: RoomRouterRecord | None = None
        if change.kv is not None:
            try:
                record = RoomRouterRecord.decode(change.kv.value)
            except SchemaError as exc:
                log.warning("ignoring unreadable room router record: %s", exc)
        if record is None or record.router != node or record.room != room:
            members.pop(node, None)
        else:
            members[node] = record
        if not members:
            del self._routers[room]

    # -- queries ----------------------------------------------------------------------------

    def room(self, room: str) -> RoomRecord | None:
        """The room record (policy, mode, first router), if the cache has one."""
        return self._rooms.get(room)

    def routers(self, room: str, alive: Liveness | None = None) -> list[RoomRouterRecord]:
        """The room's routers by node id, only live ones if ``alive`` is given."""
        return filter_live(self._routers.get(room, {}).values(), alive)

    def member(self, room: str, node: str) -> RoomRouterRecord | None:
        return self._routers.get(room, {}).get(node)

    def rooms_of(self, node: str) -> list[str]:
        """Rooms that list ``node`` among their routers."""
        return sorted(room for room, members in self._routers.items() if node in members)

    def remember(self, record: RoomRecord | RoomRouterRecord) -> None:
        """Record what we just wrote or read back, before the watch delivers it."""
        if isinstance(record, RoomRecord):
            self._rooms[record.room] = record
        else:
            self._routers.setdefault(record.room, {})[record.router] = record

    def get(self, room: str) -> RoomRecord | None:
        """Same as :meth:`room` (the front door's room lookup protocol)."""
        return self._rooms.get(room)

    def __len__(self) -> int:
        return len(self._rooms)


__all__ = [
    "Liveness",
    "RoomKey",
    "RoomMembership",
    "bind_router",
    "filter_live",
    "leave_room",
    "live_in",
    "parse_room_key",
    "room_routers",
]
