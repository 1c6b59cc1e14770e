"""The front door's own HTTP/1.1 server over real sockets: joins, keep-alive, pipelining,
HTTP/1.0, 100-continue, limits and refusals, the in-process ASGI routes, timeouts, TLS (1.2
served, 1.1 refused), and garbage that must never take the server down."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.frontdoor_cluster import TOPOLOGY_FILE
from control.schema import NodeAddress, NodeRecord
from control.topology import load_topology
from geo.client_address import parse_trusted_proxies
from geo.frontdoor.app import FrontdoorApp
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.fastserver import FastServer
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.service import JoinService
from geo.frontdoor.snapshot import SnapshotCache
from geo.frontdoor.tls import server_context
from tests.frontdoor.test_join_properties import GEO, FakeView, MemoryRooms

DE = "81.169.145.1"  # an address the embedded database puts in Germany (EEA)
JOIN = b'{"policy":"eea"}'


def _node(node_id: str, kind: str, region: str, port: int) -> NodeRecord:
    address = NodeAddress("wss" if kind == "router" else "udp", "127.0.0.1", port)
    return NodeRecord(node_id, kind, region, "EEA", (address,), 100, 0, False,  # type: ignore[arg-type]
                      "t", 0.0, "i")


def make_app(max_body: int = 4096) -> FrontdoorApp:
    topology = load_topology(TOPOLOGY_FILE)
    view = FakeView(topology, {"r1": _node("r1", "router", "eu-central", 1000),
                               "t1": _node("t1", "turn", "eu-central", 2000)})
    rooms = MemoryRooms(view)
    config = FrontdoorConfig(rate_limit=1e9, rate_burst=1e9, max_body=max_body)
    service = JoinService(config, GEO, SnapshotCache(view, "/s"), rooms, rooms.place,
                          FrontdoorMetrics(), trusted=parse_trusted_proxies(["127.0.0.1/32"]))
    return FrontdoorApp(service, lambda: {"status": "ok"})


@asynccontextmanager
async def serving(app: FrontdoorApp | None = None, **options: Any
                  ) -> AsyncIterator[tuple[FastServer, int]]:
    server = FastServer(app or make_app(), **options)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(functools.partial(server.serve, "127.0.0.1", 0))
        yield server, int(urls[0].rsplit(":", 1)[1])
        nursery.cancel_scope.cancel()


def join(room: str = "room1", body: bytes = JOIN, extra: bytes = b"") -> bytes:
    return (b"POST /v1/rooms/" + room.encode() + b"/join HTTP/1.1\r\nHost: t\r\n"
            b"X-Forwarded-For: " + DE.encode() + b"\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


class Reader:
    """Reads responses off a stream (Content-Length or chunked framing)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _fill(self) -> bool:
        with trio.fail_after(5):
            data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def response(self, head_only: bool = False
                       ) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert await self._fill(), "connection closed before a response"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    assert await self._fill()
                size_text, rest = self.buffer.split(b"\r\n", 1)
                size = int(size_text, 16)
                while len(rest) < size + 2:
                    assert await self._fill()
                    rest = self.buffer.split(b"\r\n", 1)[1]
                body += rest[:size]
                self.buffer = rest[size + 2:]
                if size == 0:
                    return status, headers, body
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            assert await self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    async def closed(self) -> bool:
        """True if the server closes the connection (EOF or reset) with nothing more sent."""
        try:
            return not await self._fill() and not self.buffer
        except trio.BrokenResourceError:
            return True


async def connect(port: int) -> tuple[trio.SocketStream, Reader]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    return stream, Reader(stream)


async def test_joins_over_one_keep_alive_connection() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        for room in ("a", "a", "b"):
            await stream.send_all(join(room))
            status, headers, body = await reader.response()
            answer = json.loads(body)
            assert status == 200 and answer["room"] == room and answer["jurisdiction"] == "EEA"
            assert answer["router"]["node"] == "r1" and answer["token"]
            assert headers["cache-control"] == "no-store" and "date" in headers
            assert headers["content-type"] == "application/json"
        await stream.aclose()


async def test_ipv6_loopback() -> None:
    server = FastServer(make_app())
    async with trio.open_nursery() as nursery:
        try:
            urls = await nursery.start(functools.partial(server.serve, "::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        assert urls[0].startswith("http://[::1]:")
        stream = await trio.open_tcp_stream("::1", int(urls[0].rsplit(":", 1)[1]))
        await stream.send_all(join("v6"))
        assert (await Reader(stream).response())[0] == 200
        nursery.cancel_scope.cancel()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(join("p1") + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                              + join("bad%21room") + join("p2"))
        first, health, bad, last = [await reader.response() for _ in range(4)]
        assert json.loads(first[2])["room"] == "p1" and health[0] == 200
        assert bad[0] == 400 and json.loads(bad[2])["error"] == "invalid_room"
        assert json.loads(last[2])["room"] == "p2"


async def test_a_long_pipelined_batch() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(b"".join(join(f"r{i % 7}") for i in range(100)))
        rooms = [json.loads((await reader.response())[2])["room"] for _ in range(100)]
        assert rooms == [f"r{i % 7}" for i in range(100)]


async def test_http_1_0_and_connection_close() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, headers, _ = await reader.response()
        assert status == 200 and headers["connection"] == "close" and await reader.closed()
        stream, reader = await connect(port)
        await stream.send_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
        for _ in range(2):
            status, headers, _ = await reader.response()
            assert headers["connection"] == "keep-alive"
        stream, reader = await connect(port)
        await stream.send_all(join("c", extra=b"Connection: close\r\n"))
        status, headers, _ = await reader.response()
        assert status == 200 and headers["connection"] == "close" and await reader.closed()


async def test_expect_100_continue() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        request = join("e", extra=b"Expect: 100-continue\r\n")
        head, body = request.split(b"\r\n\r\n")
        await stream.send_all(head + b"\r\n\r\n")
        assert (await reader.response())[0] == 100
        await stream.send_all(body)
        assert (await reader.response())[0] == 200


@pytest.mark.parametrize("request_bytes, status, error", [
    (join("big", b"x" * 5000), 413, "body_too_large"),
    (b"POST /v1/rooms/a/join HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 411, "length_required"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 17000 + b"\r\n\r\n", 431,
     "header_fields_too_large"),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "http_version_not_supported"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request"),
])
async def test_refused_requests_close_the_connection(request_bytes: bytes, status: int,
                                                     error: str) -> None:
    app = make_app()
    async with serving(app) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(request_bytes)
        got, headers, body = await reader.response()
        assert (got, json.loads(body)["error"]) == (status, error)
        assert headers["connection"] == "close" and await reader.closed()
    if status == 413:
        assert b'result="too_large"' in app.service.metrics.render()


async def test_asgi_routes_through_the_bridge() -> None:
    async with serving() as (_, port):
        stream, reader = await connect(port)
        requests = [b"GET /healthz", b"GET /r/room1", b"HEAD /r/room1", b"GET /nope",
                    b"GET /v1/rooms/a/join", b"GET /static/../../etc/passwd"]
        await stream.send_all(b"".join(r + b" HTTP/1.1\r\nHost: t\r\n\r\n" for r in requests))
        health = await reader.response()
        assert health[0] == 200 and json.loads(health[2]) == {"status": "ok"}
        page = await reader.response()
        assert page[0] == 200 and page[2].lower().startswith(b"<!doctype html")
        assert "content-security-policy" in page[1]
        head = await reader.response(head_only=True)
        assert head[0] == 200 and head[1]["content-length"] == str(len(page[2]))
        assert [(await reader.response())[0] for _ in range(3)] == [404, 405, 404]


async def test_asgi_failures_answer_500() -> None:
    app = make_app()

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("boom")

    app.starlette = broken  # type: ignore[assignment]
    async with serving(app) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + join("x"))
        assert (await reader.response())[0] == 500
        assert (await reader.response())[0] == 200  # the connection goes on


async def test_a_failing_join_answers_500_and_the_server_goes_on() -> None:
    app = make_app()

    async def broken(*args: Any) -> Any:
        raise ValueError("bug")

    real = app.service.join
    app.service.join = broken  # type: ignore[method-assign]
    async with serving(app) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(join("x"))
        status, headers, _ = await reader.response()
        assert status == 500 and headers["connection"] == "close" and await reader.closed()
        app.service.join = real  # type: ignore[method-assign]
        stream, reader = await connect(port)
        await stream.send_all(join("x"))
        assert (await reader.response())[0] == 200


async def test_idle_and_slow_connections_are_closed() -> None:
    async with serving(keep_alive_timeout=0.3, request_timeout=0.6) as (server, port):
        stream, reader = await connect(port)
        await stream.send_all(join("i"))
        assert (await reader.response())[0] == 200
        with trio.fail_after(3):
            assert await reader.closed()
        stream, reader = await connect(port)
        with trio.fail_after(4):
            for _ in range(30):  # one byte every 0.1 s never completes a head in time
                try:
                    await stream.send_all(b"X")
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.1)
            assert await reader.closed()
        await trio.sleep(0.1)
        assert not server.connections


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4))
def test_garbage_never_takes_the_server_down(chunks: list[bytes]) -> None:
    async def main() -> None:
        async with serving(request_timeout=1.0) as (_, port):
            stream, reader = await connect(port)
            for chunk in chunks:
                try:
                    await stream.send_all(chunk)
                except trio.BrokenResourceError:
                    break
            await stream.aclose()
            stream, reader = await connect(port)
            await stream.send_all(join("after"))
            assert (await reader.response())[0] == 200

    trio.run(main)


def _client_context(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = maximum
    if maximum < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_tls_1_2_is_served_and_tls_1_1_refused(tls_files: tuple[str, str]) -> None:
    context = server_context(*tls_files, alpn=("http/1.1",))
    async with serving(ssl_context=context) as (_, port):
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, _client_context(ssl.TLSVersion.TLSv1_2),
                                server_hostname="127.0.0.1")
        reader = Reader(stream)
        await stream.send_all(join("tls") + join("tls"))
        assert [(await reader.response())[0] for _ in range(2)] == [200, 200]
        assert stream.version() == "TLSv1.2"
        await stream.aclose()
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        old = trio.SSLStream(tcp, _client_context(ssl.TLSVersion.TLSv1_1),
                             server_hostname="127.0.0.1")
        with pytest.raises(trio.BrokenResourceError) as refused:
            with trio.fail_after(5):
                await old.do_handshake()
        assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value.__cause__).upper()
