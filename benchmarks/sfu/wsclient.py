"""A minimal asyncio WebSocket client for the router's signaling (wsproto over asyncio streams).

The router's own test client (:mod:`router.signaling.client`) is Trio; aiortc and the benchmark's
setup code are asyncio, and ``websockets`` is not a dependency, so this speaks the same JSON
protocol with wsproto (already installed with Hypercorn) over ``asyncio.open_connection``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


class SignalingError(RuntimeError):
    """The router closed the connection or sent an ``error`` we were not expecting."""


class AsyncSignaling:
    """One signaling WebSocket exchanging JSON objects."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ws: WSConnection) -> None:
        self._reader = reader
        self._writer = writer
        self._ws = ws
        self._pending: list[dict[str, Any]] = []
        self._text = ""
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, url: str, timeout: float = 10.0) -> AsyncSignaling:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            ws = WSConnection(ConnectionType.CLIENT)
            writer.write(ws.send(Request(host=f"{host}:{port}", target=parts.path or "/")))
            while True:
                data = await reader.read(65536)
                if not data:
                    raise SignalingError("connection closed during the WebSocket handshake")
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        return cls(reader, writer, ws)
                    if isinstance(event, RejectConnection):
                        raise SignalingError(f"handshake rejected ({event.status_code})")

    async def send(self, message: dict[str, Any]) -> None:
        self._writer.write(self._ws.send(TextMessage(data=json.dumps(message))))
        await self._writer.drain()

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self._pending:
                if self.close_code is not None:
                    raise SignalingError(f"signaling closed ({self.close_code})")
                await self._read()
        return self._pending.pop(0)

    async def recv_type(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Skip to the next message of ``kind``; skipped messages stay queued in order. An
        ``error`` message raises, since no caller here expects one."""
        skipped: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.recv(timeout)
                    if message.get("type") == kind:
                        return message
                    if message.get("type") == "error":
                        raise SignalingError(f"router error: {message}")
                    skipped.append(message)
        finally:
            self._pending[:0] = skipped

    async def _read(self) -> None:
        data = await self._reader.read(65536)
        if not data:
            self.close_code = self.close_code or 1006
            return
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self._pending.append(json.loads(self._text))
                    self._text = ""
            elif isinstance(event, Ping):
                self._writer.write(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                with contextlib.suppress(Exception):
                    self._writer.write(self._ws.send(event.response()))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.close_code is None:
                self._writer.write(self._ws.send(CloseConnection(code=1000)))
                await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


__all__ = ["AsyncSignaling", "SignalingError"]
