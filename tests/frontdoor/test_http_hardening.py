"""Issue 15 item 8: bare-LF requests are answered 400 at once (they waited for the request
timeout before); ``/metrics`` and Prometheus discovery live on their own listener."""

from __future__ import annotations

import json

import pytest
import trio

from tests.frontdoor.test_fastserver import connect, serving
from tests.frontdoor.test_http11 import parse_chunks


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\nHost: a\n",
    b"GET /healthz HTTP/1.0\n\n",
    b"POST /v1/rooms/r/join HTTP/1.1\nHost: a\nContent-Length: 2\n\n{}",
    b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\n",
])
def test_bare_lf_is_refused_without_waiting_for_more(data: bytes) -> None:
    for cut in range(len(data) + 1):
        assert parse_chunks([data[:cut], data[cut:]]) == ([], 400), (data, cut)


def test_a_long_line_ended_by_a_bare_lf_is_414_however_split() -> None:
    data = b"GET /" + b"a" * 100 + b" HTTP/1.1\nHost: a\n\n"
    for cut in range(len(data) + 1):
        assert parse_chunks([data[:cut], data[cut:]], max_line=64) == ([], 414)


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\nHost: t\n\n",
    b"POST /v1/rooms/r/join HTTP/1.1\nHost: t\nContent-Length: 0\n\n",
])
async def test_bare_lf_request_answered_400_at_once(request_bytes: bytes) -> None:
    """The server's request timeout is 10 s: an answer within 3 s can only be the refusal."""
    async with serving() as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(request_bytes)
        with trio.fail_after(3):
            status, headers, body = await reader.response()
            assert await reader.closed()
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(body)["error"] == "bad_request"


async def _get(port: int, path: str) -> tuple[int, bytes]:
    stream, reader = await connect(port)
    await stream.send_all(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, body = await reader.response()
    await stream.aclose()
    return status, body


async def test_metrics_and_discovery_only_on_the_operator_listener() -> None:
    from hypercorn.trio import serve

    from geo.frontdoor.app import operator_app
    from geo.frontdoor.tls import HypercornConfig
    from tests.frontdoor.test_fastserver import join, make_app

    app = make_app()
    groups = [{"targets": ["127.0.0.1:9"], "labels": {"job": "regio-router"}}]
    async with serving(app) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(join("counted"))
        assert (await reader.response())[0] == 200
        for path in ("/metrics", "/v1/prometheus/targets"):
            assert (await _get(port, path))[0] == 404, path
        config = HypercornConfig()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, operator_app(app.service, lambda: groups),
                                        config)
            operator = int(binds[0].rsplit(":", 1)[1])
            assert operator != port
            status, body = await _get(operator, "/metrics")
            assert status == 200 and b'result="ok"' in body
            assert b"regio_frontdoor_joins_total" in body
            status, body = await _get(operator, "/v1/prometheus/targets")
            assert status == 200 and json.loads(body) == groups
            assert (await _get(operator, "/v1/rooms/x/join"))[0] in (404, 405)
            nursery.cancel_scope.cancel()


def test_metrics_listen_flag() -> None:
    from control.cli import build_parser
    from control.clierror import CliError
    from geo.frontdoor.cli import build_config

    parser = build_parser()
    config = build_config(parser.parse_args(
        ["frontdoor", "--listen", "127.0.0.1:8443", "--metrics-listen", "127.0.0.1:9464"]))
    assert config.metrics_listen == "127.0.0.1:9464"
    assert build_config(parser.parse_args(["frontdoor"])).metrics_listen == ""
    for bad in ("127.0.0.1:8443", "nonsense", "[::1]"):
        with pytest.raises(CliError):
            build_config(parser.parse_args(
                ["frontdoor", "--listen", "127.0.0.1:8443", "--metrics-listen", bad]))


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\nHost: t\n\n",
    b"POST /v1/rooms/r/join HTTP/1.1\nHost: t\nContent-Length: 0\n\n",
    b"GET /metrics HTTP/1.1\n",
])
async def test_hypercorn_listeners_refuse_bare_lf(request_bytes: bytes) -> None:
    """The join port under ``--http-server hypercorn`` and the operator listener (both
    Hypercorn) answer a bare-LF head 400 at once, like the default server."""
    from geo.frontdoor.server import _serve, _start_operator_listener
    from geo.frontdoor.tls import HypercornConfig
    from tests.control.test_strict_http import bare_lf_refused
    from tests.frontdoor.test_fastserver import make_app

    app = make_app()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        joins = (await nursery.start(_serve, app, config, shutdown))[0]
        operator = await _start_operator_listener("127.0.0.1:0", app.service, shutdown,
                                                  nursery)
        for url in (joins, operator):
            port = int(url.rsplit(":", 1)[1])
            status = await bare_lf_refused(port, request_bytes)
            assert status.startswith(b"HTTP/1.1 400"), (url, status)
        shutdown.set()
