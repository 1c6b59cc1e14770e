"""The front door's watch cache of the room tree (``/regio/v1/rooms/``): room records and the
routers serving each room (:class:`control.rooms.RoomMembership`).

A join whose chosen router already serves the room is answered from memory: no etcd round trip,
and it keeps working while etcd is unreachable (ARCHITECTURE.md §1). Anything else goes to
:func:`control.placement.assign_router`, whose guarded transaction is the source of truth
when two front doors race.
"""

from __future__ import annotations

from control.etcd import EtcdClient
from control.rooms import RoomMembership
from control.view import ViewConfig


class RoomCache(RoomMembership):
    """Every room record and room router, decoded once per change."""

    def __init__(self, client: EtcdClient, config: ViewConfig | None = None) -> None:
        super().__init__(client, config=config)


__all__ = ["RoomCache"]
