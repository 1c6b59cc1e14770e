"""The front door's watch cache of room placements (``/regio/v1/rooms/``).

A join of an existing room is answered from memory: the room's router comes from this cache,
not from an etcd read, so such joins cost no etcd round trip and keep working while etcd is
unreachable (ARCHITECTURE.md §1). Only a room the cache does not know (or whose router the
cluster view no longer has) goes to :func:`control.placement.place_room`, whose
create-if-absent transaction is the source of truth when two front doors race.

The cache follows the same read-at-R-then-watch-from-R+1 rules as the cluster view
(:class:`control.view.WatchCache`), so it never keeps a room etcd deleted once it reconnects.
"""

from __future__ import annotations

from control import schema
from control.etcd import EtcdClient
from control.logs import get_logger
from control.schema import RoomRecord, SchemaError
from control.view import ViewChange, ViewConfig, WatchCache

log = get_logger("geo.frontdoor.rooms")


class RoomCache(WatchCache):
    """Every room placement, decoded once per change, by room name."""

    def __init__(self, client: EtcdClient, config: ViewConfig | None = None) -> None:
        super().__init__(client, schema.ROOMS_PREFIX, config)
        self._rooms: dict[str, RoomRecord] = {}
        self._by_key: dict[str, str] = {}

    def _on_changes(self, changes: list[ViewChange]) -> None:
        for change in changes:
            if change.kv is None:
                room = self._by_key.pop(change.key, None)
                if room is not None:
                    self._rooms.pop(room, None)
                continue
            try:
                record = RoomRecord.decode(change.kv.value)
            except SchemaError as exc:
                log.warning("ignoring unreadable room record: %s", exc)
                continue
            self._by_key[change.key] = record.room
            self._rooms[record.room] = record

    def get(self, room: str) -> RoomRecord | None:
        return self._rooms.get(room)

    def remember(self, record: RoomRecord) -> None:
        """Record a placement we just made or read, before the watch delivers it."""
        self._rooms[record.room] = record
        self._by_key[schema.room_key(record.room)] = record.room

    def __len__(self) -> int:
        return len(self._rooms)


__all__ = ["RoomCache"]
