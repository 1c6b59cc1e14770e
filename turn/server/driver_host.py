"""The server as the UDP and stream drivers see it.

:class:`~turn.server.server.TurnServer` runs the loops of :mod:`turn.server.udp_driver` and
:mod:`turn.server.stream_driver`, and those loops call back into it; typing the server as
:class:`DriverHost` keeps the drivers from importing the module that imports them.
"""

from __future__ import annotations

import socket
from typing import Protocol

from turn.server.allocation import Addr, FiveTuple
from turn.server.core import TurnServerCore
from turn.server.stream_connection import StreamConnection


class DriverHost(Protocol):
    """Implemented by :class:`~turn.server.server.TurnServer`."""

    core: TurnServerCore
    udp_sockets: dict[Addr, socket.socket]
    connections: dict[FiveTuple, StreamConnection]

    def receive(self, data: bytes, ft: FiveTuple, now: float) -> None: ...
    async def flush(self) -> None: ...
    def client_write(self, ft: FiveTuple, data: bytes) -> None: ...
    def stream_write(self, ft: FiveTuple, data: bytes) -> None: ...
    def peer_write(self, relay: object, data: bytes, peer: Addr) -> None: ...


__all__ = ["DriverHost"]
