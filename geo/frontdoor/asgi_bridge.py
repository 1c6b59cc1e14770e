"""Running the Starlette side of the front door from :mod:`geo.frontdoor.fastserver`.

The fast server answers joins itself and hands every other request (``/healthz``,
``/metrics``, targets, the meeting page and its static files, 404/405) to the same ASGI app
Hypercorn would serve, by calling it in-process: no second listener, no proxy hop, and the
routes stay where their owners put them. This module is the small ASGI server that takes:
one HTTP request in, the app's response messages out as HTTP/1.1 bytes, with the framing
chosen here (``Content-Length`` when the app gives it or sends one body, chunked for streamed
HTTP/1.1 bodies, close-delimited for HTTP/1.0), no body for HEAD/204/304, and a 500 when the
app fails before it starts its answer. Lifespan events are run like Hypercorn runs them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import unquote

import trio

from control.logs import get_logger
from geo.frontdoor.http11 import REASONS, Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

log = get_logger("geo.frontdoor.fastserver")

FLUSH_AT = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_date_cache: tuple[int, bytes] = (0, b"")


def date_header() -> bytes:
    """``date: ...\\r\\n`` (RFC 9110 §6.6.1), formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, b"date: " + email.utils.formatdate(now, usegmt=True).encode()
                       + b"\r\n")
    return _date_cache[1]


def status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n".encode()


class Connection(Protocol):
    """What the bridge needs of a connection: its addresses and a buffered writer."""

    scheme: str
    peer: tuple[str, int] | None
    local: tuple[str, int] | None
    out: list[bytes]

    async def flush(self) -> None: ...


class _Exchange:
    """One request/response through the app."""

    def __init__(self, request: Request, conn: Connection) -> None:
        self.request = request
        self.conn = conn
        self.received = False
        self.started = False
        self.finished = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = request.keep_alive
        self.chunked = False
        self.no_body = False
        self.head_written = False
        self.remaining: int | None = None
        self.done: trio.Event | None = None

    async def receive(self) -> Message:
        if not self.received:
            self.received = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        if not self.finished:
            # The body was delivered; the next event is the client going away, which this
            # server reports once the answer is complete (ASGI: receive after the response).
            self.done = self.done or trio.Event()
            await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.started or self.finished:
            raise RuntimeError("http.response.body outside a response")
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if not self.head_written:
            self._write_head(body, more)
        self._write_body(body, more)
        if not more:
            self.finished = True
            if self.done is not None:
                self.done.set()
        if sum(len(b) for b in self.conn.out) >= FLUSH_AT:
            await self.conn.flush()

    def _write_head(self, first: bytes, more: bool) -> None:
        request = self.request
        status = self.status
        self.no_body = request.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
        names = {name for name, _ in self.headers}
        lines = [status_line(status)]
        for name, value in self.headers:
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value \
                    or b":" in name or not name:
                raise RuntimeError("invalid header in the application's response")
            if name == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue
            lines.append(name + b": " + value + b"\r\n")
        if b"content-length" in names:
            length = next(v for n, v in self.headers if n == b"content-length")
            self.remaining = 0 if self.no_body else int(length)
        elif self.no_body:
            if status not in _NO_BODY_STATUSES and request.method == "HEAD" and not more:
                lines.append(b"content-length: %d\r\n" % len(first))
            self.remaining = 0
        elif not more:
            lines.append(b"content-length: %d\r\n" % len(first))
            self.remaining = len(first)
        elif request.version == "1.1":
            lines.append(b"transfer-encoding: chunked\r\n")
            self.chunked = True
        else:
            self.keep_alive = False
        if b"date" not in names:
            lines.append(date_header())
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        elif request.version == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        self.conn.out.append(b"".join(lines))
        self.head_written = True

    def _write_body(self, body: bytes, more: bool) -> None:
        out = self.conn.out
        if self.no_body:
            return
        if self.chunked:
            if body:
                out.append(b"%x\r\n" % len(body) + body + b"\r\n")
            if not more:
                out.append(b"0\r\n\r\n")
            return
        if self.remaining is not None:
            if len(body) > self.remaining:
                raise RuntimeError("response body longer than its Content-Length")
            self.remaining -= len(body)
            if not more and self.remaining:
                self.keep_alive = False  # short body: the framing is broken, close after it
        if body:
            out.append(body)


def _scope(request: Request, conn: Connection) -> Scope:
    raw = request.path.decode("ascii")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.version,
        "method": request.method,
        "scheme": conn.scheme,
        "path": unquote(raw) if "%" in raw else raw,
        "raw_path": request.path,
        "query_string": request.query,
        "root_path": "",
        "headers": request.headers,
        "client": conn.peer,
        "server": conn.local,
        "extensions": {},
    }


def simple_response(status: int, body: bytes, content_type: bytes, *, keep_alive: bool,
                    version: str = "1.1", extra: bytes = b"") -> bytes:
    """A complete response with a fixed body (errors, joins)."""
    head = (status_line(status) + b"content-type: " + content_type + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + date_header())
    if not keep_alive:
        head += b"connection: close\r\n"
    elif version == "1.0":
        head += b"connection: keep-alive\r\n"
    return head + b"\r\n" + body


async def call_asgi(app: ASGIApp, request: Request, conn: Connection) -> bool:
    """Answer ``request`` through ``app``; True if the connection may carry another request."""
    exchange = _Exchange(request, conn)
    try:
        await app(_scope(request, conn), exchange.receive, exchange.send)
    except Exception:
        log.exception("the ASGI app failed on %s %s", request.method,
                      request.path[:80].decode("ascii", "replace"))
        if exchange.head_written:
            return False  # part of an answer is out: closing is the only honest end
        conn.out.append(simple_response(500, b'{"error":"internal"}', b"application/json",
                                        keep_alive=request.keep_alive, version=request.version))
        return request.keep_alive
    if not exchange.finished:
        if exchange.head_written:
            return False
        log.error("the ASGI app returned without an answer to %s", request.method)
        conn.out.append(simple_response(500, b'{"error":"internal"}', b"application/json",
                                        keep_alive=request.keep_alive, version=request.version))
        return request.keep_alive
    return exchange.keep_alive


class Lifespan:
    """ASGI lifespan: ``startup`` before the listener opens, ``shutdown`` when it closes.

    An app that does not speak lifespan (raises on the scope) is served anyway, as Hypercorn
    does; a ``startup.failed`` stops the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.to_app: trio.MemorySendChannel[Message]
        self.to_app, self._from_server = trio.open_memory_channel[Message](2)
        self.started = trio.Event()
        self.stopped = trio.Event()
        self.supported = True
        self.failure: str | None = None

    async def run(self) -> None:
        async def receive() -> Message:
            return await self._from_server.receive()

        async def send(message: Message) -> None:
            kind = message["type"]
            if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
                if kind.endswith("failed"):
                    self.failure = str(message.get("message", "startup failed"))
                self.started.set()
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.stopped.set()

        try:
            await self.app({"type": "lifespan", "asgi": {"version": "3.0",
                                                          "spec_version": "2.0"},
                            "state": {}}, receive, send)
        except Exception as exc:
            if not self.started.is_set():
                self.supported = False
                log.debug("the app does not support lifespan (%r)", exc)
        finally:
            self.started.set()
            self.stopped.set()

    async def startup(self) -> None:
        await self.to_app.send({"type": "lifespan.startup"})
        await self.started.wait()
        if self.failure is not None:
            raise RuntimeError(f"ASGI lifespan startup failed: {self.failure}")

    async def shutdown(self) -> None:
        if self.supported and not self.stopped.is_set():
            await self.to_app.send({"type": "lifespan.shutdown"})
            with trio.move_on_after(5):
                await self.stopped.wait()


__all__ = ["ASGIApp", "Connection", "Lifespan", "call_asgi", "date_header", "simple_response",
           "status_line"]
