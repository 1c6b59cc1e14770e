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
