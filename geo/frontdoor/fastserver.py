"""The front door's own HTTP/1.1 server: joins answered on raw non-blocking sockets.

Why: Hypercorn's per-request machinery (h11 events, a task and cancel scopes per request,
locks around every send) costs more than the join itself; an empty ASGI app under
Hypercorn + Trio serves about 2,200 requests/s on one core here, below the 5,000 joins/s
target (profile and figures in benchmarks/RESULTS.md). ARCHITECTURE.md §6 applies to the hot
path: wait for readability once, drain every complete request in the buffer
(:mod:`geo.frontdoor.http11`, pipelining included), answer them in order, and send the batch
in one ``send`` that only awaits when the kernel pushes back.

What it serves: ``POST /v1/rooms/{room}/join`` straight into :class:`JoinService`; every other
request goes in-process to the same ASGI app Hypercorn would run (:mod:`asgi_bridge`), so
``/healthz``, ``/metrics``, targets and the meeting page behave as before. HTTPS is
``trio.SSLStream`` per connection with the TLS 1.2+ context of :mod:`geo.frontdoor.tls`
(ALPN offers http/1.1 only). ``--http-server hypercorn`` keeps the library server (and h2).

Timeouts come from one reaper task rather than a cancel scope per read: an idle keep-alive
connection closes after :data:`KEEP_ALIVE_TIMEOUT`, a request (or TLS handshake) must arrive
whole within :data:`REQUEST_TIMEOUT` of its first byte (slowloris), and answering one batch,
including writing it to a slow reader, may take :data:`HANDLER_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import trio

from control.logs import get_logger, truncate_address
from geo.frontdoor.asgi_bridge import Lifespan, call_asgi, simple_response
from geo.frontdoor.http11 import HttpError, Request, RequestParser

if TYPE_CHECKING:
    from geo.frontdoor.app import FrontdoorApp

log = get_logger("geo.frontdoor.fastserver")
access_log = get_logger("geo.frontdoor.access")

KEEP_ALIVE_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
HANDLER_TIMEOUT = 60.0
LINGER_SECONDS = 1.0
RECV_SIZE = 65536
FAIRNESS_BATCH = 16
BACKLOG = 1024

JOIN_PREFIX = "/v1/rooms/"
JOIN_SUFFIX = "/join"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_JSON = b"application/json"
_JOIN_HEADERS = b"cache-control: no-store\r\n"
_ACCEPT_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ERROR_CODES = {400: "bad_request", 408: "request_timeout", 411: "length_required",
               413: "body_too_large", 414: "uri_too_long", 417: "expectation_failed",
               431: "header_fields_too_large", 501: "not_implemented",
               505: "http_version_not_supported"}


def _join_room(path: bytes) -> str | None:
    """The room of a join path (percent-decoded like ASGI's ``path``), else None."""
    text = path.decode("ascii")
    if "%" in text:
        text = unquote(text)
    if text.startswith(JOIN_PREFIX) and text.endswith(JOIN_SUFFIX) \
            and len(text) >= len(JOIN_PREFIX) + len(JOIN_SUFFIX):
        return text[len(JOIN_PREFIX):-len(JOIN_SUFFIX)]
    return None


def _address(sockaddr: Any) -> tuple[str, int] | None:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        return str(sockaddr[0]), int(sockaddr[1])
    return None


class _Conn:
    """One client connection: its transport, output buffer and deadline."""

    scheme = "http"

    def __init__(self, sock: socket.socket, peer: tuple[str, int] | None) -> None:
        self.sock = sock
        self.peer = peer
        self.local = _address(sock.getsockname())
        self.out: list[bytes] = []
        self.deadline = time.monotonic() + REQUEST_TIMEOUT
        self.scope = trio.CancelScope()

    async def receive(self) -> bytes | None:
        """Bytes read (b"" at EOF), or None after a spurious wake-up."""
        await trio.lowlevel.wait_readable(self.sock)
        try:
            return self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None
        except (ConnectionError, TimeoutError):
            return b""

    async def flush(self) -> None:
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            await trio.lowlevel.wait_writable(sock)
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                continue

    async def close(self, graceful: bool) -> None:
        """Close; ``graceful`` half-closes first and reads what the client still sends for a
        moment, so an error answer is not destroyed by a reset over unread request bytes."""
        sock = self.sock
        if graceful:
            with contextlib.suppress(OSError), trio.move_on_after(LINGER_SECONDS):
                sock.shutdown(socket.SHUT_WR)
                drained = 0
                while drained < RECV_SIZE * 4:
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        chunk = sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        break
                    drained += len(chunk)
        trio.lowlevel.notify_closing(sock)
        sock.close()


class _TlsConn(_Conn):
    """A connection through ``trio.SSLStream`` (handshake on the first read)."""

    scheme = "https"

    def __init__(self, sock: socket.socket, peer: tuple[str, int] | None,
                 context: ssl.SSLContext) -> None:
        super().__init__(sock, peer)
        self.stream = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                                     context, server_side=True, https_compatible=True)

    async def receive(self) -> bytes | None:
        try:
            return bytes(await self.stream.receive_some(RECV_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def flush(self) -> None:
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        await self.stream.send_all(data)

    async def close(self, graceful: bool) -> None:
        with trio.move_on_after(LINGER_SECONDS if graceful else 0):
            await self.stream.aclose()
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


class FastServer:
    """Serves a :class:`FrontdoorApp` on one listening address."""

    def __init__(self, app: FrontdoorApp, *, ssl_context: ssl.SSLContext | None = None,
                 keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.app = app
        self.service = app.service
        self.max_body = app.max_body
        self.access_log = app.access_log
        self.ssl_context = ssl_context
        self.keep_alive_timeout = keep_alive_timeout
        self.request_timeout = request_timeout
        self.connections: set[_Conn] = set()

    async def serve(self, host: str, port: int, *,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``host:port`` (0: any free port) until cancelled; reports the URLs."""
        listener = _listen(host, port)
        lifespan = Lifespan(self.app)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lifespan.run)
                await lifespan.startup()
                bound = listener.getsockname()
                scheme = "https" if self.ssl_context is not None else "http"
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                nursery.start_soon(self._reap)
                nursery.start_soon(self._accept, listener, nursery)
                task_status.started([f"{scheme}://{shown}:{bound[1]}"])
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await lifespan.shutdown()
        finally:
            trio.lowlevel.notify_closing(listener)
            listener.close()

    async def _accept(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            while True:
                try:
                    sock, peer = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _ACCEPT_PAUSE_ERRNOS:
                        log.warning("accept paused: %s", exc)
                        await trio.sleep(0.1)
                        break
                    break  # ECONNABORTED and friends: that client is gone; wait again
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nursery.start_soon(self._connection, sock, _address(peer))

    async def _reap(self) -> None:
        while True:
            await trio.sleep(0.5)
            now = time.monotonic()
            for conn in [c for c in self.connections if c.deadline < now]:
                conn.scope.cancel()

    async def _connection(self, sock: socket.socket, peer: tuple[str, int] | None) -> None:
        try:
            conn = _TlsConn(sock, peer, self.ssl_context) if self.ssl_context is not None \
                else _Conn(sock, peer)
        except OSError:
            sock.close()
            return
        conn.deadline = time.monotonic() + self.request_timeout
        self.connections.add(conn)
        graceful = False
        try:
            with conn.scope:
                graceful = await self._run(conn)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            graceful = False
        except Exception:  # one connection's failure must never end the server
            log.exception("connection handler failed")
            graceful = False
        finally:
            self.connections.discard(conn)
            with trio.CancelScope(shield=True):
                await conn.close(graceful)

    async def _run(self, conn: _Conn) -> bool:
        """Serve requests until the connection ends; True if it should close gracefully."""
        parser = RequestParser(max_body=self.max_body)
        continued = False
        request_deadline = 0.0
        while True:
            data = await conn.receive()
            if data is None:
                continue
            if not data:
                return False
            was_idle = parser.idle
            parser.feed(data)
            conn.deadline = time.monotonic() + HANDLER_TIMEOUT
            answered = 0
            while True:
                try:
                    request = parser.next_request()
                except HttpError as exc:
                    self._refuse(conn, exc)
                    await conn.flush()
                    return True
                if request is None:
                    break
                answered += 1
                continued = False
                if not await self._handle(conn, request):
                    await conn.flush()
                    return True
                if answered % FAIRNESS_BATCH == 0:
                    # A long pipelined batch must not starve the other connections.
                    await conn.flush()
                    await trio.lowlevel.checkpoint()
            if not parser.idle:
                waiting = parser.waiting_for_body()
                if waiting is not None and waiting.expect_continue and not continued:
                    conn.out.append(CONTINUE)
                    continued = True
            await conn.flush()
            now = time.monotonic()
            if parser.idle:
                conn.deadline = now + self.keep_alive_timeout
            else:  # a request is on its way: it has request_timeout from its first byte
                if was_idle or answered:
                    request_deadline = now + self.request_timeout
                conn.deadline = request_deadline

    async def _handle(self, conn: _Conn, request: Request) -> bool:
        if request.method == "POST":
            room = _join_room(request.path)
            if room is not None:
                try:
                    return await self._join(conn, request, room)
                except Exception:
                    log.exception("join failed")
                    conn.out.append(simple_response(
                        500, b'{"error":"internal","message":"the join failed"}', _JSON,
                        keep_alive=False, extra=_JOIN_HEADERS))
                    return False
        return await call_asgi(self.app, request, conn)

    async def _join(self, conn: _Conn, request: Request, room: str) -> bool:
        service = self.service
        address = service.client_of(conn.peer[0] if conn.peer else None, request.headers)
        answer = await service.join(room, request.body, address)
        extra = _JOIN_HEADERS
        if answer.headers:
            extra += b"".join(f"{k.lower()}: {v}\r\n".encode() for k, v in answer.headers)
        conn.out.append(simple_response(answer.status, _ENCODE(answer.body).encode(), _JSON,
                                        keep_alive=request.keep_alive,
                                        version=request.version, extra=extra))
        if self.access_log:
            access_log.info("POST join %d from %s", answer.status,
                            truncate_address(address) if address is not None else "unknown")
        return request.keep_alive

    def _refuse(self, conn: _Conn, exc: HttpError) -> None:
        """The answer to a request the parser refused; the connection closes after it."""
        if exc.status == 413 and exc.target is not None \
                and _join_room(exc.target.partition(b"?")[0]) is not None:
            self.service.metrics.count_join(None, None, "too_large")
            body: dict[str, Any] = {"error": "body_too_large",
                                    "message": f"join bodies are at most {self.max_body} bytes"}
        else:
            body = {"error": ERROR_CODES.get(exc.status, "bad_request"), "message": exc.message}
        conn.out.append(simple_response(exc.status, _ENCODE(body).encode(), _JSON,
                                        keep_alive=False, extra=_JOIN_HEADERS))


def _listen(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


__all__ = ["HANDLER_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "REQUEST_TIMEOUT", "FastServer"]
