"""One TCP/TLS client connection's output side: a bounded buffer and its writer task.

Its own module because both :mod:`turn.server.stream_driver` (which creates connections) and
the server (which writes to them) need it, and neither should import the other's module for it.
"""

from __future__ import annotations

import ssl
from typing import Final

import trio

from turn.server.allocation import FiveTuple

MAX_PENDING_OUTPUT: Final = 1 << 20
"""Bytes queued for one slow client before further output to it is dropped (like UDP)."""


class StreamConnection:
    """One client connection's output side."""

    __slots__ = ("_pending", "_wake", "five_tuple", "scope", "stream")

    def __init__(self, five_tuple: FiveTuple, stream: trio.abc.Stream) -> None:
        self.five_tuple = five_tuple
        self.stream = stream
        self.scope = trio.CancelScope()
        self._pending = bytearray()
        self._wake = trio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue bytes for the client; False (dropped) when the client reads too slowly."""
        if len(self._pending) + len(data) > MAX_PENDING_OUTPUT:
            return False
        self._pending += data
        self._wake.set()
        return True

    async def writer(self) -> None:
        """Drain the pending output; a broken connection ends the whole connection."""
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                if not self._pending:
                    continue
                data = bytes(self._pending)
                self._pending.clear()
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            self.scope.cancel()


__all__ = ["MAX_PENDING_OUTPUT", "StreamConnection"]
