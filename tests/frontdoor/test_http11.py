"""The front door's HTTP/1.1 request parser: strict answers, limits, and hypothesis properties
(arbitrary bytes only ever raise :class:`HttpError`; a stream parses the same however it is
split into reads; generated valid requests come back exactly)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.frontdoor.http11 import HttpError, Request, RequestParser


def parse_all(data: bytes, **limits: int) -> tuple[list[Request], int | None]:
    """Every request in ``data`` fed at once, and the status of the error that ended it."""
    return parse_chunks([data], **limits)


def parse_chunks(chunks: list[bytes], **limits: int) -> tuple[list[Request], int | None]:
    parser = RequestParser(**limits)
    requests: list[Request] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (request := parser.next_request()) is not None:
                requests.append(request)
    except HttpError as exc:
        return requests, exc.status
    return requests, None


def one(data: bytes, **limits: int) -> Request:
    requests, error = parse_all(data, **limits)
    assert error is None and len(requests) == 1, (requests, error)
    return requests[0]


def status_of(data: bytes, **limits: int) -> int | None:
    return parse_all(data, **limits)[1]


def test_a_join_request() -> None:
    request = one(b"POST /v1/rooms/abc/join?x=1 HTTP/1.1\r\nHost: h\r\n"
                  b"X-Forwarded-For:  203.0.113.9 \t\r\nContent-Length: 2\r\n\r\n{}")
    assert (request.method, request.path, request.query, request.version) == (
        "POST", b"/v1/rooms/abc/join", b"x=1", "1.1")
    assert request.headers == [(b"host", b"h"), (b"x-forwarded-for", b"203.0.113.9"),
                               (b"content-length", b"2")]
    assert request.body == b"{}" and request.keep_alive and not request.expect_continue


def test_connection_semantics() -> None:
    assert not one(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive
    assert not one(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert one(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive
    assert one(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x, keep-alive\r\n\r\n").keep_alive
    assert one(b"GET / HTTP/1.3\r\nHost: h\r\n\r\n").version == "1.1"


def test_targets() -> None:
    assert one(b"GET http://example.org/a?b HTTP/1.1\r\nHost: h\r\n\r\n").path == b"/a"
    assert one(b"GET HTTPS://example.org?q HTTP/1.1\r\nHost: h\r\n\r\n").query == b"q"
    assert one(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").path == b"*"
    for bad in (b"x", b"http:///a", b"/a#f", b"example.org:443"):
        assert status_of(b"GET " + bad + b" HTTP/1.1\r\nHost: h\r\n\r\n") == 400, bad


def test_pipelined_requests_and_leading_empty_lines() -> None:
    data = (b"\r\n\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
    requests, error = parse_all(data)
    assert error is None and [r.path for r in requests] == [b"/a", b"/b", b"/c"]
    assert requests[0].body == b"abc"


@pytest.mark.parametrize("data, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),  # whitespace before the colon
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),  # obs-fold
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),  # bare CR
    (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),  # bare LF
    (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417),
])
def test_refusals(data: bytes, status: int) -> None:
    assert status_of(data) == status


def test_limits() -> None:
    assert status_of(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", max_line=64) == 414
    assert status_of(b"GET /" + b"a" * 100, max_line=64) == 414  # before the line ends
    many = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    assert status_of(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n", max_headers=10) == 431
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 300
    assert status_of(big + b"\r\n\r\n", max_head=256) == 431
    assert status_of(big, max_head=256) == 431  # before the head ends
    assert status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n",
                     max_body=64) == 413
    assert one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n" + b"x" * 64,
               max_body=64).body == b"x" * 64


def test_incomplete_requests_wait_and_expect_continue_is_reported() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n")
    assert parser.next_request() is None and parser.waiting_for_body() is None
    parser.feed(b"\r\nab")
    assert parser.next_request() is None
    waiting = parser.waiting_for_body()
    assert waiting is not None and waiting.expect_continue and not parser.idle
    parser.feed(b"cd")
    request = parser.next_request()
    assert request is not None and request.body == b"abcd" and parser.idle


# --- hypothesis -----------------------------------------------------------------------------

TOKENS = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                 min_size=1, max_size=12)
VALUES = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c in range(0x21, 0x7F) or c >= 0x80 or c == 0x20).strip())
PATHS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~%/?=&", max_size=30).map(
    lambda t: ("/" + t).encode())


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]) | TOKENS)
    target = draw(PATHS)
    version = draw(st.sampled_from(["1.0", "1.1"]))
    reserved = {"host", "content-length", "transfer-encoding", "connection", "expect"}
    names = [n for n in draw(st.lists(TOKENS, max_size=6)) if n.lower() not in reserved]
    fields = [(n.encode(), draw(VALUES)) for n in names]
    if version == "1.1" or draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", b"example.org"))
    body = draw(st.binary(max_size=80))
    if body or draw(st.booleans()):
        fields.append((b"Content-Length", str(len(body)).encode()))
    raw = f"{method} ".encode() + target + f" HTTP/{version}\r\n".encode()
    raw += b"".join(n + b":" + draw(st.sampled_from([b"", b" ", b"\t "])) + v
                    + draw(st.sampled_from([b"", b" "])) + b"\r\n" for n, v in fields)
    raw += b"\r\n" + body
    expected = {"method": method, "path": target.partition(b"?")[0], "version": version,
                "headers": [(n.lower(), v) for n, v in fields], "body": body}
    return raw, expected


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _summary(result: tuple[list[Request], int | None]) -> Any:
    requests, error = result
    return [(r.method, r.target, r.version, r.headers, r.body, r.keep_alive) for r in requests
            ], error


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_requests(), min_size=1, max_size=4))
def test_valid_requests_round_trip(items: list[tuple[bytes, dict[str, Any]]]) -> None:
    requests, error = parse_all(b"".join(raw for raw, _ in items))
    assert error is None and len(requests) == len(items)
    for request, (_, expected) in zip(requests, items, strict=True):
        assert request.method == expected["method"]
        assert request.path == expected["path"]
        assert request.version == expected["version"]
        assert request.headers == expected["headers"]
        assert request.body == expected["body"]


STREAM_PIECES = st.one_of(
    valid_requests().map(lambda item: item[0]),
    st.binary(max_size=30),
    st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"Host: a\r\n", b"GET / HTTP/1.1",
                     b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b" x\r\n",
                     b"HTTP/2.0\r\n", b"\x00", b":"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(STREAM_PIECES, max_size=8), st.lists(st.integers(0, 10_000), max_size=12),
       st.sampled_from([{}, {"max_line": 40, "max_head": 120, "max_headers": 3,
                             "max_body": 20}]))
def test_a_stream_parses_the_same_however_it_is_split(pieces: list[bytes], cuts: list[int],
                                                      limits: dict[str, int]) -> None:
    data = b"".join(pieces)
    whole = _summary(parse_all(data, **limits))
    assert _summary(parse_chunks(_chunks(data, cuts), **limits)) == whole
    assert _summary(parse_chunks([bytes([b]) for b in data], **limits)) == whole


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_only_ever_raise_http_errors(data: bytes, cuts: list[int]) -> None:
    # parse_chunks lets anything but HttpError escape, which would fail the test.
    requests, error = parse_chunks(_chunks(data, cuts), max_head=256, max_line=128)
    assert error is None or 400 <= error < 600
    assert all(r.path[:1] in (b"/", b"*") for r in requests)
