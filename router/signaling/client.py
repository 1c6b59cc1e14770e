"""A small WebSocket signaling client on wsproto + Trio streams, for tests and load generators.

It speaks just enough RFC 6455 (through wsproto, which Hypercorn already depends on) to hold one
signaling session: connect, send JSON, receive JSON, see the close code.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


class SignalingClosed(Exception):
    """The router closed the connection; ``code`` is the WebSocket close code."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class SignalingClient:
    """One WebSocket connection exchanging JSON messages."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.closed: SignalingClosed | None = None
        self._pending: list[dict[str, Any]] = []
        self._text = ""

    @classmethod
    async def connect(cls, url: str, *, ssl_context: ssl.SSLContext | None = None,
                      timeout: float = 10.0) -> SignalingClient:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        with trio.fail_after(timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            if parts.scheme == "wss":
                context = ssl_context or ssl.create_default_context()
                tls = trio.SSLStream(stream, context, server_hostname=host)
                await tls.do_handshake()
                stream = tls
            ws = WSConnection(ConnectionType.CLIENT)
            await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=parts.path or "/")))
            client = cls(stream, ws)
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    raise SignalingClosed(None, "connection closed during the handshake")
                ws.receive_data(bytes(data))
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        return client
                    if isinstance(event, RejectConnection):
                        raise SignalingClosed(event.status_code, "handshake rejected")

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message; raises :class:`SignalingClosed` once the router closed."""
        with trio.fail_after(timeout):
            while not self._pending:
                if self.closed is not None:
                    raise self.closed
                await self._read()
        return self._pending.pop(0)

    async def recv_type(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Skip messages until one of ``kind`` arrives (skipped ones are kept in order)."""
        skipped: list[dict[str, Any]] = []
        try:
            with trio.fail_after(timeout):
                while True:
                    message = await self.recv(timeout)
                    if message.get("type") == kind:
                        return message
                    skipped.append(message)
        finally:
            self._pending[:0] = skipped

    def pending(self) -> list[dict[str, Any]]:
        return list(self._pending)

    async def _read(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            self.closed = self.closed or SignalingClosed(None, "connection lost")
            return
        self.ws.receive_data(bytes(data))
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self._pending.append(json.loads(self._text))
                    self._text = ""
            elif isinstance(event, BytesMessage):
                continue
            elif isinstance(event, Ping):
                await self.stream.send_all(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = SignalingClosed(event.code, event.reason or "")
                with contextlib.suppress(Exception):
                    await self.stream.send_all(self.ws.send(event.response()))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.closed is None:
                await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
        await self.stream.aclose()


__all__ = ["SignalingClient", "SignalingClosed"]
